#include "runtime/sampler.h"

#include <map>

#include <gtest/gtest.h>

namespace gemma {
namespace {

TEST(Sampler, GreedyIsArgmaxWithinVocab) {
  std::vector<float> logits = {0.1f, 3.0f, 2.0f, 9.0f};
  Sampler s(SamplerParams{0, 0, 1, 0});
  EXPECT_EQ(s.sample(logits, 4), 3);
  EXPECT_EQ(s.sample(logits, 3), 1);  // padding rows past n_vocab are never chosen
}

TEST(Sampler, TopKAndTopPRestrictTheCandidates) {
  std::vector<float> logits = {5.0f, 4.9f, 0.0f, -1.0f, 4.8f};
  Sampler k2(SamplerParams{1.0f, 2, 1.0f, 42});
  Sampler p(SamplerParams{1.0f, 0, 0.5f, 42});
  std::map<int, int> seen_k, seen_p;
  for (int i = 0; i < 2000; ++i) seen_k[k2.sample(logits, 5)]++, seen_p[p.sample(logits, 5)]++;
  EXPECT_EQ(seen_k.size(), 2u);  // only ids 0 and 1
  EXPECT_TRUE(seen_k.count(0) && seen_k.count(1));
  // top-p 0.5: id 0 has ~37% of the mass, so ids 0 and 1 are needed to reach 0.5.
  EXPECT_EQ(seen_p.size(), 2u);
}

TEST(Sampler, SameSeedSameSequence) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[static_cast<size_t>(i)] = static_cast<float>(i % 7);
  Sampler a(SamplerParams{0.8f, 40, 0.9f, 7}), b(SamplerParams{0.8f, 40, 0.9f, 7});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits, 100), b.sample(logits, 100));
}

}  // namespace
}  // namespace gemma

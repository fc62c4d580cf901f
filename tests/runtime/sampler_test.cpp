#include "runtime/sampler.h"

#include <map>

#include <gtest/gtest.h>

namespace gemma {
namespace {

TEST(Sampler, GreedyIsArgmaxWithinVocab) {
  std::vector<float> logits = {0.1f, 3.0f, 2.0f, 9.0f};
  Sampler s(SamplerParams{.temperature = 0, .top_k = 0, .top_p = 1, .seed = 0});
  EXPECT_EQ(s.sample(logits, 4), 3);
  EXPECT_EQ(s.sample(logits, 3), 1);  // padding rows past n_vocab are never chosen
}

TEST(Sampler, TopKAndTopPRestrictTheCandidates) {
  std::vector<float> logits = {5.0f, 4.9f, 0.0f, -1.0f, 4.8f};
  Sampler k2(SamplerParams{.temperature = 1, .top_k = 2, .top_p = 1, .seed = 42});
  Sampler p(SamplerParams{.temperature = 1, .top_k = 0, .top_p = 0.5f, .seed = 42});
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
  Sampler a(SamplerParams{.temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .seed = 7}),
      b(SamplerParams{.temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .seed = 7});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits, 100), b.sample(logits, 100));
}

}  // namespace
}  // namespace gemma

namespace gemma {
namespace {

SamplerParams greedy() {
  SamplerParams p;
  p.temperature = 0;
  return p;
}

TEST(Sampler, LogitBiasAppliesToGreedyAndCanForceOrBanAToken) {
  const std::vector<float> logits = {1.0f, 5.0f, 2.0f};
  SamplerParams p = greedy();
  p.logit_bias = {{1, -100.0f}};
  EXPECT_EQ(Sampler(p).sample(logits, 3), 2);  // the best token banned
  p.logit_bias = {{0, 4.5f}, {7, 100.0f}};     // an id past the vocabulary is ignored
  EXPECT_EQ(Sampler(p).sample(logits, 3), 0);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokens) {
  // HF's rule: l > 0 -> l / r, else l * r; each distinct token once, over the window.
  SamplerParams p = greedy();
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 2;
  const std::vector<float> logits = {3.0f, 2.0f, -1.0f, -1.5f};
  Sampler s(p);
  const std::vector<int32_t> prompt = {0, 0, 2};  // the window of 2 sees ids 0 and 2
  s.set_context(prompt);
  EXPECT_EQ(s.sample(logits, 4), 1);  // 3 / 2 = 1.5 < 2
  p.repeat_last_n = 1;                // only id 2 seen: id 0 keeps 3.0
  Sampler s1(p);
  s1.set_context(prompt);
  EXPECT_EQ(s1.sample(logits, 4), 0);
  // A negative logit gets more negative: -1 * 2 = -2 < -1.5, so with 0 and 1 banned id 3 wins.
  p.repeat_last_n = -1;
  p.logit_bias = {{0, -100.0f}, {1, -100.0f}};
  Sampler s2(p);
  s2.set_context(prompt);
  EXPECT_EQ(s2.sample(logits, 4), 3);
}

TEST(Sampler, FrequencyAndPresencePenaltiesCountGeneratedTokensOnly) {
  SamplerParams p = greedy();
  p.frequency_penalty = 0.5f;
  const std::vector<float> logits = {3.0f, 2.2f, 0.0f};
  Sampler s(p);
  const std::vector<int32_t> prompt = {0, 0, 0, 0};  // the prompt does not count
  s.set_context(prompt);
  EXPECT_EQ(s.sample(logits, 3), 0);
  s.accept(0);  // 3.0 - 0.5 = 2.5 still wins
  EXPECT_EQ(s.sample(logits, 3), 0);
  s.accept(0);  // 3.0 - 1.0 = 2.0 < 2.2
  EXPECT_EQ(s.sample(logits, 3), 1);
  SamplerParams q = greedy();
  q.presence_penalty = 1.0f;  // once, however often
  Sampler t(q);
  t.accept(1);
  t.accept(1);
  t.accept(1);
  const std::vector<float> close = {1.5f, 2.4f, 0.0f};
  EXPECT_EQ(t.sample(close, 3), 0);  // 2.4 - 1 = 1.4 < 1.5
}

TEST(Sampler, MinPKeepsOnlyTokensNearTheTopProbability) {
  // After temperature 1: p ~ e^0 : e^-0.5 : e^-3 relative to the top; min_p 0.5 keeps the first two.
  const std::vector<float> logits = {0.0f, -0.5f, -3.0f};
  SamplerParams p;
  p.temperature = 1;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0.5f;
  p.seed = 3;
  Sampler s(p);
  std::map<int, int> seen;
  for (int i = 0; i < 3000; ++i) seen[s.sample(logits, 3)]++;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen.count(2), 0u);
  p.min_p = 0;  // off: all three appear
  Sampler all(p);
  std::map<int, int> seen_all;
  for (int i = 0; i < 3000; ++i) seen_all[all.sample(logits, 3)]++;
  EXPECT_EQ(seen_all.size(), 3u);
}

}  // namespace
}  // namespace gemma

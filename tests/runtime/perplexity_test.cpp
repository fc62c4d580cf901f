// The perplexity method: chunking, BOS replacement and scored positions as llama-perplexity, checked
// against a direct computation on a tiny model.
#include "runtime/perplexity.h"

#include <cmath>

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"
#include "support/gguf_builder.h"
#include "support/test_support.h"

namespace gemma {
namespace {

TEST(Perplexity, MatchesDirectComputation) {
  const std::string path = test::temp_dir() + "/tiny.gguf";
  test::GgufBuilder::tiny_gemma3().write(path);
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok()) << m.error().message;
  CpuBackend be(2);
  const int n_ctx = 40;
  std::vector<int32_t> tokens = {2};
  for (int i = 0; i < 130; ++i) tokens.push_back(4 + (i * 37) % 250);  // 131 tokens: 3 chunks of 40
  auto r = perplexity(**m, be, tokens, n_ctx);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->n_chunks, 3);
  EXPECT_EQ(r->n_scored, 3 * (n_ctx - n_ctx / 2 - 1));

  double nll = 0;
  int count = 0;
  for (int c = 0; c < 3; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    chunk[0] = 2;                                                    // BOS replaces the first token of every chunk
    auto cache = KvCache::create(be, (*m)->config(), n_ctx, n_ctx);  // F16, as perplexity() uses
    ASSERT_TRUE(cache.ok());
    ForwardBuffers buf = test::forward_buffers(be, (*m)->config(), n_ctx);
    std::vector<float> logits;
    SequenceChunk sc{cache->get(), chunk, n_ctx};
    ASSERT_TRUE((*m)->forward({&sc, 1}, be, buf, logits).ok());
    const int V = (*m)->config().vocab_size;
    for (int pos = n_ctx / 2; pos < n_ctx - 1; ++pos) {
      const float* row = logits.data() + static_cast<size_t>(pos) * static_cast<size_t>(V);
      double mx = row[0], sum = 0;
      for (int i = 0; i < V; ++i) mx = std::max(mx, double(row[i]));
      for (int i = 0; i < V; ++i) sum += std::exp(row[i] - mx);
      nll -= row[tokens[static_cast<size_t>(c * n_ctx + pos + 1)]] - mx - std::log(sum);
      ++count;
    }
  }
  EXPECT_NEAR(r->ppl, std::exp(nll / count), 1e-6 * r->ppl);  // float vs double log-softmax
  EXPECT_EQ(r->running_ppl.size(), 3u);
}

TEST(Perplexity, RejectsShortText) {
  const std::string path = test::temp_dir() + "/tiny.gguf";
  test::GgufBuilder::tiny_gemma3().write(path);
  auto m = Model::load(path);
  ASSERT_TRUE(m.ok());
  CpuBackend be(1);
  std::vector<int32_t> tokens(50, 5);
  auto r = perplexity(**m, be, tokens, 40);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("needs at least 80"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace gemma

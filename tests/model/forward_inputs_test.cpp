// Inputs beyond token ids: a chunk of ready embeddings gives what the same tokens give as ids,
// and a bidirectional span changes exactly the positions it covers.
#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"
#include "model/model.h"
#include "support/test_support.h"

namespace gemma {
namespace {

struct ForwardRun {
  std::vector<float> logits;
};

ForwardRun forward(const Model& m, const std::vector<int32_t>& ids, bool as_embeddings,
                   std::vector<PositionSpan> spans = {}) {
  CpuBackend be(1, CpuOptions{true});
  const ModelConfig& c = m.config();
  auto cache = KvCache::create(be, c, 64, 64, DType::F32);
  ForwardRun r;
  // ASSERT_* cannot return a value: a failure is recorded and nothing is dereferenced.
  EXPECT_TRUE(cache.ok()) << cache.error().message;
  if (!cache.ok()) return r;
  ForwardBuffers buf = test::forward_buffers(be, c, 64);
  std::vector<float> emb;
  SequenceChunk chunk(cache->get(), ids, static_cast<int>(ids.size()));
  if (as_embeddings) {
    emb.resize(ids.size() * static_cast<size_t>(c.hidden));
    EXPECT_TRUE(
        be.embed(m.weights().embedding, ids, c.embed_scale, emb.data()).ok());  // what a vision tower would hand in
    chunk.tokens = {};
    chunk.embeddings = emb;
  }
  chunk.bidirectional = spans;
  Status st = m.forward({&chunk, 1}, be, buf, r.logits);
  EXPECT_TRUE(st.ok()) << st.error().message;
  return r;
}

TEST(ForwardInputs, EmbeddingsEqualIdsAndSpansChangeOnlyTheirPositions) {
  auto m = Model::load(test::fixture("models/gemma3_tiny/model.f32.gguf"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  std::vector<int32_t> ids{2};
  for (int i = 1; i < 24; ++i) ids.push_back(4 + (i * 29) % 250);
  const ForwardRun by_id = forward(**m, ids, false);
  const ForwardRun by_emb = forward(**m, ids, true);
  ASSERT_EQ(by_id.logits.size(), by_emb.logits.size());
  EXPECT_EQ(by_id.logits, by_emb.logits);  // the same floats in, the same arithmetic

  // A span [6, 12): positions before it are untouched (they cannot see it), positions in it change
  // (they see later keys), positions after it change through the span's new values.
  const ForwardRun spanned = forward(**m, ids, false, {{6, 12}});
  const size_t V = static_cast<size_t>((*m)->config().vocab_size);
  auto row_differs = [&](size_t t) {
    for (size_t v = 0; v < V; ++v)
      if (by_id.logits[t * V + v] != spanned.logits[t * V + v]) return true;
    return false;
  };
  for (size_t t = 0; t < 6; ++t) EXPECT_FALSE(row_differs(t)) << t;
  for (size_t t = 6; t < 11; ++t) EXPECT_TRUE(row_differs(t)) << t;  // 11, the span's last, sees no later key
  EXPECT_TRUE(row_differs(12));

  // A span reaching past the chunk is refused, not computed over keys not yet stored.
  CpuBackend be(1);
  auto cache = KvCache::create(be, (*m)->config(), 64, 64, DType::F32);
  ASSERT_TRUE(cache.ok());
  ForwardBuffers buf = test::forward_buffers(be, (*m)->config(), 64);
  SequenceChunk chunk(cache->get(), std::span<const int32_t>(ids).first(8));
  const std::vector<PositionSpan> past = {{6, 12}};
  chunk.bidirectional = past;
  std::vector<float> logits;
  EXPECT_FALSE((*m)->forward({&chunk, 1}, be, buf, logits).ok());
}

}  // namespace
}  // namespace gemma

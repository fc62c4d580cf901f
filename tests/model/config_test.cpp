// Detection of the real Gemma 3 270M GGUF: generation, variant and every config value.
#include <cmath>

#include <gtest/gtest.h>

#include "model/model.h"
#include "support/test_support.h"

namespace gemma {
namespace {

TEST(Config, DetectsRealGemma3_270M) {
  GEMMA_REQUIRE_REAL_MODEL();
  auto m = Model::load(test::real_model_path());
  ASSERT_TRUE(m.ok()) << m.error().message;
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.generation, Generation::kGemma3);
  EXPECT_EQ(c.variant, "270m");
  EXPECT_EQ(c.hidden, 640);
  EXPECT_EQ(c.n_layers, 18);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.ffn, 2048);
  EXPECT_EQ(c.vocab_size, 262144);
  EXPECT_EQ(c.sliding_window, 512);
  EXPECT_EQ(c.context_length, 32768);
  EXPECT_FALSE(c.instruction_tuned);
  EXPECT_FLOAT_EQ(c.query_scale, 1.0f / 16);
  EXPECT_FLOAT_EQ(c.embed_scale, std::sqrt(640.0f));
  for (int l = 0; l < 18; ++l) {
    const bool global = (l + 1) % 6 == 0;
    EXPECT_EQ(c.layers[l].sliding, !global) << l;
    EXPECT_FLOAT_EQ(c.layers[l].rope_base, global ? 1e6f : 1e4f) << l;
    EXPECT_FLOAT_EQ(c.layers[l].rope_scale, 1.0f) << l;
  }
  ASSERT_NE((*m)->tokenizer(), nullptr);
  EXPECT_EQ((*m)->tokenizer()->vocab_size(), 262144);
}

}  // namespace
}  // namespace gemma

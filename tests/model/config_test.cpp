// Detection of the real Gemma 3 270M GGUF: generation, variant and every config value.
#include <cmath>

#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "model/canonical.h"
#include "model/export.h"
#include "model/model.h"
#include "model/variants.h"
#include "support/gguf_builder.h"
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

// config.json values of the wrong type or out of range: each one a clean error (these used to end
// in an uncaught nlohmann::json exception, or a wrapped integer).
// The one table of releases: every row is found by its own shape and nothing else, and the
// settings a configless loader takes from it are the release's (docs/spec/architecture.md §1).
TEST(Config, VariantTableIdentifiesEachReleaseByItsWholeShape) {
  ASSERT_EQ(released_variants().size(), 10u);
  for (const Variant& v : released_variants()) {
    ModelConfig c;
    c.generation = v.generation;
    c.n_layers = v.layers;
    c.hidden = v.hidden;
    c.n_heads = v.heads;
    c.n_kv_heads = v.kv_heads;
    c.head_dim = v.head_dim;
    c.ffn = v.ffn;
    EXPECT_EQ(find_variant(c), &v) << v.name;
    EXPECT_EQ(detect_variant(c), v.name);
    c.ffn += 1;  // one differing field is a custom shape
    EXPECT_EQ(detect_variant(c), "custom") << v.name;
  }
  ModelConfig c;
  c.generation = Generation::kGemma3;
  c.n_layers = 62;
  c.hidden = 5376;
  c.n_heads = 32;
  c.n_kv_heads = 16;
  c.head_dim = 128;
  c.ffn = 21504;
  apply_variant_settings(*find_variant(c), c);
  EXPECT_EQ(c.sliding_window, 1024);
  EXPECT_EQ(c.context_length, 131072);
  EXPECT_FLOAT_EQ(c.query_scale, 1.0f / std::sqrt(168.0f));
  ASSERT_EQ(c.layers.size(), 62u);
  EXPECT_TRUE(c.layers[0].sliding);
  EXPECT_FALSE(c.layers[5].sliding);
  EXPECT_EQ(c.layers[5].rope_base, 1000000.0f);
  EXPECT_EQ(c.layers[5].rope_scale, 8.0f);
  EXPECT_EQ(c.layers[0].rope_scale, 1.0f);
  const Variant& g2 = generation_defaults(Generation::kGemma2);
  EXPECT_STREQ(g2.name, "custom");
  EXPECT_EQ(g2.sliding_window, 4096);
  EXPECT_EQ(g2.attn_softcap, 50.0f);
  EXPECT_EQ(g2.query_scalar(64), 64.0f);
}

// One HF name table, read both ways: every canonical name goes to HF and back, and Gemma 1's
// post_attention_layernorm is its pre-FFN norm while later generations have both.
TEST(Config, HfNamesMapBothWays) {
  const char* parts[] = {
      "attn_norm",           "attn_q",   "attn_k",        "attn_v",   "attn_output", "attn_q_norm", "attn_k_norm",
      "post_attention_norm", "ffn_norm", "post_ffw_norm", "ffn_gate", "ffn_up",      "ffn_down"};
  for (Generation g : {Generation::kGemma1, Generation::kGemma2, Generation::kGemma3}) {
    std::vector<std::string> names = {"token_embd.weight", "output_norm.weight"};
    for (const char* p : parts)
      if (g != Generation::kGemma1 || std::string(p) != "post_attention_norm")
        names.push_back(fmt::format("blk.7.{}.weight", p));
    for (const std::string& n : names) {
      const std::string hf = hf_from_canonical(n, g);
      auto back = canonical_from_hf(hf, g);
      ASSERT_TRUE(back.has_value()) << hf;
      EXPECT_EQ(back->name, n) << hf;
      EXPECT_EQ(back->norm, n.find("norm") != std::string::npos) << n;
    }
  }
  EXPECT_EQ(hf_from_canonical("blk.0.ffn_norm.weight", Generation::kGemma1),
            "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(hf_from_canonical("blk.0.ffn_norm.weight", Generation::kGemma2),
            "model.layers.0.pre_feedforward_layernorm.weight");
  EXPECT_EQ(canonical_from_hf("model.language_model.layers.2.self_attn.q_proj.weight", Generation::kGemma3)->name,
            "blk.2.attn_q.weight");
  EXPECT_FALSE(canonical_from_hf("model.layers.x.self_attn.q_proj.weight", Generation::kGemma3));
  EXPECT_FALSE(canonical_from_hf("model.layers.1.rotary.weight", Generation::kGemma3));
}

// The norm fold every loader uses: 1 + w in float32, from any float type.
TEST(Config, FoldNormAddsOneInFloat32) {
  TensorSet storage;
  const uint16_t bf16[2] = {0x3F80, 0xBF00};  // 1.0, -0.5
  Tensor t{"n", DType::BF16, {2}, reinterpret_cast<const uint8_t*>(bf16), 4};
  auto f = fold_norm(t, storage);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->dtype, DType::F32);
  EXPECT_EQ(f->nbytes, 8u);
  EXPECT_EQ(reinterpret_cast<const float*>(f->data)[0], 2.0f);
  EXPECT_EQ(reinterpret_cast<const float*>(f->data)[1], 0.5f);
  t.dtype = DType::I8;
  auto bad = fold_norm(t, storage);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, ErrorKind::kUnsupported);
}

TEST(Config, HfConfigValuesAreTypeAndRangeChecked) {
  const std::string dir = test::temp_dir(), gguf = dir + "/tiny.gguf", hf = dir + "/hf";
  test::GgufBuilder::tiny_gemma3().write(gguf);
  auto tiny = Model::load(gguf);
  ASSERT_TRUE(tiny.ok()) << tiny.error().message;
  ASSERT_TRUE(export_hf(**tiny, hf, {}).ok());
  nlohmann::json good;
  std::ifstream(hf + "/config.json") >> good;
  ASSERT_TRUE(Model::load(hf).ok());
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expect;
  };
  const Case cases[] = {
      {"rope_scaling", 5, ""},  // not an object: no scaling, as before
      {"rope_scaling", {{"rope_type", 7}}, "is not a string"},
      {"rope_parameters", "x", ""},
      {"rope_parameters", {{"full_attention", 3}}, ""},
      {"rope_parameters", {{"full_attention", {{"rope_theta", "big"}}}}, "is not a number"},
      {"rope_parameters", {{"rope_theta", {1, 2}}}, "is not a number"},
      {"num_hidden_layers", "12", "is not an integer"},
      {"num_hidden_layers", 2.5, "is not an integer"},
      {"num_hidden_layers", (uint64_t{1} << 32) + 2, "outside 1..1024"},
      {"num_hidden_layers", UINT64_MAX, "is not an integer"},
      {"hidden_size", -64, "outside"},
      {"vocab_size", 1 << 30, "outside"},
      {"head_dim", nlohmann::json::array(), "is not an integer"},
      {"sliding_window", true, "is not an integer"},
  };
  for (const Case& c : cases) {
    nlohmann::json cfg = good;
    cfg[c.key] = c.value;
    std::ofstream(hf + "/config.json") << cfg.dump();
    auto m = Model::load(hf);
    const std::string what = std::string(c.key) + " = " + c.value.dump();
    if (!*c.expect) continue;  // only: did not abort
    ASSERT_FALSE(m.ok()) << what;
    EXPECT_NE(m.error().message.find(c.expect), std::string::npos) << what << ": " << m.error().message;
  }
}

}  // namespace
}  // namespace gemma

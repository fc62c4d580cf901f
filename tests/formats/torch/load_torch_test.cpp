// load_gemma_pytorch on small gemma_pytorch-layout checkpoints built here: generation and shape
// detection from the tensors alone, the qkv split, norms + 1, int8 weights with their scales,
// the multimodal text model, and clean errors for what cannot be determined.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "builders.h"
#include "model/loaders.h"
#include "model/model.h"
#include "support/test_support.h"
#include "util/half.h"

namespace gemma {
namespace {

namespace fs = std::filesystem;
using test::Pk;

struct T {
  std::string cls;
  std::vector<int> shape;
  std::string bytes;
};

// {'model_state_dict': {name: tensor}} (or the plain dict), each tensor in its own storage.
std::string build_ckpt(const std::vector<std::pair<std::string, T>>& tensors, bool wrap = true) {
  Pk p;
  p.op('}');
  if (wrap) p.str("model_state_dict").global("collections", "OrderedDict").op(')').op('R');
  p.mark();
  std::vector<std::pair<std::string, std::string>> records;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    std::vector<int> stride(t.shape.size());
    int numel = 1;
    for (size_t d = t.shape.size(); d-- > 0;) stride[d] = numel, numel *= t.shape[d];
    p.str(name).tensor(t.cls, std::to_string(i), numel, 0, t.shape, stride);
    records.push_back({std::to_string(i), t.bytes});
  }
  p.op('u');
  if (wrap) p.op('s');
  return test::make_torch_zip(p.stop().b, records);
}

// Deterministic float values: v(i) = sin(seed + i) / 4.
T f32(std::vector<int> shape, int seed) {
  int n = 1;
  for (int d : shape) n *= d;
  std::string b(static_cast<size_t>(n) * 4, '\0');
  for (int i = 0; i < n; ++i) {
    const float v = std::sin(static_cast<float>(seed + i)) / 4;
    std::memcpy(b.data() + 4 * i, &v, 4);
  }
  return {"FloatStorage", shape, b};
}

T i8(std::vector<int> shape, int seed) {
  int n = 1;
  for (int d : shape) n *= d;
  std::string b(static_cast<size_t>(n), '\0');
  for (int i = 0; i < n; ++i) b[static_cast<size_t>(i)] = static_cast<char>((seed * 31 + i * 7) % 256 - 128);
  return {"CharStorage", shape, b};
}

T bf16(std::vector<int> shape, int seed) {
  T t = f32(shape, seed);
  std::string b(t.bytes.size() / 2, '\0');
  for (size_t i = 0; i < b.size() / 2; ++i) {
    float v;
    std::memcpy(&v, t.bytes.data() + 4 * i, 4);
    const uint16_t h = f32_to_bf16(std::fabs(v) + 0.01f);
    std::memcpy(b.data() + 2 * i, &h, 2);
  }
  return {"BFloat16Storage", shape, b};
}

struct Dims {
  int V = 40, D = 96, N = 2, K = 1, H = 32, F = 64, L = 2;
};

enum class Gen { k1, k2, k3 };

std::vector<std::pair<std::string, T>> model(Gen g, Dims d, bool int8 = false, bool multimodal = false) {
  std::vector<std::pair<std::string, T>> ts;
  int seed = 0;
  auto lin = [&](const std::string& name, int out, int in) {
    if (int8) {
      ts.push_back({name + ".weight", i8({out, in}, ++seed)});
      ts.push_back({name + ".weight_scaler", bf16({out}, ++seed)});
    } else {
      ts.push_back({name + ".weight", f32({out, in}, ++seed)});
    }
  };
  lin(multimodal ? "text_token_embedder" : "embedder", d.V, d.D);
  ts.push_back({"model.norm.weight", f32({d.D}, ++seed)});
  for (int l = 0; l < d.L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    lin(p + "self_attn.qkv_proj", (d.N + 2 * d.K) * d.H, d.D);
    lin(p + "self_attn.o_proj", d.D, d.N * d.H);
    lin(p + "mlp.gate_proj", d.F, d.D);
    lin(p + "mlp.up_proj", d.F, d.D);
    lin(p + "mlp.down_proj", d.D, d.F);
    ts.push_back({p + "input_layernorm.weight", f32({d.D}, ++seed)});
    ts.push_back({p + "post_attention_layernorm.weight", f32({d.D}, ++seed)});
    if (g != Gen::k1) {
      ts.push_back({p + "pre_feedforward_layernorm.weight", f32({d.D}, ++seed)});
      ts.push_back({p + "post_feedforward_layernorm.weight", f32({d.D}, ++seed)});
    }
    if (g == Gen::k3) {
      ts.push_back({p + "self_attn.query_norm.weight", f32({d.H}, ++seed)});
      ts.push_back({p + "self_attn.key_norm.weight", f32({d.H}, ++seed)});
    }
  }
  if (multimodal) {
    ts.push_back({"mm_soft_embedding_norm.weight", f32({8}, ++seed)});
    ts.push_back({"mm_input_projection.weight", f32({d.D, 8}, ++seed)});
    ts.push_back({"siglip_vision_model.final_norm.weight", f32({8}, ++seed)});
  }
  return ts;
}

class LoadTorch : public ::testing::Test {
 protected:
  std::string write(const std::vector<std::pair<std::string, T>>& ts, const std::string& name = "model.ckpt") {
    const std::string path = (fs::path(dir_) / name).string();
    test::write_file(path, build_ckpt(ts));
    return path;
  }
  std::string dir_ = test::temp_dir();
};

const T& find(const std::vector<std::pair<std::string, T>>& ts, const std::string& name) {
  for (const auto& [n, t] : ts)
    if (n == name) return t;
  throw std::runtime_error(name);
}

TEST_F(LoadTorch, Gemma3CustomShapeFromTensorsAlone) {
  const Dims d;
  const auto ts = model(Gen::k3, d);
  auto ck = load_gemma_pytorch(write(ts));
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  const ModelConfig& c = ck->config;
  EXPECT_EQ(c.generation, Generation::kGemma3);
  EXPECT_EQ(c.variant, "custom");
  EXPECT_EQ(c.vocab_size, d.V);
  EXPECT_EQ(c.hidden, d.D);
  EXPECT_EQ(c.n_heads, d.N);
  EXPECT_EQ(c.n_kv_heads, d.K);
  EXPECT_EQ(c.head_dim, d.H);
  EXPECT_EQ(c.ffn, d.F);
  EXPECT_EQ(c.n_layers, d.L);
  EXPECT_EQ(c.sliding_window, 512);  // text-only Gemma 3 (1B): gemma_pytorch's window
  EXPECT_EQ(c.context_length, 32768);
  EXPECT_FLOAT_EQ(c.query_scale, 1.0f / std::sqrt(32.0f));
  EXPECT_EQ(c.embed_scale, std::sqrt(96.0f));
  EXPECT_TRUE(c.qk_norm && c.post_norms);
  EXPECT_EQ(c.attn_softcap, 0);
  ASSERT_EQ(c.layers.size(), 2u);
  EXPECT_TRUE(c.layers[0].sliding && c.layers[1].sliding);  // 5 local : 1 global, truncated
  EXPECT_EQ(c.layers[1].rope_base, 10000);
  EXPECT_EQ(ck->tokenizer_dir, dir_);

  // q, k, v are row ranges of the fused tensor; norms hold 1 + w.
  const T& qkv = find(ts, "model.layers.1.self_attn.qkv_proj.weight");
  const Tensor* q = ck->tensors.find("blk.1.attn_q.weight");
  const Tensor* k = ck->tensors.find("blk.1.attn_k.weight");
  const Tensor* v = ck->tensors.find("blk.1.attn_v.weight");
  ASSERT_TRUE(q && k && v);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{64, 96}));
  EXPECT_EQ(k->shape, (std::vector<int64_t>{32, 96}));
  EXPECT_EQ(std::memcmp(q->data, qkv.bytes.data(), q->nbytes), 0);
  EXPECT_EQ(std::memcmp(k->data, qkv.bytes.data() + 64 * 96 * 4, k->nbytes), 0);
  EXPECT_EQ(std::memcmp(v->data, qkv.bytes.data() + 96 * 96 * 4, v->nbytes), 0);
  const T& qn = find(ts, "model.layers.0.self_attn.query_norm.weight");
  const Tensor* qn_c = ck->tensors.find("blk.0.attn_q_norm.weight");
  ASSERT_NE(qn_c, nullptr);
  float w0, c0;
  std::memcpy(&w0, qn.bytes.data(), 4);
  std::memcpy(&c0, qn_c->data, 4);
  EXPECT_EQ(c0, 1.0f + w0);
  for (const char* n :
       {"token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight", "blk.0.post_attention_norm.weight",
        "blk.0.ffn_norm.weight", "blk.0.post_ffw_norm.weight", "blk.0.attn_k_norm.weight", "blk.0.attn_output.weight",
        "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"})
    EXPECT_NE(ck->tensors.find(n), nullptr) << n;

  // And the whole model binds and runs.
  auto m = Model::load(dir_);
  ASSERT_TRUE(m.ok()) << m.error().message;
}

TEST_F(LoadTorch, Gemma3MultimodalTextModel) {
  Dims d;
  d.L = 7;
  auto ck = load_gemma_pytorch(write(model(Gen::k3, d, false, true)));
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  const ModelConfig& c = ck->config;
  EXPECT_EQ(c.sliding_window, 1024);
  EXPECT_EQ(c.context_length, 131072);
  EXPECT_FALSE(c.layers[5].sliding);
  EXPECT_TRUE(c.layers[6].sliding);
  EXPECT_EQ(c.layers[5].rope_base, 1000000);
  EXPECT_EQ(c.layers[5].rope_scale, 8);
  EXPECT_EQ(c.layers[4].rope_scale, 1);
  EXPECT_EQ(ck->tensors.find("mm_input_projection.weight"), nullptr);
  bool noted = false;
  for (const auto& n : ck->info.notes) noted |= n.find("3 vision tower") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(LoadTorch, Int8WeightsKeepTheirScales) {
  const Dims d;
  const auto ts = model(Gen::k3, d, /*int8=*/true);
  auto ck = load_gemma_pytorch(write(ts));
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  const Tensor* k = ck->tensors.find("blk.0.attn_k.weight");
  const Tensor* ks = ck->tensors.find("blk.0.attn_k.weight.row_scale");
  ASSERT_TRUE(k && ks);
  EXPECT_EQ(k->dtype, DType::I8);
  EXPECT_EQ(ks->dtype, DType::F32);
  EXPECT_EQ(ks->shape, (std::vector<int64_t>{32}));
  const T& scaler = find(ts, "model.layers.0.self_attn.qkv_proj.weight_scaler");
  uint16_t h;
  std::memcpy(&h, scaler.bytes.data() + 2 * 64, 2);  // row 64 of qkv = row 0 of k
  float s0;
  std::memcpy(&s0, ks->data, 4);
  EXPECT_EQ(s0, bf16_to_f32(h));
  // sqrt(96) in the scaler's dtype (bf16): 9.8125, as gemma_pytorch computes it.
  EXPECT_EQ(ck->config.embed_scale, 9.8125f);
  auto m = Model::load(dir_ + "/model.ckpt");
  ASSERT_TRUE(m.ok()) << m.error().message;
}

TEST_F(LoadTorch, Gemma1And2CustomShapesNeedAConfig) {
  for (Gen g : {Gen::k1, Gen::k2}) {
    auto ck = load_gemma_pytorch(write(model(g, Dims{})));
    ASSERT_FALSE(ck.ok());
    EXPECT_NE(ck.error().message.find("cannot tell the head size"), std::string::npos) << ck.error().message;
    EXPECT_NE(ck.error().message.find(g == Gen::k1 ? "Gemma 1" : "Gemma 2"), std::string::npos);
  }
}

TEST_F(LoadTorch, CleanErrors) {
  auto expect = [&](std::vector<std::pair<std::string, T>> ts, const std::string& needle) {
    auto ck = load_gemma_pytorch(write(ts));
    ASSERT_FALSE(ck.ok()) << needle;
    EXPECT_NE(ck.error().message.find(needle), std::string::npos) << ck.error().message;
  };
  auto base = model(Gen::k3, Dims{});
  auto drop = [&](const std::string& name) {
    auto ts = base;
    std::erase_if(ts, [&](const auto& p) { return p.first == name; });
    return ts;
  };
  expect(drop("embedder.weight"), "no embedder.weight");
  expect(drop("model.layers.1.mlp.up_proj.weight"), "missing tensor 'model.layers.1.mlp.up_proj.weight'");
  expect(drop("model.layers.1.self_attn.key_norm.weight"), "key_norm");
  auto bad_qkv = base;
  for (auto& [n, t] : bad_qkv)
    if (n == "model.layers.1.self_attn.qkv_proj.weight") t = f32({160, 96}, 1);
  expect(bad_qkv, "layer 0's has 128 rows");
  auto q8 = model(Gen::k3, Dims{}, true);
  std::erase_if(q8, [](const auto& p) { return p.first == "model.layers.0.mlp.up_proj.weight_scaler"; });
  expect(q8, "has no weight_scaler");
  auto extra = base;
  extra.push_back({"model.layers.0.mlp.up_proj.weight_scaler", f32({64}, 3)});
  expect(extra, "not int8");
  auto unknown = base;
  unknown.push_back({"model.layers.0.self_attn.rotary.weight", f32({4}, 3)});
  expect(unknown, "unexpected tensor 'model.layers.0.self_attn.rotary.weight'");

  test::write_file(dir_ + "/legacy.ckpt",
                   "\x80\x02\x8a\x0al\xfc\x9c"
                   "F\xf9 j\xa8P\x19.");
  auto m = Model::load(dir_ + "/legacy.ckpt");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("legacy"), std::string::npos) << m.error().message;
}

}  // namespace
}  // namespace gemma

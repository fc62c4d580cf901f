// load_orbax on checkpoints written by Google's gemma library (tools/fixtures_orbax_model.py): the
// config inferred from shapes, the einsum transforms and norms checked end to end against the JAX
// reference logits and greedy continuation; then int4-QAT detection (Q4_0F) on a crafted checkpoint.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/dequant.h"
#include "model/loaders.h"
#include "model/model.h"
#include "support/test_support.h"
#include "util/mapped_file.h"
#include "util/zstd_file.h"

namespace gemma {
namespace {

namespace fs = std::filesystem;

struct Ref {
  nlohmann::json j;
  std::vector<float> logits;
};

Ref read_ref(const std::string& model) {
  Ref r;
  std::ifstream in(test::fixture("models/" + model + "/ref/orbax_f32.json"));
  r.j = nlohmann::json::parse(in);
  auto raw = read_file_maybe_zstd(test::fixture("models/" + model + "/ref/" + r.j["logits"].get<std::string>()));
  EXPECT_TRUE(raw.ok()) << raw.error().message;  // ASSERT_* cannot return a value
  if (!raw.ok()) return r;
  r.logits.resize(raw->size() / 4);
  std::memcpy(r.logits.data(), raw->data(), raw->size());
  return r;
}

void check_parity(const std::string& model) {
  const Ref ref = read_ref(model);
  auto ck = load_orbax(test::fixture("models/" + model + "/ckpt"));
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  const ModelConfig cfg = ck->config;
  EXPECT_EQ(cfg.variant, "custom");
  EXPECT_FLOAT_EQ(cfg.embed_scale, ref.j["embed_scale"].get<float>());
  EXPECT_EQ(ck->tokenizer_dir, test::fixture("models/" + model));
  bool noted = false;
  for (const auto& n : ck->info.notes) noted = noted || n.find("matches no released model") != std::string::npos;
  EXPECT_TRUE(noted);
  auto w = bind_weights(cfg, std::move(ck->tensors), model);
  ASSERT_TRUE(w.ok()) << w.error().message;
  Model m(cfg, std::move(w).value(), std::nullopt, ck->info);

  const auto prompt = ref.j["prompt_ids"].get<std::vector<int32_t>>();
  const auto greedy_ref = ref.j["greedy_ids"].get<std::vector<int32_t>>();
  const int V = ref.j["vocab"].get<int>();
  ASSERT_EQ(cfg.vocab_size, V);
  CpuBackend backend(2, CpuOptions{true});
  const int total = static_cast<int>(prompt.size() + greedy_ref.size());
  auto cache = KvCache::create(backend, cfg, total + 1, 64, DType::F32);  // exact cache for parity
  ASSERT_TRUE(cache.ok());
  ForwardBuffers buf = test::forward_buffers(backend, cfg, 64);
  std::vector<float> logits;
  SequenceChunk sc{cache->get(), prompt, static_cast<int>(prompt.size())};
  Status st = m.forward({&sc, 1}, backend, buf, logits);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(logits.size(), ref.logits.size());
  double scale = 0, diff = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    scale = std::max(scale, std::fabs(double(ref.logits[i])));
    diff = std::max(diff, std::fabs(double(logits[i]) - ref.logits[i]));
  }
  EXPECT_LE(diff / scale, 1e-4) << model << ": max |dlogit| " << diff << " of " << scale;
  std::printf("orbax parity %s: max |dlogit| %.3g, relative %.2g\n", model.c_str(), diff, diff / scale);

  std::vector<int32_t> got;
  int32_t next = 0;
  for (size_t step = 0; step < greedy_ref.size(); ++step) {
    const float* last = logits.data() + logits.size() - static_cast<size_t>(V);
    next = static_cast<int32_t>(std::max_element(last, last + V) - last);
    got.push_back(next);
    logits.clear();
    SequenceChunk one{cache->get(), {&got.back(), 1}, 1};
    ASSERT_TRUE(m.forward({&one, 1}, backend, buf, logits).ok());
  }
  EXPECT_EQ(got, greedy_ref) << model;
}

TEST(OrbaxModel, Gemma3FlatLayoutMatchesJax) {
  check_parity("orbax_gemma3_tiny");
  auto ck = load_orbax(test::fixture("models/orbax_gemma3_tiny/ckpt"));
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ(ck->config.generation, Generation::kGemma3);
  EXPECT_EQ(ck->config.n_layers, 6);
  EXPECT_EQ(ck->config.sliding_window, 512);
  EXPECT_TRUE(ck->config.layers[0].sliding);
  EXPECT_FALSE(ck->config.layers[5].sliding);
  EXPECT_FLOAT_EQ(ck->config.layers[5].rope_base, 1e6f);
  EXPECT_EQ(ck->info.format, "Orbax OCDBT (root manifest)");
  const Tensor* q = ck->tensors.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{64, 32}));
}

TEST(OrbaxModel, Gemma2NestedLayoutMatchesJax) {
  check_parity("orbax_gemma2_tiny");
  auto ck = load_orbax(test::fixture("models/orbax_gemma2_tiny/ckpt"));
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ(ck->config.generation, Generation::kGemma2);
  EXPECT_FLOAT_EQ(ck->config.attn_softcap, 50);
  EXPECT_FLOAT_EQ(ck->config.final_softcap, 30);
  EXPECT_EQ(ck->config.sliding_window, 4096);
}

// ---- int4 QAT ---------------------------------------------------------------------------------

void write_zarr(const fs::path& root, const std::string& name, const std::vector<int64_t>& shape,
                const std::vector<float>& v) {
  const fs::path dir = root / name;
  fs::create_directories(dir);
  std::string shp, chunk_key;
  for (size_t i = 0; i < shape.size(); ++i) {
    shp += (i ? "," : "") + std::to_string(shape[i]);
    chunk_key += i ? ".0" : "0";
  }
  test::write_file((dir / ".zarray").string(),
                   R"({"zarr_format":2,"shape":[)" + shp + R"(],"chunks":[)" + shp +
                       R"(],"dtype":"<f4","compressor":null,"fill_value":null,"order":"C"})");
  test::write_file((dir / chunk_key).string(), std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
}

TEST(OrbaxModel, Int4QatWeightsBecomeQ4_0F) {
  // A 1-layer Gemma 3 (D=32, 1 head of 32, F=64) in the FLAT layout, every matrix on a 4-bit grid
  // per 32 inputs with random non-f16 scales; except linear.w, one value nudged off its grid.
  const fs::path root = fs::path(test::temp_dir()) / "gemma3-qat-it-int4";
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> qd(-8, 7);
  std::uniform_real_distribution<float> sd(0.001f, 0.05f);
  const int64_t D = 32, H = 32, F = 64, V = 64;
  // Values laid out so that groups of 32 follow the input axis after the transform: fill the
  // transformed [out, in] matrix on the grid, then store it in the Flax layout.
  auto grid = [&](int64_t rows, int64_t cols) {
    std::vector<float> m(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols / 32; ++g) {
        const float s = sd(rng);
        for (int k = 0; k < 32; ++k) m[static_cast<size_t>(r * cols + g * 32 + k)] = static_cast<float>(qd(rng)) * s;
      }
    return m;
  };
  auto tr = [](const std::vector<float>& m, int64_t rows, int64_t cols) {
    std::vector<float> t(m.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = m[static_cast<size_t>(r * cols + c)];
    return t;
  };
  const auto emb = grid(V, D), q = grid(H, D), k = grid(H, D), v = grid(H, D), o = grid(D, H), gate = grid(F, D),
             up = grid(F, D);
  auto down = grid(D, F);
  down[5] += 1e-3f;
  write_zarr(root, "transformer/embedder.input_embedding", {V, D}, emb);
  write_zarr(root, "transformer/final_norm.scale", {D}, std::vector<float>(D, 0.5f));
  const std::string l = "transformer/layer_0/";
  for (const char* n : {"pre_attention_norm", "post_attention_norm", "pre_ffw_norm", "post_ffw_norm"})
    write_zarr(root, l + n + ".scale", {D}, std::vector<float>(D, 0.0f));
  write_zarr(root, l + "attn/_query_norm.scale", {H}, std::vector<float>(H, 0.0f));
  write_zarr(root, l + "attn/_key_norm.scale", {H}, std::vector<float>(H, 0.0f));
  write_zarr(root, l + "attn/q_einsum.w", {1, D, H}, tr(q, H, D));  // [N, D, H]
  auto kv = tr(k, H, D);
  const auto vt = tr(v, H, D);
  kv.insert(kv.end(), vt.begin(), vt.end());
  write_zarr(root, l + "attn/kv_einsum.w", {2, 1, D, H}, kv);
  write_zarr(root, l + "attn/attn_vec_einsum.w", {1, H, D}, tr(o, D, H));  // [N, H, D]
  auto g = gate;
  g.insert(g.end(), up.begin(), up.end());
  write_zarr(root, l + "mlp/gating_einsum.w", {2, F, D}, g);
  write_zarr(root, l + "mlp/linear.w", {F, D}, tr(down, D, F));

  auto ck = load_orbax(root.string());
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  EXPECT_TRUE(ck->config.instruction_tuned);
  EXPECT_EQ(ck->info.format, "Orbax zarr directories");
  struct Want {
    const char* name;
    const std::vector<float>* values;
  };
  for (const Want& wnt :
       {Want{"token_embd.weight", &emb}, Want{"blk.0.attn_q.weight", &q}, Want{"blk.0.attn_k.weight", &k},
        Want{"blk.0.attn_v.weight", &v}, Want{"blk.0.attn_output.weight", &o}, Want{"blk.0.ffn_gate.weight", &gate},
        Want{"blk.0.ffn_up.weight", &up}}) {
    const Tensor* t = ck->tensors.find(wnt.name);
    ASSERT_NE(t, nullptr) << wnt.name;
    ASSERT_EQ(t->dtype, DType::Q4_0F) << wnt.name;
    EXPECT_EQ(t->nbytes, wnt.values->size() / 32 * 20);
    std::vector<float> back(wnt.values->size());
    ASSERT_TRUE(dequantize_row(DType::Q4_0F, t->data, back.data(), static_cast<int64_t>(back.size())));
    for (size_t i = 0; i < back.size(); ++i) ASSERT_NEAR(back[i], (*wnt.values)[i], 1e-6) << wnt.name << " " << i;
  }
  const Tensor* d = ck->tensors.find("blk.0.ffn_down.weight");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->dtype, DType::F32);  // one group off the grid: kept exactly as stored
  EXPECT_EQ(std::memcmp(d->data, down.data(), down.size() * 4), 0);
  bool noted = false;
  for (const auto& n : ck->info.notes) noted = noted || n.find("7 of 8 float32 matrices") != std::string::npos;
  EXPECT_TRUE(noted);
  EXPECT_FLOAT_EQ(ck->config.embed_scale, std::sqrt(32.0f));
  const Tensor* norm = ck->tensors.find("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(norm->data)[0], 1.5f);
}

// Zarr arrays may leave chunks out (they read as the fill value), so a few bytes of metadata can
// declare a checkpoint far larger than its files. The loader plans the memory first and refuses,
// rather than allocating (and zero-filling) most of the machine's memory. The embedding is sized
// from the memory this machine has: 0.6 of it, which a plain allocation would still be granted.
TEST(OrbaxModel, CheckpointLargerThanMemoryIsRefusedBeforeAllocating) {
  const fs::path root = fs::path(test::temp_dir()) / "orbax-declared-huge";
  fs::remove_all(root);
  const int64_t D = 4096, H = 32, F = 64;
  const uint64_t avail = std::min<uint64_t>(available_memory(), uint64_t{1} << 40);
  const int64_t V =
      std::clamp<int64_t>(static_cast<int64_t>(avail * 6 / 10 / (D * 4)) / 1024 * 1024, 1024, int64_t{1} << 24);
  auto declare = [&](const std::string& name, const std::vector<int64_t>& shape, const std::vector<int64_t>& chunks) {
    fs::create_directories(root / name);
    test::write_file((root / name / ".zarray").string(),
                     fmt::format(R"({{"zarr_format":2,"shape":[{}],"chunks":[{}],"dtype":"<f4","compressor":null,)"
                                 R"("fill_value":null,"order":"C"}})",
                                 fmt::join(shape, ","), fmt::join(chunks, ",")));
  };
  declare("transformer/embedder.input_embedding", {V, D}, {1024, D});
  declare("transformer/final_norm.scale", {D}, {D});
  const std::string l = "transformer/layer_0/";
  for (const char* n : {"pre_attention_norm", "post_attention_norm", "pre_ffw_norm", "post_ffw_norm"})
    declare(l + n + ".scale", {D}, {D});
  declare(l + "attn/_query_norm.scale", {H}, {H});
  declare(l + "attn/_key_norm.scale", {H}, {H});
  declare(l + "attn/q_einsum.w", {1, D, H}, {1, D, H});
  declare(l + "attn/kv_einsum.w", {2, 1, D, H}, {2, 1, D, H});
  declare(l + "attn/attn_vec_einsum.w", {1, H, D}, {1, H, D});
  declare(l + "mlp/gating_einsum.w", {2, F, D}, {2, F, D});
  declare(l + "mlp/linear.w", {F, D}, {F, D});
  auto ck = load_orbax(root.string());
  ASSERT_FALSE(ck.ok());
  EXPECT_EQ(ck.error().kind, ErrorKind::kResourceExhausted) << ck.error().message;
  EXPECT_NE(ck.error().message.find("GiB of memory"), std::string::npos) << ck.error().message;
  fs::remove_all(root);
}

TEST(OrbaxModel, StackedLayoutEqualsFlat) {
  // A random 2-layer Gemma 3 written FLAT (layer_0, layer_1) and STACKED (stacked_layers/
  // attention_type_{0,1}/..., one slice each, layer = slice * 2 + type), NESTED names in the second
  // under rlx_networks/policy_network/: both must load to identical tensors.
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 0.1f);
  const int64_t D = 16, N = 2, K = 1, H = 8, F = 24, V = 40;
  struct Arr {
    std::vector<int64_t> shape;
    std::vector<float> v;
  };
  auto make = [&](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    Arr a{shape, std::vector<float>(static_cast<size_t>(n))};
    for (float& x : a.v) x = nd(rng);
    return a;
  };
  const std::vector<std::pair<std::string, std::vector<int64_t>>> per_layer = {{"pre_attention_norm.scale", {D}},
                                                                               {"post_attention_norm.scale", {D}},
                                                                               {"pre_ffw_norm.scale", {D}},
                                                                               {"post_ffw_norm.scale", {D}},
                                                                               {"attn/_query_norm.scale", {H}},
                                                                               {"attn/_key_norm.scale", {H}},
                                                                               {"attn/q_einsum.w", {N, D, H}},
                                                                               {"attn/kv_einsum.w", {2, K, D, H}},
                                                                               {"attn/attn_vec_einsum.w", {N, H, D}},
                                                                               {"mlp/gating_einsum.w", {2, F, D}},
                                                                               {"mlp/linear.w", {F, D}}};
  const fs::path flat = fs::path(test::temp_dir()) / "flat", stacked = fs::path(test::temp_dir()) / "stacked";
  const Arr emb = make({V, D}), fnorm = make({D});
  for (const auto& [root, prefix] : {std::pair{flat, std::string("transformer/")},
                                     std::pair{stacked, std::string("rlx_networks/policy_network/transformer/")}}) {
    write_zarr(root, prefix + "embedder.input_embedding", emb.shape, emb.v);
    write_zarr(root, prefix + "final_norm.scale", fnorm.shape, fnorm.v);
  }
  for (const auto& [name, shape] : per_layer) {
    const Arr l0 = make(shape), l1 = make(shape);
    write_zarr(flat, "transformer/layer_0/" + name, shape, l0.v);
    write_zarr(flat, "transformer/layer_1/" + name, shape, l1.v);
    std::vector<int64_t> st = shape;
    st.insert(st.begin(), 1);
    write_zarr(stacked, "rlx_networks/policy_network/transformer/stacked_layers/attention_type_0/" + name, st, l0.v);
    write_zarr(stacked, "rlx_networks/policy_network/transformer/stacked_layers/attention_type_1/" + name, st, l1.v);
  }
  auto a = load_orbax(flat.string());
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = load_orbax(stacked.string());
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(a->config.n_layers, 2);
  EXPECT_EQ(b->config.n_layers, 2);
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  EXPECT_EQ(a->tensors.size(), 2u + 2 * 13);
  for (const auto& [name, t] : a->tensors.all()) {
    const Tensor* u = b->tensors.find(name);
    ASSERT_NE(u, nullptr) << name;
    EXPECT_EQ(t.shape, u->shape) << name;
    ASSERT_EQ(t.nbytes, u->nbytes) << name;
    EXPECT_EQ(std::memcmp(t.data, u->data, t.nbytes), 0) << name;
  }
  // (The transforms themselves are checked against the JAX model above.)
  const Tensor* q = a->tensors.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{N * H, D}));
  auto w = bind_weights(a->config, std::move(a->tensors), "flat");
  EXPECT_TRUE(w.ok()) << w.error().message;
}

TEST(OrbaxModel, RejectsNonGemmaCheckpoint) {
  auto ck = load_orbax(test::fixture("orbax/ocdbt_zarr2"));
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.error().message.find("layer 0 has no"), std::string::npos) << ck.error().message;
}

// Model::load recognises an Orbax checkpoint folder, and a Kaggle download's folder that holds
// one checkpoint folder (with tokenizer.model beside it).
TEST(OrbaxModel, ModelLoadDetectsOrbaxFolders) {
  const std::string ckpt = test::fixture("models/orbax_gemma3_tiny/ckpt");
  const std::string kaggle = test::fixture("models/orbax_gemma3_tiny");
  for (const std::string& dir : {ckpt, kaggle}) {
    auto m = Model::load(dir);
    ASSERT_TRUE(m.ok()) << dir << ": " << m.error().message;
    EXPECT_EQ((*m)->info().format.rfind("Orbax", 0), 0u) << (*m)->info().format;
  }
}

}  // namespace
}  // namespace gemma

// Kaggle Flax/Orbax Gemma checkpoints (docs/spec/formats.md §1.5-1.8): the arrays are read with the Orbax
// reader, the ModelConfig is inferred from which arrays exist and their shapes (an Orbax checkpoint
// stores no config), the Flax einsum layouts are turned into row-major [out, in] matrices under the
// canonical GGUF names, norms get Gemma's 1 + w, and int4-QAT f32 weights become Q4_0F groups.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <new>

#include <fmt/ranges.h>

#include "formats/orbax/orbax.h"
#include "kernels/dequant.h"
#include "kernels/quant_blocks.h"
#include "model/canonical.h"
#include "model/loaders.h"
#include "model/variants.h"
#include "util/half.h"
#include "util/mapped_file.h"

namespace gemma {

namespace fs = std::filesystem;

namespace {

using quant::BlockQ4_0F;

enum class Role {
  kEmbedding,
  kFinalNorm,
  kPreAttnNorm,
  kPostAttnNorm,
  kPreFfwNorm,
  kPostFfwNorm,
  kQueryNorm,
  kKeyNorm,
  kQ,
  kKV,
  kQKV,
  kAttnOut,
  kGating,
  kLinear,
};

struct Use {
  Role role;
  int layer = -1;      // -1 for embedding and final norm
  int64_t slice = -1;  // >= 0: this layer is slice `slice` of a stacked array
};

struct LayerShape {
  int64_t D, N, K, H, F;
};

std::vector<std::string> split_name(const std::string& name) {
  std::vector<std::string> parts;
  std::string cur;
  for (char ch : name) {
    if (ch == '/' || ch == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  parts.push_back(cur);
  return parts;
}

bool parse_index(const std::string& s, const char* prefix, int& out) {
  const size_t n = std::strlen(prefix);
  if (s.size() <= n || s.compare(0, n, prefix) != 0 || s.size() > n + 6) return false;
  int v = 0;
  for (size_t i = n; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

// Role of a layer-relative path such as {"attn", "q_einsum", "w"}.
std::optional<Role> layer_role(const std::vector<std::string>& p) {
  struct Row {
    std::vector<std::string> path;
    Role role;
  };
  static const Row rows[] = {
      {{"pre_attention_norm", "scale"}, Role::kPreAttnNorm},
      {{"post_attention_norm", "scale"}, Role::kPostAttnNorm},
      {{"pre_ffw_norm", "scale"}, Role::kPreFfwNorm},
      {{"post_ffw_norm", "scale"}, Role::kPostFfwNorm},
      {{"attn", "_query_norm", "scale"}, Role::kQueryNorm},
      {{"attn", "_key_norm", "scale"}, Role::kKeyNorm},
      {{"attn", "q_einsum", "w"}, Role::kQ},
      {{"attn", "kv_einsum", "w"}, Role::kKV},
      {{"attn", "qkv_einsum", "w"}, Role::kQKV},
      {{"attn", "attn_vec_einsum", "w"}, Role::kAttnOut},
      {{"mlp", "gating_einsum", "w"}, Role::kGating},
      {{"mlp", "linear", "w"}, Role::kLinear},
      // The gemma library's own (NESTED) params drop the MLP's "w" leaf.
      {{"mlp", "gating_einsum"}, Role::kGating},
      {{"mlp", "linear"}, Role::kLinear},
  };
  for (const Row& r : rows)
    if (r.path == p) return r.role;
  return std::nullopt;
}

// 2-D transpose of a [rows, cols] matrix of `es`-byte elements, in cache-friendly tiles.
void transpose(const uint8_t* src, int64_t rows, int64_t cols, size_t es, uint8_t* dst) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c)
          std::memcpy(dst + static_cast<size_t>(c * rows + r) * es, src + static_cast<size_t>(r * cols + c) * es, es);
}

// docs/spec/formats.md §1.8: a group of 32 f32 values that lies on a symmetric 4-bit grid q * s. As in the
// reference converter, s = (max - min) / q for q = 15 .. 1, the last (smallest q, largest scale) that
// reproduces every value within 1e-6 wins; then q = round(w / s) must lie in [-8, 7]. Two additions
// that only widen what is recognised, both reconstructing exactly the same values: a grid in [-7, 8]
// is stored with d = -s, and a constant group c uses s = |c|.
bool quantize_group(const float* w, BlockQ4_0F& out) {
  float mx = w[0], mn = w[0];
  for (int i = 1; i < 32; ++i) {
    mx = std::max(mx, w[i]);
    mn = std::min(mn, w[i]);
  }
  auto fits = [&](float s) {
    const float inv = 1.0f / std::max(s, 1e-12f);
    for (int i = 0; i < 32; ++i)
      if (!(std::fabs(std::nearbyint(w[i] * inv) * s - w[i]) < 1e-6f)) return false;
    return true;
  };
  const float range = mx - mn;
  float s = 0;
  if (range == 0) {
    s = std::fabs(mx);
  } else {
    for (int q = 15; q >= 1; --q) {
      const float t = range / static_cast<float>(q);
      if (fits(t)) s = t;
    }
  }
  if (!fits(s)) return false;
  const float inv = 1.0f / std::max(s, 1e-12f);
  int q[32];
  int qmin = 0, qmax = 0;
  for (int i = 0; i < 32; ++i) {
    const float r = std::nearbyint(w[i] * inv);
    if (!(r >= -8 && r <= 8)) return false;
    q[i] = static_cast<int>(r);
    qmin = std::min(qmin, q[i]);
    qmax = std::max(qmax, q[i]);
  }
  float d = s;
  if (qmax == 8) {
    if (qmin < -7) return false;
    for (int& v : q) v = -v;
    d = -s;
  }
  out.d = d;
  for (int j = 0; j < 16; ++j) out.qs[j] = static_cast<uint8_t>((q[j] + 8) | ((q[j + 16] + 8) << 4));
  return true;
}

class Converter {
 public:
  Converter(const std::string& dir, LoadedCheckpoint& out) : dir_(dir), out_(out) {}

  // A matrix [rows, cols] of `dtype`; `fill` writes its row-major bytes. f32 matrices on an int4
  // grid (QAT checkpoints) are stored as Q4_0F.
  template <typename Fill>
  Status matrix(const std::string& name, int64_t rows, int64_t cols, DType dtype, Fill fill) {
    const size_t es = static_cast<size_t>(dtype_info(dtype).block_bytes);
    const uint64_t n = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
    if (dtype == DType::F32 && cols % 32 == 0) {
      f32_.resize(n);
      fill(reinterpret_cast<uint8_t*>(f32_.data()));
      std::vector<BlockQ4_0F> blocks(n / 32);
      bool ok = true;
      for (uint64_t b = 0; ok && b < blocks.size(); ++b) ok = quantize_group(f32_.data() + b * 32, blocks[b]);
      if (ok) {
        GE_ASSIGN(uint8_t * dst, allocate(blocks.size() * sizeof(BlockQ4_0F), name));
        std::memcpy(dst, blocks.data(), blocks.size() * sizeof(BlockQ4_0F));
        ++n_q4_;
        return add(name, {rows, cols}, DType::Q4_0F, dst, blocks.size() * sizeof(BlockQ4_0F));
      }
      GE_ASSIGN(uint8_t * dst, allocate(n * 4, name));
      std::memcpy(dst, f32_.data(), n * 4);
      ++n_f32_;
      return add(name, {rows, cols}, dtype, dst, n * 4);
    }
    GE_ASSIGN(uint8_t * dst, allocate(n * es, name));
    fill(dst);
    return add(name, {rows, cols}, dtype, dst, n * es);
  }

  // A norm vector: stored zero-centred, held as the full multiplier 1 + w in f32.
  Status norm(const std::string& name, const uint8_t* src, int64_t n, DType dtype) {
    Tensor stored{
        name, dtype, {n}, src, static_cast<uint64_t>(n) * static_cast<uint64_t>(dtype_info(dtype).block_bytes)};
    auto folded = fold_norm(stored, out_.tensors);
    if (!folded.ok()) return with_context(std::move(folded).error(), dir_);
    return add(name, {n}, DType::F32, folded->data, folded->nbytes);
  }

  int n_q4() const { return n_q4_; }
  int n_f32() const { return n_f32_; }

 private:
  Result<uint8_t*> allocate(uint64_t bytes, const std::string& name) {
    try {
      return out_.tensors.allocate(bytes);
    } catch (const std::bad_alloc&) {
      return resource_exhausted("{}: cannot allocate {} bytes for '{}'", dir_, bytes, name);
    }
  }
  Status add(const std::string& name, std::vector<int64_t> shape, DType dtype, const uint8_t* data, uint64_t nbytes) {
    if (out_.tensors.find(name)) return corrupt_input("{}: two arrays map to '{}'", dir_, name);
    Tensor t;
    t.name = name;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = data;
    t.nbytes = nbytes;
    out_.tensors.add(std::move(t));
    return {};
  }

  const std::string& dir_;
  LoadedCheckpoint& out_;
  std::vector<float> f32_;
  int n_q4_ = 0, n_f32_ = 0;
};

// What each array of the checkpoint is (step 1).
struct ArrayMap {
  std::map<const OrbaxArray*, std::vector<Use>> uses;
  std::map<int, std::map<Role, const OrbaxArray*>> layers;
  const OrbaxArray* embedding = nullptr;
  const OrbaxArray* final_norm = nullptr;
  int n_vision = 0, n_stack_types = 0;
  bool rlx = false;

  // The shape of `role` in `layer`: its array's, less the stacking axis for a slice of a stack.
  std::vector<int64_t> shape(int layer, Role role) const {
    const OrbaxArray* a = layers.at(layer).at(role);
    std::vector<int64_t> s = a->meta.shape;
    for (const Use& u : uses.at(a))
      if (u.layer == layer && u.role == role) {
        if (u.slice >= 0) s.erase(s.begin());
        break;
      }
    return s;
  }
};

// The dimensions the shapes give (step 2a).
struct Dims {
  int64_t V = 0, D = 0, N = 0, K = 0, H = 0, F = 0;
  bool gating_dff = false;  // gating_einsum is [2, D, F] (Gemma 1, Gemma 2 2B) rather than [2, F, D]
  bool fused_qkv = false;   // qkv_einsum rather than q_einsum + kv_einsum
};

// Step 1: what each array is. Names: FLAT ("transformer/layer_0/attn/q_einsum.w"), the gemma
// library's NESTED ("layer_0.attn.q_einsum.w"), STACKED ("transformer/stacked_layers/attention_type_0/...",
// one slice per layer of that attention type), optionally under rlx_networks/policy_network/.
Result<ArrayMap> map_arrays(const OrbaxCheckpoint& ckpt, const std::string& dir, CheckpointInfo& info) {
  ArrayMap m;
  auto& [uses, layers, embedding, final_norm, n_vision, n_stack_types, rlx] = m;
  std::map<std::pair<int, Role>, std::pair<const OrbaxArray*, int64_t>> stacked;  // (type, role) -> array
  for (const OrbaxArray& a : ckpt.arrays()) {
    info.tensors_by_dtype[std::string(dtype_name(a.meta.dtype))]++;
    info.n_params += static_cast<uint64_t>(a.meta.numel());
    info.file_bytes += a.meta.nbytes();
    std::vector<std::string> p = split_name(a.name);
    if (p.size() > 2 && p[0] == "rlx_networks" && p[1] == "policy_network") {
      p.erase(p.begin(), p.begin() + 2);
      rlx = true;
    }
    if (!p.empty() && p[0] == "params") p.erase(p.begin());
    if (!p.empty() && p[0] == "transformer") p.erase(p.begin());
    if (p.empty()) continue;
    if (p[0] == "SigLiPFromPatches_0" || p[0] == "vision_encoder" ||
        (p[0] == "embedder" && p.size() > 1 && p[1].rfind("mm_", 0) == 0)) {
      ++n_vision;
      info.vision_bytes += a.meta.nbytes();  // only the metadata is read: the arrays stay on disk
      continue;
    }
    if (a.name.find("_IntEinsum") != std::string::npos || a.name.find("_SimulateQuantized") != std::string::npos)
      return unsupported("{}: array '{}' uses the gemma.peft quantized-module layout, which is not supported", dir,
                         a.name);
    if (p == std::vector<std::string>{"embedder", "input_embedding"}) {
      embedding = &a;
      continue;
    }
    if (p == std::vector<std::string>{"final_norm", "scale"}) {
      final_norm = &a;
      continue;
    }
    int layer = -1, type = -1;
    if (p.size() > 1 && parse_index(p[0], "layer_", layer)) {
      auto role = layer_role({p.begin() + 1, p.end()});
      if (role) {
        if (layers[layer].count(*role)) return corrupt_input("{}: two arrays for layer {} ('{}')", dir, layer, a.name);
        layers[layer][*role] = &a;
        uses[&a].push_back({*role, layer, -1});
        continue;
      }
    } else if (p.size() > 2 && p[0] == "stacked_layers" && parse_index(p[1], "attention_type_", type)) {
      auto role = layer_role({p.begin() + 2, p.end()});
      if (role && !a.meta.shape.empty()) {
        stacked[{type, *role}] = {&a, a.meta.shape[0]};
        n_stack_types = std::max(n_stack_types, type + 1);
        continue;
      }
    }
    info.notes.push_back("ignored array " + a.name);
  }
  for (const auto& [key, entry] : stacked) {  // layer = slice * pattern length + attention type
    const auto& [type, role] = key;
    for (int64_t s = 0; s < entry.second; ++s) {
      const int layer = static_cast<int>(s * n_stack_types + type);
      if (layer > 4096) return corrupt_input("{}: implausible stacked layer count in '{}'", dir, entry.first->name);
      if (layers[layer].count(role))
        return corrupt_input("{}: two arrays for layer {} ('{}')", dir, layer, entry.first->name);
      layers[layer][role] = entry.first;
      uses[entry.first].push_back({role, layer, s});
    }
  }
  if (!embedding) return not_found("{}: no embedder input_embedding array: not a Gemma checkpoint", dir);
  if (!final_norm) return not_found("{}: no final_norm scale array", dir);
  if (layers.empty()) return not_found("{}: no transformer layers (layer_N arrays)", dir);
  if (layers.rbegin()->first != static_cast<int>(layers.size()) - 1)
    return corrupt_input("{}: transformer layers are not numbered 0..{}", dir, layers.size() - 1);
  uses[embedding].push_back({Role::kEmbedding, -1, -1});
  uses[final_norm].push_back({Role::kFinalNorm, -1, -1});
  return m;
}

// Step 2a: the dimensions, from the shapes of the embedding and layer 0 (an Orbax checkpoint
// stores no config). gating_einsum is [2, F, D], or [2, D, F] in Gemma 1 and Gemma 2 2B.
Result<Dims> read_dims(const ArrayMap& m, const std::string& dir, CheckpointInfo& info) {
  const auto& emb_shape = m.embedding->meta.shape;
  if (emb_shape.size() != 2)
    return corrupt_input("{}: '{}' has shape rank {}, expected [vocab, D]", dir, m.embedding->name, emb_shape.size());
  Dims d;
  d.V = emb_shape[0];
  d.D = emb_shape[1];
  const int64_t D = d.D;
  const auto& l0 = m.layers.at(0);
  int64_t N = 0, K = 0, H = 0, F = 0;
  if (l0.count(Role::kQ) && l0.count(Role::kKV)) {
    const auto q = m.shape(0, Role::kQ);
    const auto kv = m.shape(0, Role::kKV);
    if (q.size() != 3 || kv.size() != 4)
      return corrupt_input("{}: q_einsum/kv_einsum of layer 0 have unexpected ranks", dir);
    N = q[0];
    H = q[2];
    K = kv[1];
  } else if (l0.count(Role::kQKV)) {
    const auto qkv = m.shape(0, Role::kQKV);
    if (qkv.size() != 4) return corrupt_input("{}: qkv_einsum of layer 0 has an unexpected rank", dir);
    N = K = qkv[1];
    H = qkv[3];
  } else {
    return not_found("{}: layer 0 has no q_einsum + kv_einsum or qkv_einsum", dir);
  }
  bool& gating_dff = d.gating_dff;  // [2, D, F] (Gemma 1, Gemma 2 2B) rather than [2, F, D]
  if (!l0.count(Role::kGating)) return not_found("{}: layer 0 has no mlp gating_einsum", dir);
  {
    const auto g = m.shape(0, Role::kGating);
    if (g.size() != 3 || g[0] != 2)
      return corrupt_input("{}: gating_einsum of layer 0 has shape rank {}", dir, g.size());
    if (g[2] == D && g[1] != D) {
      F = g[1];
    } else if (g[1] == D && g[2] != D) {
      F = g[2];
      gating_dff = true;
    } else if (g[1] == D && g[2] == D) {
      F = D;
      info.notes.push_back("FFN width equals D: gating_einsum read as [2, F, D] (transposed layout)");
    } else {
      return corrupt_input("{}: gating_einsum of layer 0 has shape [2, {}, {}], neither [2, F, {}] nor [2, {}, F]", dir,
                           g[1], g[2], D, D);
    }
  }
  d.N = N;
  d.K = K;
  d.H = H;
  d.F = F;
  d.fused_qkv = l0.count(Role::kQKV) > 0;
  return d;
}

// Step 2b: the ModelConfig: generation from which norms exist, the settings from the release
// with this shape (or the generation's defaults, with a note).
Result<ModelConfig> infer_config(const ArrayMap& m, const Dims& d, const std::string& dir, CheckpointInfo& info) {
  const auto& l0 = m.layers.at(0);
  const auto [V, D, N, K, H, F, gating_dff, fused_qkv] = d;
  ModelConfig c;
  c.generation = l0.count(Role::kQueryNorm)      ? Generation::kGemma3
                 : l0.count(Role::kPostAttnNorm) ? Generation::kGemma2
                                                 : Generation::kGemma1;
  const auto in_int = [](int64_t v) { return v > 0 && v <= (int64_t{1} << 24); };
  if (!in_int(V) || !in_int(D) || !in_int(N) || !in_int(K) || !in_int(H) || !in_int(F))
    return corrupt_input("{}: implausible dimensions V={} D={} N={} K={} H={} F={}", dir, V, D, N, K, H, F);
  c.vocab_size = static_cast<int>(V);
  c.hidden = static_cast<int>(D);
  c.n_layers = static_cast<int>(m.layers.size());
  c.n_heads = static_cast<int>(N);
  c.n_kv_heads = static_cast<int>(K);
  c.head_dim = static_cast<int>(H);
  c.ffn = static_cast<int>(F);
  c.rms_eps = 1e-6f;
  c.qk_norm = c.generation == Generation::kGemma3;
  c.post_norms = c.generation != Generation::kGemma1;
  // An Orbax checkpoint stores no settings: the release's, or the generation's (with a note).
  const Variant* known = find_variant(c);
  const Variant& k = known ? *known : generation_defaults(c.generation);
  c.variant = k.name;
  if (!known)
    info.notes.push_back(
        fmt::format("{} shape (D={}, {} layers, {}x{} heads, {} KV, F={}) matches no released model: using {} defaults "
                    "(sliding window {}, RoPE {} local / {} global, query scale head_dim^-0.5, context {}{})",
                    generation_name(c.generation), D, c.n_layers, N, H, K, F, generation_name(c.generation),
                    k.sliding_window, k.local_rope_base, k.global_rope_base, k.context_length,
                    k.attn_softcap > 0 ? fmt::format(", soft-caps {} / {}", k.attn_softcap, k.final_softcap) : ""));
  apply_variant_settings(k, c);
  const std::string base = fs::path(dir).filename().string();
  c.instruction_tuned = base.find("-it") != std::string::npos || base.find("_it") != std::string::npos;
  if (c.instruction_tuned) info.notes.push_back("instruction-tuned (from the directory name " + base + ")");
  if (m.rlx) info.notes.push_back("stripped the rlx_networks/policy_network/ prefix");
  if (m.n_vision) info.notes.push_back(fmt::format("ignored {} vision-tower arrays (text only)", m.n_vision));
  if (m.n_stack_types) info.notes.push_back(fmt::format("stacked layers: {} attention types", m.n_stack_types));
  return c;
}

// Step 2c: every layer must have the same arrays as layer 0, with the shapes the config implies.
Status check_layers(const ArrayMap& m, const Dims& d, const ModelConfig& c, const std::string& dir) {
  const auto [V, D, N, K, H, F, gating_dff, fused_qkv] = d;
  const bool g3 = c.generation == Generation::kGemma3, post = c.post_norms;
  for (const auto& [l, roles] : m.layers) {
    std::vector<std::pair<Role, std::vector<int64_t>>> want = {
        {Role::kPreAttnNorm, {D}},
        {Role::kPreFfwNorm, {D}},
        {Role::kAttnOut, {N, H, D}},
        {Role::kGating, gating_dff ? std::vector<int64_t>{2, D, F} : std::vector<int64_t>{2, F, D}},
        {Role::kLinear, {F, D}}};
    if (fused_qkv) want.push_back({Role::kQKV, {3, N, D, H}});
    else want.insert(want.end(), {{Role::kQ, {N, D, H}}, {Role::kKV, {2, K, D, H}}});
    if (post) want.insert(want.end(), {{Role::kPostAttnNorm, {D}}, {Role::kPostFfwNorm, {D}}});
    if (g3) want.insert(want.end(), {{Role::kQueryNorm, {H}}, {Role::kKeyNorm, {H}}});
    if (roles.size() != want.size())
      return corrupt_input("{}: layer {} has {} arrays, layer 0 implies {}", dir, l, roles.size(), want.size());
    for (const auto& [role, shape] : want) {
      if (!roles.count(role)) return not_found("{}: layer {} lacks an array that layer 0 has", dir, l);
      const auto got = m.shape(l, role);
      if (got != shape)
        return corrupt_input("{}: '{}' (layer {}) has shape [{}], expected [{}]", dir, roles.at(role)->name, l,
                             fmt::join(got, ", "), fmt::join(shape, ", "));
    }
  }
  if (m.final_norm->meta.shape != std::vector<int64_t>{D})
    return corrupt_input("{}: '{}' has an unexpected shape", dir, m.final_norm->name);
  return c.validate(dir);
}

// Step 3: read each array once and emit the tensors it feeds: Flax einsum layouts become
// row-major [out, in] matrices under the canonical names, norms 1 + w, int4-grid f32 Q4_0F.
Status convert_arrays(const OrbaxCheckpoint& ckpt, const ArrayMap& m, const Dims& d, const std::string& dir,
                      LoadedCheckpoint& out) {
  // Plain copies, not a structured binding: the lambdas below capture them (clang 14 cannot).
  const int64_t V = d.V, D = d.D, N = d.N, K = d.K, H = d.H, F = d.F;
  const bool gating_dff = d.gating_dff;
  // Memory planned before any is touched: the converted tensors stay in memory, and one array at
  // a time is read in full. Zarr arrays may leave chunks out (they read as the fill value), so a
  // few bytes of metadata can declare arrays far larger than the files: refuse before allocating.
  uint64_t total = 0, largest = 0;
  for (const auto& entry : m.uses) {
    total += entry.first->meta.nbytes();
    largest = std::max(largest, entry.first->meta.nbytes());
  }
  if (const uint64_t avail = available_memory(); total + largest > avail)
    return resource_exhausted("{}: converting the checkpoint needs {:.1f} GiB of memory, {:.1f} GiB are available", dir,
                              static_cast<double>(total + largest) / (1 << 30), static_cast<double>(avail) / (1 << 30));
  Converter cv(dir, out);
  std::vector<uint8_t> raw;
  for (const auto& entry : m.uses) {
    const OrbaxArray* a = entry.first;  // (not a structured binding: lambdas below capture it)
    const std::vector<Use>& list = entry.second;
    const DType dt = a->meta.dtype;
    if (dt != DType::F32 && dt != DType::BF16 && dt != DType::F16)
      return unsupported("{}: array '{}' has type {}, expected float32, bfloat16 or float16", dir, a->name,
                         dtype_name(dt));
    try {
      raw.assign(a->meta.nbytes(), 0);
    } catch (const std::bad_alloc&) {
      return resource_exhausted("{}: cannot allocate {} bytes to read '{}'", dir, a->meta.nbytes(), a->name);
    }
    GE_TRY(ckpt.read(*a, raw));
    const size_t es = static_cast<size_t>(a->meta.itemsize);
    for (const Use& u : list) {
      const uint64_t slice_bytes = u.slice >= 0 ? a->meta.nbytes() / static_cast<uint64_t>(a->meta.shape[0]) : 0;
      const uint8_t* src = raw.data() + (u.slice >= 0 ? static_cast<uint64_t>(u.slice) * slice_bytes : 0);
      const std::string blk = fmt::format("blk.{}.", u.layer);
      auto per_head_qkv = [&](const uint8_t* s, int64_t heads) {  // [heads, D, H] -> [heads * H, D]
        return [=](uint8_t* dst) {
          for (int64_t h = 0; h < heads; ++h)
            transpose(s + static_cast<size_t>(h * D * H) * es, D, H, es, dst + static_cast<size_t>(h * H * D) * es);
        };
      };
      switch (u.role) {
        case Role::kEmbedding:
          GE_TRY(
              cv.matrix("token_embd.weight", V, D, dt, [&](uint8_t* dst) { std::memcpy(dst, src, a->meta.nbytes()); }));
          break;
        case Role::kFinalNorm: GE_TRY(cv.norm("output_norm.weight", src, D, dt)); break;
        case Role::kPreAttnNorm: GE_TRY(cv.norm(blk + "attn_norm.weight", src, D, dt)); break;
        case Role::kPostAttnNorm: GE_TRY(cv.norm(blk + "post_attention_norm.weight", src, D, dt)); break;
        case Role::kPreFfwNorm: GE_TRY(cv.norm(blk + "ffn_norm.weight", src, D, dt)); break;
        case Role::kPostFfwNorm: GE_TRY(cv.norm(blk + "post_ffw_norm.weight", src, D, dt)); break;
        case Role::kQueryNorm: GE_TRY(cv.norm(blk + "attn_q_norm.weight", src, H, dt)); break;
        case Role::kKeyNorm: GE_TRY(cv.norm(blk + "attn_k_norm.weight", src, H, dt)); break;
        case Role::kQ: GE_TRY(cv.matrix(blk + "attn_q.weight", N * H, D, dt, per_head_qkv(src, N))); break;
        case Role::kKV: {
          const size_t part = static_cast<size_t>(K * D * H) * es;
          GE_TRY(cv.matrix(blk + "attn_k.weight", K * H, D, dt, per_head_qkv(src, K)));
          GE_TRY(cv.matrix(blk + "attn_v.weight", K * H, D, dt, per_head_qkv(src + part, K)));
          break;
        }
        case Role::kQKV: {
          const size_t part = static_cast<size_t>(N * D * H) * es;
          GE_TRY(cv.matrix(blk + "attn_q.weight", N * H, D, dt, per_head_qkv(src, N)));
          GE_TRY(cv.matrix(blk + "attn_k.weight", N * H, D, dt, per_head_qkv(src + part, N)));
          GE_TRY(cv.matrix(blk + "attn_v.weight", N * H, D, dt, per_head_qkv(src + 2 * part, N)));
          break;
        }
        case Role::kAttnOut:  // [N, H, D] = [N*H, D] -> [D, N*H]
          GE_TRY(cv.matrix(blk + "attn_output.weight", D, N * H, dt,
                           [&](uint8_t* dst) { transpose(src, N * H, D, es, dst); }));
          break;
        case Role::kGating: {
          const size_t part = static_cast<size_t>(F * D) * es;
          for (int i = 0; i < 2; ++i) {
            const uint8_t* s = src + i * part;
            auto fill = [&](uint8_t* dst) {
              if (gating_dff) transpose(s, D, F, es, dst);
              else std::memcpy(dst, s, part);
            };
            GE_TRY(cv.matrix(blk + (i == 0 ? "ffn_gate.weight" : "ffn_up.weight"), F, D, dt, fill));
          }
          break;
        }
        case Role::kLinear:  // [F, D] -> [D, F]
          GE_TRY(cv.matrix(blk + "ffn_down.weight", D, F, dt, [&](uint8_t* dst) { transpose(src, F, D, es, dst); }));
          break;
      }
    }
  }
  if (cv.n_q4())
    out.info.notes.push_back(
        fmt::format("{} of {} float32 matrices lie on a 4-bit grid per 32 inputs (int4 QAT): held as Q4_0F", cv.n_q4(),
                    cv.n_q4() + cv.n_f32()));
  return {};
}

}  // namespace

Result<LoadedCheckpoint> load_orbax(const std::string& dir_in) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  GE_ASSIGN(auto ckpt, OrbaxCheckpoint::open(dir));
  LoadedCheckpoint out;
  CheckpointInfo& info = out.info;
  GE_ASSIGN(const ArrayMap m, map_arrays(*ckpt, dir, info));
  GE_ASSIGN(const Dims d, read_dims(m, dir, info));
  GE_ASSIGN(ModelConfig c, infer_config(m, d, dir, info));
  GE_TRY(check_layers(m, d, c, dir));
  GE_TRY(convert_arrays(*ckpt, m, d, dir, out));

  // sqrt(D) rounded to the embedding's stored type, as the reference computes it (§2.2).
  const float s = std::sqrt(static_cast<float>(d.D));
  c.embed_scale = m.embedding->meta.dtype == DType::BF16  ? bf16_to_f32(f32_to_bf16(s))
                  : m.embedding->meta.dtype == DType::F16 ? f16_to_f32(f32_to_f16(s))
                                                          : s;
  info.format = "Orbax " + ckpt->layout();
  info.path = dir;
  out.config = std::move(c);
  out.tokenizer_dir = fs::path(dir).parent_path().string();  // Kaggle puts tokenizer.model beside the checkpoint
  if (out.tokenizer_dir.empty()) out.tokenizer_dir = ".";
  return out;
}

}  // namespace gemma

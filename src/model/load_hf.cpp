// Hugging Face checkpoints: config.json (docs/spec/formats.md §3.3) + safetensors, for GemmaForCausalLM,
// Gemma2ForCausalLM, Gemma3ForCausalLM and the language model of Gemma3ForConditionalGeneration.
// Tensors are renamed to the canonical scheme; norms get Gemma's + 1 folded in (as float32).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>

#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "kernels/dequant.h"
#include "kernels/quant_blocks.h"
#include "model/canonical.h"
#include "model/loaders.h"
#include "model/variants.h"
#include "util/half.h"
#include "util/mapped_file.h"

namespace gemma {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

template <typename T>
Result<T> field(const json& j, const char* key, const std::string& src, std::optional<T> fallback = std::nullopt) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    return not_found("{}: config.json lacks '{}'", src, key);
  }
  if constexpr (std::is_same_v<T, std::string>) {
    if (!j[key].is_string()) return corrupt_input("{}: config.json '{}' is not a string", src, key);
  } else {
    if (!j[key].is_number()) return corrupt_input("{}: config.json '{}' is not a number", src, key);
  }
  return j[key].get<T>();
}

// An integer field, read as 64-bit and range-checked before it narrows to int: "12.5", "12" or
// 2^32 + 2 layers are errors instead of a truncation, an exception or a wrap to 2.
Result<int> int_field(const json& j, const char* key, const std::string& src, int64_t lo, int64_t hi,
                      std::optional<int> fallback = std::nullopt) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    return not_found("{}: config.json lacks '{}'", src, key);
  }
  const json& v = j[key];
  int64_t n = 0;
  if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})) {
    n = v.get<int64_t>();
  } else if (v.is_number_float() && std::trunc(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 1e15) {
    n = static_cast<int64_t>(v.get<double>());  // 12.0 from a tool that writes every number as a float
  } else {
    return corrupt_input("{}: config.json '{}' is not an integer ({})", src, key, v.dump().substr(0, 40));
  }
  if (n < lo || n > hi) return corrupt_input("{}: config.json '{}' = {} is outside {}..{}", src, key, n, lo, hi);
  return static_cast<int>(n);
}

// A float member of an object, or the fallback where absent; an error for any other type.
Result<float> float_member(const json& o, const char* key, float fallback, const std::string& src) {
  if (!o.is_object() || !o.contains(key) || o[key].is_null()) return fallback;
  if (!o[key].is_number()) return corrupt_input("{}: config.json '{}' is not a number", src, key);
  return o[key].get<float>();
}

// Reads linear scaling from either rope_scaling {"rope_type"|"type": "linear", "factor": f} or the
// newer per-layer-type rope_parameters {"full_attention": {...}, "sliding_attention": {...}}.
Status read_rope(const json& tc, const std::string& src, float& global_base, float& local_base, float& global_scale) {
  global_base = 10000;
  local_base = 10000;
  global_scale = 1;
  auto linear_factor = [&](const json& r, float& out) -> Status {
    if (!r.is_object()) return {};
    std::string type = "default";
    for (const char* k : {"type", "rope_type"}) {  // rope_type wins where both are given
      if (!r.contains(k) || r[k].is_null()) continue;
      if (!r[k].is_string()) return corrupt_input("{}: RoPE scaling '{}' is not a string", src, k);
      type = r[k].get<std::string>();
    }
    if (type == "default") return {};
    if (type != "linear") return unsupported("{}: RoPE scaling '{}' is not supported (Gemma uses linear)", src, type);
    if (!r.contains("factor") || !r["factor"].is_number() || !(r["factor"].get<double>() > 0))
      return corrupt_input("{}: linear RoPE scaling without a valid factor", src);
    out = r["factor"].get<float>();
    return {};
  };
  if (tc.contains("rope_parameters") && tc["rope_parameters"].is_object()) {
    const json& rp = tc["rope_parameters"];
    if (rp.contains("full_attention") || rp.contains("sliding_attention")) {
      if (rp.contains("full_attention")) {
        GE_ASSIGN(global_base, float_member(rp["full_attention"], "rope_theta", 10000.0f, src));
        GE_TRY(linear_factor(rp["full_attention"], global_scale));
      }
      if (rp.contains("sliding_attention")) {
        GE_ASSIGN(local_base, float_member(rp["sliding_attention"], "rope_theta", 10000.0f, src));
        float s = 1;
        GE_TRY(linear_factor(rp["sliding_attention"], s));
        if (s != 1) return unsupported("{}: RoPE scaling on sliding layers is not a Gemma configuration", src);
      }
      return {};
    }
    GE_ASSIGN(global_base, float_member(rp, "rope_theta", 10000.0f, src));
    local_base = global_base;
    return linear_factor(rp, global_scale);
  }
  GE_ASSIGN(global_base, field<float>(tc, "rope_theta", src, 10000.0f));
  GE_ASSIGN(local_base, field<float>(tc, "rope_local_base_freq", src, 10000.0f));
  if (tc.contains("rope_scaling")) GE_TRY(linear_factor(tc["rope_scaling"], global_scale));
  return {};
}

// Gemma3ForConditionalGeneration's vision_config (a SiglipVisionConfig) and the projector's
// settings at the top level. Defaults are SiglipVisionConfig's / Gemma3Config's own.
Result<VisionConfig> parse_vision_config(const json& root, const std::string& src) {
  const json& vc = root["vision_config"];
  VisionConfig v;
  GE_ASSIGN(v.image_size, int_field(vc, "image_size", src, 1, 8192, 224));
  GE_ASSIGN(v.patch_size, int_field(vc, "patch_size", src, 1, 8192, 16));
  GE_ASSIGN(v.hidden, int_field(vc, "hidden_size", src, 1, 65536, 768));
  GE_ASSIGN(v.n_layers, int_field(vc, "num_hidden_layers", src, 1, 1024, 12));
  GE_ASSIGN(v.n_heads, int_field(vc, "num_attention_heads", src, 1, 1024, 12));
  GE_ASSIGN(v.ffn, int_field(vc, "intermediate_size", src, 1, 1 << 20, 3072));
  GE_ASSIGN(v.layer_norm_eps, field<float>(vc, "layer_norm_eps", src, 1e-6f));
  GE_ASSIGN(v.tokens_per_image, int_field(root, "mm_tokens_per_image", src, 1, 1 << 20, 256));
  GE_ASSIGN(v.boi_token, int_field(root, "boi_token_index", src, 0, 1 << 24, -1));
  GE_ASSIGN(v.eoi_token, int_field(root, "eoi_token_index", src, 0, 1 << 24, -1));
  GE_ASSIGN(v.image_token, int_field(root, "image_token_index", src, 0, 1 << 24, -1));
  GE_ASSIGN(int channels, int_field(vc, "num_channels", src, 1, 16, 3));
  if (channels != 3) return unsupported("{}: a vision tower of {} input channels (RGB only)", src, channels);
  GE_ASSIGN(std::string act, field<std::string>(vc, "hidden_act", src, std::string("gelu_pytorch_tanh")));
  if (act != "gelu_pytorch_tanh")
    return unsupported("{}: vision hidden_act '{}' (Gemma 3's SigLIP uses gelu_pytorch_tanh)", src, act);
  if (vc.contains("vision_use_head") && vc["vision_use_head"].is_boolean() && vc["vision_use_head"].get<bool>())
    return unsupported("{}: a vision tower with a pooling head (vision_use_head) is not Gemma 3's", src);
  GE_TRY(v.validate(src));
  return v;
}

Result<ModelConfig> parse_config(const json& root, const std::string& src) {
  if (!root.is_object()) return corrupt_input("{}: config.json is not an object", src);
  GE_ASSIGN(std::string model_type, field<std::string>(root, "model_type", src));
  const json* tc = &root;
  ModelConfig c;
  if (model_type == "gemma") {
    c.generation = Generation::kGemma1;
  } else if (model_type == "gemma2") {
    c.generation = Generation::kGemma2;
  } else if (model_type == "gemma3_text") {
    c.generation = Generation::kGemma3;
  } else if (model_type == "gemma3") {
    c.generation = Generation::kGemma3;
    if (!root.contains("text_config") || !root["text_config"].is_object())
      return not_found("{}: gemma3 config.json without text_config", src);
    tc = &root["text_config"];
  } else {
    return unsupported("{}: model_type '{}' is not a Gemma text model", src, model_type);
  }
  GE_ASSIGN(c.vocab_size, int_field(*tc, "vocab_size", src, 1, 1 << 24, model_type == "gemma3" ? 262208 : 256000));
  GE_ASSIGN(c.hidden, int_field(*tc, "hidden_size", src, 1, 65536));
  GE_ASSIGN(c.n_layers, int_field(*tc, "num_hidden_layers", src, 1, 1024));
  GE_ASSIGN(c.n_heads, int_field(*tc, "num_attention_heads", src, 1, 1024));
  GE_ASSIGN(c.n_kv_heads, int_field(*tc, "num_key_value_heads", src, 1, 1024, c.n_heads));
  if (c.n_heads <= 0) return corrupt_input("{}: invalid num_attention_heads", src);
  GE_ASSIGN(c.head_dim, int_field(*tc, "head_dim", src, 1, 65536, std::max(1, c.hidden / c.n_heads)));
  GE_ASSIGN(c.ffn, int_field(*tc, "intermediate_size", src, 1, 1 << 20));
  GE_ASSIGN(c.context_length, int_field(*tc, "max_position_embeddings", src, 1, 1 << 24, 8192));
  GE_ASSIGN(c.rms_eps, field<float>(*tc, "rms_norm_eps", src, 1e-6f));
  GE_ASSIGN(float qpas, field<float>(*tc, "query_pre_attn_scalar", src, static_cast<float>(c.head_dim)));
  if (!(qpas > 0)) return corrupt_input("{}: invalid query_pre_attn_scalar", src);
  c.query_scale = 1.0f / std::sqrt(qpas);
  GE_ASSIGN(c.attn_softcap, field<float>(*tc, "attn_logit_softcapping", src, 0.0f));
  GE_ASSIGN(c.final_softcap, field<float>(*tc, "final_logit_softcapping", src, 0.0f));
  c.qk_norm = c.generation == Generation::kGemma3;
  c.post_norms = c.generation != Generation::kGemma1;

  std::vector<bool> sliding(static_cast<size_t>(c.n_layers), false);
  if (c.generation != Generation::kGemma1) {
    GE_ASSIGN(c.sliding_window,
              int_field(*tc, "sliding_window", src, 1, 1 << 24, c.generation == Generation::kGemma2 ? 4096 : 512));
    if (tc->contains("layer_types") && (*tc)["layer_types"].is_array()) {
      const json& lt = (*tc)["layer_types"];
      if (static_cast<int>(lt.size()) != c.n_layers)
        return corrupt_input("{}: layer_types has {} entries for {} layers", src, lt.size(), c.n_layers);
      for (size_t i = 0; i < lt.size(); ++i) {
        if (!lt[i].is_string()) return corrupt_input("{}: layer_types[{}] is not a string", src, i);
        const std::string t = lt[i].get<std::string>();
        if (t != "sliding_attention" && t != "full_attention")
          return unsupported("{}: unknown layer type '{}'", src, t);
        sliding[i] = t == "sliding_attention";
      }
    } else if (c.generation == Generation::kGemma3 && tc->contains("sliding_window_pattern")) {
      GE_ASSIGN(int period, int_field(*tc, "sliding_window_pattern", src, 1, 1024));
      if (period <= 0) return corrupt_input("{}: invalid sliding_window_pattern", src);
      for (int l = 0; l < c.n_layers; ++l) sliding[static_cast<size_t>(l)] = l % period < period - 1;
    } else {
      sliding = default_sliding_pattern(c.generation, c.n_layers);
    }
  }
  float global_base, local_base, global_scale;
  GE_TRY(read_rope(*tc, src, global_base, local_base, global_scale));
  if (c.generation != Generation::kGemma3) local_base = global_base;  // one base before Gemma 3
  c.layers = make_layers(c.n_layers, sliding, local_base, global_base, global_scale);
  c.variant = detect_variant(c);
  if (model_type == "gemma3" && root.contains("vision_config") && root["vision_config"].is_object()) {
    GE_ASSIGN(c.vision, parse_vision_config(root, src));
  }
  return c;
}

// AWQ "gemm" int4 layout (docs/spec/formats.md §4): for a linear W [N, K] (out, in), qweight is I32 [K, N/8]
// with 8 nibbles per word along N in the order AWQ_ORDER, qzeros I32 [K/G, N/8] likewise, scales
// [K/G, N]. W[n][k] = (u - z) * scale. The QAT conversion has every zero point at 8 and G = 32,
// which is exactly our Q4_0F block: nibble u, value (u - 8) * d, kept 4-bit in memory.
Status convert_awq(const std::string& prefix, const TensorSet& raw, TensorSet& out, const std::string& src) {
  const Tensor* qw = raw.find(prefix + ".qweight");
  const Tensor* qz = raw.find(prefix + ".qzeros");
  const Tensor* sc = raw.find(prefix + ".scales");
  if (!qw || !qz || !sc) return not_found("{}: AWQ tensor {} lacks qweight, qzeros or scales", src, prefix);
  if (qw->dtype != DType::I32 || qz->dtype != DType::I32 || qw->shape.size() != 2 || qz->shape.size() != 2 ||
      sc->shape.size() != 2 || (sc->dtype != DType::BF16 && sc->dtype != DType::F16 && sc->dtype != DType::F32))
    return corrupt_input("{}: AWQ tensor {} has unexpected types or ranks", src, prefix);
  const int64_t K = qw->shape[0], N = qw->shape[1] * 8;
  if (K <= 0 || N <= 0) return corrupt_input("{}: AWQ tensor {} is empty ({})", src, prefix, qw->shape_string());
  if (K % 32 != 0 || sc->shape[0] * 32 != K || sc->shape[1] != N || qz->shape[0] != K / 32 || qz->shape[1] != N / 8)
    return corrupt_input("{}: AWQ tensor {}: qweight {}, qzeros {}, scales {} do not describe groups of 32", src,
                         prefix, qw->shape_string(), qz->shape_string(), sc->shape_string());
  static constexpr int kReverseOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // column offset -> nibble slot
  auto word = [](const Tensor* t, int64_t i) {
    uint32_t v;
    std::memcpy(&v, t->data + 4 * i, 4);
    return v;
  };
  std::vector<float> scales(static_cast<size_t>(sc->numel()));
  dequantize_row(sc->dtype, sc->data, scales.data(), sc->numel());
  const int64_t n_groups = K / 32;
  auto* blocks = reinterpret_cast<quant::BlockQ4_0F*>(out.allocate(static_cast<uint64_t>(N * n_groups) * 20));
  for (int64_t n = 0; n < N; ++n) {
    const int shift = 4 * kReverseOrder[n % 8];
    for (int64_t g = 0; g < n_groups; ++g) {
      const uint32_t z = (word(qz, g * (N / 8) + n / 8) >> shift) & 0xF;
      if (z != 8)
        return unsupported(
            "{}: AWQ tensor {} has zero point {} (only the symmetric QAT layout, zero point 8, is supported)", src,
            prefix, z);
      quant::BlockQ4_0F& b = blocks[n * n_groups + g];
      b.d = scales[static_cast<size_t>(g * N + n)];
      for (int j = 0; j < 16; ++j) {
        const uint32_t lo = (word(qw, (g * 32 + j) * (N / 8) + n / 8) >> shift) & 0xF;
        const uint32_t hi = (word(qw, (g * 32 + j + 16) * (N / 8) + n / 8) >> shift) & 0xF;
        b.qs[j] = static_cast<uint8_t>(lo | hi << 4);
      }
    }
  }
  Tensor t;
  t.name = prefix + ".weight";
  t.dtype = DType::Q4_0F;
  t.shape = {N, K};
  t.data = reinterpret_cast<const uint8_t*>(blocks);
  t.nbytes = static_cast<uint64_t>(N * n_groups) * 20;
  out.add(std::move(t));
  return {};
}

bool is_vision_or_head(const std::string& n) {
  return n.find("vision_tower") != std::string::npos || n.find("multi_modal_projector") != std::string::npos ||
         n.find("lm_head") != std::string::npos;
}

}  // namespace

HfPaths hf_paths(const std::string& path) {
  // A directory, its model.safetensors.index.json (both mean the whole sharded checkpoint), or
  // one .safetensors file.
  HfPaths p;
  const bool is_index = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  std::error_code ec;  // the error_code overloads: a symlink loop is "absent", not an exception
  p.is_file = fs::is_regular_file(path, ec) && !is_index;
  p.dir = (p.is_file || is_index) ? fs::path(path).parent_path().string() : path;
  p.config = (fs::path(p.dir) / "config.json").string();
  return p;
}

Result<ModelConfig> read_hf_config(const std::string& path) {
  const HfPaths p = hf_paths(path);
  std::error_code ec;
  if (!fs::exists(p.config, ec)) return not_found("{}: no config.json beside the safetensors", p.dir);
  GE_ASSIGN(std::string text, read_text_file(p.config));
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded()) return corrupt_input("{}: invalid JSON", p.config);
  // parse_config checks every type it reads; the catch is a safety net, so that a case it missed is
  // still an error line and not an abort.
  Result<ModelConfig> parsed = internal_error("{}: unreadable", p.config);
  try {
    parsed = parse_config(root, p.config);
  } catch (const json::exception& e) { return corrupt_input("{}: unexpected value: {}", p.config, e.what()); }
  return parsed;
}

Result<LoadedCheckpoint> load_hf(const std::string& path, FilePages pages) {
  const HfPaths paths = hf_paths(path);
  const bool is_file = paths.is_file;
  const std::string& dir = paths.dir;
  const std::string& config_path = paths.config;
  GE_ASSIGN(ModelConfig c, read_hf_config(path));

  // The vision tower (and an lm_head the tied embedding replaces) is left out of the read: with
  // FilePages::kHuge its bytes are not copied, so a text-only load does not pay for the tower.
  // Its tensors are still counted (sizes in `skipped`), for inspect and the memory plan.
  TensorSet raw, skipped;
  TensorFilter filter{[](const std::string& n) { return !is_vision_or_head(n); }, &skipped, 0};
  if (is_file) GE_TRY(read_safetensors(path, raw, pages, &filter));
  else GE_TRY(read_safetensors_dir(dir, raw, pages, &filter));

  LoadedCheckpoint out;
  CheckpointInfo& info = out.info;
  // AWQ int4 linears become Q4_0F tensors named like ordinary weights.
  TensorSet awq;
  for (const auto& [name, t] : raw.all()) {
    const std::string suffix = ".qweight";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        !is_vision_or_head(name))
      GE_TRY(convert_awq(name.substr(0, name.size() - suffix.size()), raw, awq, path));
  }
  if (awq.size() > 0) info.notes.push_back(fmt::format("{} AWQ int4 linears held as 4-bit groups (Q4_0F)", awq.size()));
  auto is_awq_part = [](const std::string& n) {
    for (const char* s : {".qweight", ".qzeros", ".scales"}) {
      const size_t len = std::strlen(s);
      if (n.size() > len && n.compare(n.size() - len, len, s) == 0) return true;
    }
    return false;
  };
  std::vector<std::pair<std::string, const Tensor*>> sources;
  for (const auto& [name, t] : raw.all())
    if (!is_awq_part(name)) sources.emplace_back(name, &t);
  for (const auto& [name, t] : awq.all()) sources.emplace_back(name, &t);
  for (const auto& [name, t] : skipped.all()) sources.emplace_back(name, &t);  // counted, never read
  info.copied_bytes = filter.copied_bytes;
  for (const auto& [name, tp] : sources) {
    const Tensor& t = *tp;
    info.tensors_by_dtype[std::string(dtype_name(t.dtype))]++;
    info.n_params += static_cast<uint64_t>(t.numel());
    info.file_bytes += t.nbytes;
    if (name.find("vision_tower") != std::string::npos || name.find("multi_modal_projector") != std::string::npos)
      info.vision_bytes += t.nbytes;  // left in the file: load_vision reads it when an image is given
    if (is_vision_or_head(name)) continue;
    auto m = canonical_from_hf(name, c.generation);
    if (!m) {
      info.notes.push_back("ignored tensor " + name);
      continue;
    }
    if (out.tensors.find(m->name)) return corrupt_input("{}: tensor '{}' appears twice (as '{}')", path, m->name, name);
    Tensor ct = t;
    if (m->norm) {  // Gemma stores norms zero-centred: fold in the 1 + w (in float32).
      auto folded = fold_norm(t, out.tensors);
      if (!folded.ok()) return with_context(std::move(folded).error(), path);
      ct = std::move(folded).value();
    }
    ct.name = m->name;
    out.tensors.add(std::move(ct));
  }
  out.tensors.merge_owners(raw);
  out.tensors.merge_owners(awq);
  const Tensor* emb = out.tensors.find("token_embd.weight");
  if (!emb) return not_found("{}: no embedding tensor (model.embed_tokens.weight)", path);
  // sqrt(D) in the dtype the references compute in for this checkpoint (§2.2).
  const float s = std::sqrt(static_cast<float>(c.hidden));
  c.embed_scale = emb->dtype == DType::BF16  ? bf16_to_f32(f32_to_bf16(s))
                  : emb->dtype == DType::F16 ? f16_to_f32(f32_to_f16(s))
                                             : s;
  if (emb->shape.size() == 2 && emb->shape[0] != c.vocab_size) {
    info.notes.push_back("embedding has " + std::to_string(emb->shape[0]) + " rows; config says " +
                         std::to_string(c.vocab_size));
    c.vocab_size = static_cast<int>(emb->shape[0]);
  }
  GE_TRY(c.validate(config_path));
  info.format = is_file ? "safetensors" : "safetensors (HF directory)";
  info.path = path;
  out.config = std::move(c);
  out.tokenizer_dir = dir;
  return out;
}

}  // namespace gemma

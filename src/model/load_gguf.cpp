// ModelConfig from GGUF metadata, following llama.cpp's reading of the gemma, gemma2 and gemma3
// architectures (docs/spec/architecture.md §12.1-12.3). GGUF tensors already use our canonical names and
// store norms as 1 + w, so they bind as they are.
#include <cmath>

#include "formats/gguf.h"
#include "model/loaders.h"
#include "model/variants.h"

namespace gemma {

namespace {

struct Reader {
  const GgufFile& f;
  std::string arch;

  Result<int> get_int(const std::string& key, std::optional<int> fallback = std::nullopt) const {
    GE_ASSIGN(auto v, f.get_uint(arch + "." + key));
    if (!v) {
      if (fallback) return *fallback;
      return not_found("{}: missing metadata '{}.{}'", f.path(), arch, key);
    }
    if (*v > (1u << 30)) return corrupt_input("{}: metadata '{}.{}' = {} is out of range", f.path(), arch, key, *v);
    return static_cast<int>(*v);
  }
  Result<float> get_float(const std::string& key, float fallback) const {
    GE_ASSIGN(auto v, f.get_float(arch + "." + key));
    return v ? static_cast<float>(*v) : fallback;
  }
  bool has(const std::string& key) const { return f.find(arch + "." + key) != nullptr; }
};

// The sliding-window pattern key may be absent, a period N (layer l local iff l % N < N - 1), or
// a per-layer bool array (true = local).
Result<std::vector<bool>> read_pattern(const Reader& r, Generation g, int n_layers) {
  const std::string key = r.arch + ".attention.sliding_window_pattern";
  const GgufValue* v = r.f.find(key);
  if (!v) return default_sliding_pattern(g, n_layers);
  std::vector<bool> s(static_cast<size_t>(n_layers));
  if (v->type == GgufType::ARRAY) {
    GE_ASSIGN(auto arr, r.f.get_int_array(key));
    if (static_cast<int>(arr.size()) != n_layers)
      return corrupt_input("{}: '{}' has {} entries for {} layers", r.f.path(), key, arr.size(), n_layers);
    for (size_t i = 0; i < arr.size(); ++i) s[i] = arr[i] != 0;
    return s;
  }
  GE_ASSIGN(auto period, r.f.get_uint(key));
  if (*period == 0 || *period > 1u << 20) return corrupt_input("{}: invalid '{}' = {}", r.f.path(), key, *period);
  for (int l = 0; l < n_layers; ++l) s[static_cast<size_t>(l)] = (static_cast<uint64_t>(l) % *period) < *period - 1;
  return s;
}

}  // namespace

Result<LoadedCheckpoint> load_gguf(const std::string& path, FilePages pages) {
  GE_ASSIGN(std::shared_ptr<GgufFile> f, GgufFile::open(path, pages));
  GE_ASSIGN(auto arch_opt, f->get_string("general.architecture"));
  if (!arch_opt) return not_found("{}: missing general.architecture", path);
  Reader r{*f, *arch_opt};
  ModelConfig c;
  if (r.arch == "gemma") c.generation = Generation::kGemma1;
  else if (r.arch == "gemma2") c.generation = Generation::kGemma2;
  else if (r.arch == "gemma3") c.generation = Generation::kGemma3;
  else
    return unsupported("{}: architecture '{}' is not a Gemma model (expected gemma, gemma2 or gemma3)", path, r.arch);

  GE_ASSIGN(c.hidden, r.get_int("embedding_length"));
  GE_ASSIGN(c.n_layers, r.get_int("block_count"));
  GE_ASSIGN(c.ffn, r.get_int("feed_forward_length"));
  GE_ASSIGN(c.n_heads, r.get_int("attention.head_count"));
  GE_ASSIGN(c.n_kv_heads, r.get_int("attention.head_count_kv", c.n_heads));
  if (c.n_heads <= 0) return corrupt_input("{}: invalid head count {}", path, c.n_heads);
  GE_ASSIGN(c.head_dim, r.get_int("attention.key_length", c.hidden / c.n_heads));
  GE_ASSIGN(int value_len, r.get_int("attention.value_length", c.head_dim));
  if (value_len != c.head_dim)
    return corrupt_input("{}: key_length {} differs from value_length {}", path, c.head_dim, value_len);
  GE_ASSIGN(c.context_length, r.get_int("context_length", 8192));
  GE_ASSIGN(c.rms_eps, r.get_float("attention.layer_norm_rms_epsilon", 1e-6f));
  const Tensor* emb = f->tensors().find("token_embd.weight");
  if (!emb || emb->shape.size() != 2) return not_found("{}: missing or malformed token_embd.weight", path);
  c.vocab_size = static_cast<int>(emb->shape[0]);

  const bool gemma1 = c.generation == Generation::kGemma1, gemma2 = c.generation == Generation::kGemma2;
  c.qk_norm = c.generation == Generation::kGemma3;
  c.post_norms = !gemma1;
  // llama.cpp multiplies by the exact sqrtf(D); our converter records a rounded one (bf16 sources).
  GE_ASSIGN(c.embed_scale, r.get_float("embedding_scale", std::sqrt(static_cast<float>(c.hidden))));

  // Sliding windows and RoPE.
  std::vector<bool> sliding(static_cast<size_t>(c.n_layers), false);
  GE_ASSIGN(float base, r.get_float("rope.freq_base", 10000.0f));
  GE_ASSIGN(float base_swa, r.get_float("rope.freq_base_swa", gemma2 ? base : 10000.0f));
  if (gemma2) {
    GE_ASSIGN(c.sliding_window, r.get_int("attention.sliding_window", 4096));
    if (c.sliding_window == 0) return corrupt_input("{}: gemma2.attention.sliding_window is 0", path);
    GE_ASSIGN(sliding, read_pattern(r, c.generation, c.n_layers));
  } else if (!gemma1) {
    GE_ASSIGN(c.sliding_window, r.get_int("attention.sliding_window", 0));
    if (c.sliding_window > 0) { GE_ASSIGN(sliding, read_pattern(r, c.generation, c.n_layers)); }
  }
  float rope_scale = 1;
  GE_ASSIGN(auto scaling_type, f->get_string(r.arch + ".rope.scaling.type"));
  if (scaling_type && *scaling_type != "none") {
    if (*scaling_type != "linear")
      return unsupported("{}: RoPE scaling type '{}' is not supported (Gemma uses linear)", path, *scaling_type);
    GE_ASSIGN(rope_scale, r.get_float("rope.scaling.factor", 1.0f));
    if (!(rope_scale > 0)) return corrupt_input("{}: invalid rope.scaling.factor", path);
  }
  c.layers = make_layers(c.n_layers, sliding, base_swa, base, rope_scale);

  // Soft-caps: Gemma 2 always has both (defaults 50 and 30); Gemma 3 only if a file sets one.
  if (gemma2) {
    GE_ASSIGN(c.attn_softcap, r.get_float("attn_logit_softcapping", 50.0f));
    GE_ASSIGN(c.final_softcap, r.get_float("final_logit_softcapping", 30.0f));
    if (c.attn_softcap <= 0 || c.final_softcap <= 0) return corrupt_input("{}: a soft-cap of 0 is malformed", path);
  } else if (c.generation == Generation::kGemma3) {
    GE_ASSIGN(c.final_softcap, r.get_float("final_logit_softcapping", 0.0f));
  }

  CheckpointInfo info;
  // GGUF stores no query_pre_attn_scalar. Our own converter writes it; otherwise follow llama.cpp:
  // (D/N)^-0.5 for the 27B models, head_dim^-0.5 for every other release (§12.1).
  c.variant = detect_variant(c);
  if (r.has("attention.query_pre_attn_scalar")) {
    GE_ASSIGN(float qs, r.get_float("attention.query_pre_attn_scalar", 0));
    if (!(qs > 0)) return corrupt_input("{}: invalid query_pre_attn_scalar", path);
    c.query_scale = 1.0f / std::sqrt(qs);
  } else if (c.variant == "27b" || c.variant == "27b_v3") {
    c.query_scale = 1.0f / std::sqrt(static_cast<float>(c.hidden / c.n_heads));
    info.notes.push_back("query scale (D/N)^-0.5 as llama.cpp does for the 27B models (GGUF stores none)");
  } else {
    c.query_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  }
  GE_ASSIGN(auto tmpl, f->get_string("tokenizer.chat_template"));
  c.instruction_tuned = tmpl.has_value();
  GE_TRY(c.validate(path));

  info.format = "GGUF v" + std::to_string(f->version());
  info.path = path;
  info.file_bytes = f->file_size();
  for (const auto& [name, t] : f->tensors().all()) {
    info.tensors_by_dtype[std::string(dtype_name(t.dtype))]++;
    info.n_params += static_cast<uint64_t>(t.numel());
  }
  LoadedCheckpoint out;
  out.config = std::move(c);
  out.info = std::move(info);
  out.gguf = f;
  out.tensors = f->tensors();
  return out;
}

}  // namespace gemma

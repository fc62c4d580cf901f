// load_vision: the vision tower of a checkpoint, on its own, in the canonical (llama.cpp mmproj)
// naming. Sources: an HF Gemma3ForConditionalGeneration checkpoint (both key spellings, f32/bf16,
// sharded), a llama.cpp mmproj GGUF (convert_hf_to_gguf.py --mmproj) or a gemma_pytorch .ckpt
// (load_vision_torch.cpp). Files are mapped, never
// copied, so only the tower's pages are ever read.
#include <filesystem>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/canonical.h"
#include "model/loaders.h"
#include "vision/encoder.h"
#include "vision/load_vision_formats.h"

namespace gemma {

namespace fs = std::filesystem;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The HF name of a tower or projector tensor -> the canonical name; nullopt for anything else.
// Prefixes: "model.vision_tower.vision_model." (transformers >= 4.52), "vision_tower.vision_model."
// (older), and either without the "vision_model." level.
std::optional<std::string> canonical_vision_name(std::string_view n) {
  if (n.rfind("model.", 0) == 0 &&
      (n.rfind("model.vision_tower.", 0) == 0 || n.rfind("model.multi_modal_projector.", 0) == 0))
    n.remove_prefix(6);
  if (n.rfind("multi_modal_projector.", 0) == 0) {
    n.remove_prefix(std::string_view("multi_modal_projector.").size());
    if (n == "mm_input_projection_weight") return "mm.input_projection.weight";
    if (n == "mm_soft_emb_norm.weight") return "mm.soft_emb_norm.weight";
    return std::nullopt;
  }
  if (n.rfind("vision_tower.", 0) != 0) return std::nullopt;
  n.remove_prefix(std::string_view("vision_tower.").size());
  if (n.rfind("vision_model.", 0) == 0) n.remove_prefix(std::string_view("vision_model.").size());
  static const std::pair<std::string_view, std::string_view> kFixed[] = {
      {"embeddings.patch_embedding.weight", "v.patch_embd.weight"},
      {"embeddings.patch_embedding.bias", "v.patch_embd.bias"},
      {"embeddings.position_embedding.weight", "v.position_embd.weight"},
      {"post_layernorm.weight", "v.post_ln.weight"},
      {"post_layernorm.bias", "v.post_ln.bias"},
  };
  for (const auto& [hf, canon] : kFixed)
    if (n == hf) return std::string(canon);
  const std::string_view layers = "encoder.layers.";
  if (n.rfind(layers, 0) != 0) return std::nullopt;
  n.remove_prefix(layers.size());
  const size_t dot = n.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 4) return std::nullopt;
  const std::string_view idx = n.substr(0, dot);
  for (char ch : idx)
    if (ch < '0' || ch > '9') return std::nullopt;
  std::string_view rest = n.substr(dot + 1);
  static const std::pair<std::string_view, std::string_view> kBlock[] = {
      {"layer_norm1.", "ln1."},         {"layer_norm2.", "ln2."},         {"self_attn.q_proj.", "attn_q."},
      {"self_attn.k_proj.", "attn_k."}, {"self_attn.v_proj.", "attn_v."}, {"self_attn.out_proj.", "attn_out."},
      {"mlp.fc1.", "ffn_up."},          {"mlp.fc2.", "ffn_down."},
  };
  for (const auto& [hf, canon] : kBlock)
    if (rest.rfind(hf, 0) == 0) {
      const std::string_view leaf = rest.substr(hf.size());
      if (leaf != "weight" && leaf != "bias") return std::nullopt;
      return fmt::format("v.blk.{}.{}{}", idx, canon, leaf);
    }
  return std::nullopt;
}

Result<LoadedVision> load_hf_vision(const std::string& path) {
  GE_ASSIGN(ModelConfig c, read_hf_config(path));
  const HfPaths paths = hf_paths(path);
  if (!c.vision)
    return invalid_argument("{}: this checkpoint has no vision tower (a text-only model cannot take images)",
                            paths.config);
  TensorSet raw;
  // Mapped, not copied: only the tower's pages of the (possibly sharded) files are read.
  if (paths.is_file) GE_TRY(read_safetensors(path, raw, FilePages::kMapped));
  else GE_TRY(read_safetensors_dir(paths.dir, raw, FilePages::kMapped));
  LoadedVision out;
  out.config = *c.vision;
  out.text_hidden = c.hidden;
  out.source = path;
  for (const auto& [name, t] : raw.all()) {
    std::optional<std::string> canon = canonical_vision_name(name);
    if (!canon) continue;
    if (out.tensors.find(*canon)) return corrupt_input("{}: vision tensor '{}' appears twice", path, *canon);
    Tensor ct = t;
    if (*canon == "mm.soft_emb_norm.weight") {  // Gemma3RMSNorm: 1 + w, folded in float32
      auto folded = fold_norm(t, out.tensors);
      if (!folded.ok()) return with_context(std::move(folded).error(), path);
      ct = std::move(folded).value();
    }
    ct.name = *canon;
    out.tensors.add(std::move(ct));
  }
  if (out.tensors.size() == 0)
    return invalid_argument("{}: config.json describes a vision tower but the safetensors hold none of its tensors",
                            path);
  out.tensors.merge_owners(raw);
  return out;
}

// The language model's width, where the checkpoint says it cheaply (GGUF metadata, config.json);
// nullopt for formats where finding it would mean loading the model.
Result<std::optional<int>> model_hidden(const std::string& model_path) {
  if (model_path.empty()) return std::optional<int>();
  std::error_code ec;
  if (ends_with(model_path, ".gguf") && fs::is_regular_file(model_path, ec)) {
    GE_ASSIGN(auto g, GgufFile::open(model_path));
    GE_ASSIGN(auto arch, g->get_string("general.architecture"));
    if (!arch) return std::optional<int>();
    GE_ASSIGN(auto n, g->get_uint(*arch + ".embedding_length"));
    if (!n || *n > 65536) return std::optional<int>();
    return std::optional<int>(static_cast<int>(*n));
  }
  if (fs::exists(hf_paths(model_path).config, ec)) {
    GE_ASSIGN(ModelConfig c, read_hf_config(model_path));
    return std::optional<int>(c.hidden);
  }
  return std::optional<int>();
}

}  // namespace

Result<LoadedVision> load_mmproj(std::span<const uint8_t> bytes, const std::string& name,
                                 std::shared_ptr<const void> owner);

namespace {

Result<LoadedVision> from_mmproj(std::shared_ptr<GgufFile> g) {
  const std::string& src = g->path();
  LoadedVision out;
  out.source = src;
  GE_ASSIGN(auto has_vision, g->get_bool("clip.has_vision_encoder"));
  if (!has_vision || !*has_vision)
    return invalid_argument("{}: not a vision mmproj (clip.has_vision_encoder is not true)", src);
  GE_ASSIGN(auto proj, g->get_string("clip.vision.projector_type"));
  if (!proj) { GE_ASSIGN(proj, g->get_string("clip.projector_type")); }
  if (!proj) return not_found("{}: mmproj without clip.projector_type", src);
  if (*proj != "gemma3")
    return unsupported("{}: mmproj projector type '{}' (only Gemma 3's 'gemma3' is supported)", src, *proj);
  auto uint_key = [&](const char* key, std::optional<int> fallback) -> Result<int> {
    GE_ASSIGN(auto v, g->get_uint(key));
    if (!v) {
      if (fallback) return *fallback;
      return not_found("{}: mmproj lacks '{}'", src, key);
    }
    if (*v > (1u << 20)) return corrupt_input("{}: mmproj '{}' = {} is out of range", src, key, *v);
    return static_cast<int>(*v);
  };
  VisionConfig& v = out.config;
  GE_ASSIGN(v.image_size, uint_key("clip.vision.image_size", std::nullopt));
  GE_ASSIGN(v.patch_size, uint_key("clip.vision.patch_size", std::nullopt));
  GE_ASSIGN(v.hidden, uint_key("clip.vision.embedding_length", std::nullopt));
  GE_ASSIGN(v.n_layers, uint_key("clip.vision.block_count", std::nullopt));
  GE_ASSIGN(v.n_heads, uint_key("clip.vision.attention.head_count", std::nullopt));
  GE_ASSIGN(v.ffn, uint_key("clip.vision.feed_forward_length", std::nullopt));
  GE_ASSIGN(auto eps, g->get_float("clip.vision.attention.layer_norm_epsilon"));
  v.layer_norm_eps = eps ? static_cast<float>(*eps) : 1e-6f;
  // llama.cpp's gemma3 projector pools by scale_factor (4 unless written: clip.cpp's default).
  GE_ASSIGN(int scale, uint_key("clip.vision.projector.scale_factor", 4));
  if (v.patch_size <= 0 || scale <= 0 || v.image_size / v.patch_size % scale != 0)
    return corrupt_input("{}: mmproj pooling scale {} does not divide the {}-patch grid", src, scale,
                         v.patch_size > 0 ? v.image_size / v.patch_size : 0);
  const int side = v.image_size / v.patch_size / scale;
  v.tokens_per_image = side * side;
  GE_TRY(v.validate(src));
  for (const auto& [name, t] : g->tensors().all())
    if (name.rfind("v.", 0) == 0 || name.rfind("mm.", 0) == 0) out.tensors.add(t);
  const Tensor* p = out.tensors.find("mm.input_projection.weight");
  if (!p || p->shape.size() != 2) return not_found("{}: mmproj lacks a 2-D mm.input_projection.weight", src);
  if (p->shape[1] <= 0 || p->shape[1] > 65536)
    return corrupt_input("{}: mm.input_projection.weight has shape {}", src, p->shape_string());
  out.text_hidden = static_cast<int>(p->shape[1]);
  out.tensors.keep_alive(g);  // the map the tensors point into
  return out;
}

}  // namespace

Result<LoadedVision> load_mmproj(std::span<const uint8_t> bytes, const std::string& name,
                                 std::shared_ptr<const void> owner) {
  GE_ASSIGN(auto g, GgufFile::parse(bytes, name, std::move(owner)));
  return from_mmproj(std::move(g));
}

Result<LoadedVision> load_vision(const std::string& model_path, const std::string& mmproj_path) {
  if (!mmproj_path.empty()) {
    GE_ASSIGN(auto g, GgufFile::open(mmproj_path, FilePages::kMapped));
    GE_ASSIGN(LoadedVision out, from_mmproj(std::move(g)));
    GE_ASSIGN(std::optional<int> hidden, model_hidden(model_path));
    if (hidden && *hidden != out.text_hidden)
      return invalid_argument(
          "{}: the mmproj projects images to width {}, but the model {} is {} wide (an mmproj of "
          "another model?)",
          mmproj_path, out.text_hidden, model_path, *hidden);
    return out;
  }
  if (model_path.empty()) return invalid_argument("load_vision: no model or mmproj path");
  std::error_code ec;
  if (ends_with(model_path, ".gguf"))
    return invalid_argument(
        "{}: a GGUF language model holds no vision tower; give the matching mmproj GGUF (--mmproj PATH)", model_path);
  if (fs::exists(hf_paths(model_path).config, ec)) return load_hf_vision(model_path);
  if (!fs::exists(model_path, ec)) return not_found("{}: no such file or directory", model_path);
  if (is_torch_checkpoint_path(model_path)) return load_torch_vision(model_path);
  return unsupported(
      "{}: reading the vision tower of this checkpoint format is not supported yet (HF safetensors "
      "with a vision tower, a gemma_pytorch .ckpt, or a GGUF model with --mmproj)",
      model_path);
}

}  // namespace gemma

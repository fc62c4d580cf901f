// load_torch_vision: the SigLIP tower of a gemma_pytorch multimodal Gemma 3 checkpoint
// (gemma/gemma3_model.py Gemma3ForMultimodalLM, gemma/siglip_vision/siglip_vision_model.py).
// Tensors are views into the file's mapping (read_torch_checkpoint), so only the tower's pages are
// read; the projection is transposed into a buffer of its own (nn.Linear stores [out, in]).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "formats/dtype.h"
#include "formats/torch/torch_checkpoint.h"
#include "kernels/dequant.h"
#include "model/canonical.h"
#include "util/half.h"
#include "vision/load_vision_formats.h"

namespace gemma {

namespace fs = std::filesystem;

namespace {

// gemma_pytorch's SiglipVisionModelConfig: 16 heads (of 72 in the 1152-wide So400m tower) and
// AveragePool2D's fixed 4x4 window (64x64 patches -> 256 soft tokens).
constexpr int kHeads = 16;
constexpr int kPool = 4;

bool has_suffix(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// gemma_pytorch name under "siglip_vision_model." -> canonical; nullopt for anything else.
std::optional<std::string> canonical_torch_vision_name(std::string_view n) {
  static const std::pair<std::string_view, std::string_view> kFixed[] = {
      {"patch_embedding.weight", "v.patch_embd.weight"},
      {"patch_embedding.bias", "v.patch_embd.bias"},
      {"position_embedding.weight", "v.position_embd.weight"},
      {"final_norm.weight", "v.post_ln.weight"},
      {"final_norm.bias", "v.post_ln.bias"},
  };
  for (const auto& [pt, canon] : kFixed)
    if (n == pt) return std::string(canon);
  const std::string_view blocks = "encoder_blocks.";
  if (n.rfind(blocks, 0) != 0) return std::nullopt;
  n.remove_prefix(blocks.size());
  const size_t dot = n.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 4) return std::nullopt;
  const std::string_view idx = n.substr(0, dot);
  for (char ch : idx)
    if (ch < '0' || ch > '9') return std::nullopt;
  const std::string_view rest = n.substr(dot + 1);
  static const std::pair<std::string_view, std::string_view> kBlock[] = {
      {"layer_norm1.", "ln1."},         {"layer_norm2.", "ln2."},         {"self_attn.q_proj.", "attn_q."},
      {"self_attn.k_proj.", "attn_k."}, {"self_attn.v_proj.", "attn_v."}, {"self_attn.o_proj.", "attn_out."},
      {"mlp.fc1.", "ffn_up."},          {"mlp.fc2.", "ffn_down."},
  };
  for (const auto& [pt, canon] : kBlock)
    if (rest.rfind(pt, 0) == 0) {
      const std::string_view leaf = rest.substr(pt.size());
      if (leaf != "weight" && leaf != "bias") return std::nullopt;
      return fmt::format("v.blk.{}.{}{}", idx, canon, leaf);
    }
  return std::nullopt;
}

Result<std::string> resolve_torch(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  if (fs::exists(fs::path(path) / "pytorch_model.bin.index.json", ec)) return path;
  std::vector<std::string> ckpts;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".ckpt") ckpts.push_back(it->path().string());
  if (ec) return invalid_argument("{}: cannot list the directory: {}", path, ec.message());
  if (ckpts.size() != 1)
    return corrupt_input("{}: expected one .ckpt file in the directory, found {}", path, ckpts.size());
  return ckpts[0];
}

// mm_input_projection.weight [text_hidden, D] (float, or int8 with a per-row weight_scaler) ->
// [D, text_hidden] float32, the canonical in x out orientation.
Result<Tensor> transposed_projection(const Tensor& w, const Tensor* scaler, TensorSet& storage,
                                     const std::string& src) {
  if (w.shape.size() != 2 || w.shape[0] <= 0 || w.shape[1] <= 0 || w.shape[0] > 65536 || w.shape[1] > 65536)
    return corrupt_input("{}: mm_input_projection.weight has shape {}", src, w.shape_string());
  const int64_t T = w.shape[0], D = w.shape[1];
  const bool int8 = w.dtype == DType::I8;
  if (int8 && (!scaler || scaler->numel() != T || scaler->shape.size() != 1))
    return corrupt_input("{}: int8 mm_input_projection.weight without a [{}] weight_scaler", src, T);
  if (!int8 && w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16)
    return unsupported("{}: mm_input_projection.weight has type {}", src, dtype_name(w.dtype));
  std::vector<float> row(static_cast<size_t>(D)), scales(static_cast<size_t>(T), 1.0f);
  if (int8) dequantize_row(scaler->dtype, scaler->data, scales.data(), T);
  auto* out = reinterpret_cast<float*>(storage.allocate(static_cast<uint64_t>(T * D) * 4));
  const uint64_t row_bytes = w.nbytes / static_cast<uint64_t>(T);
  for (int64_t t = 0; t < T; ++t) {
    const uint8_t* p = w.data + static_cast<uint64_t>(t) * row_bytes;
    if (int8)
      for (int64_t d = 0; d < D; ++d) row[static_cast<size_t>(d)] = static_cast<float>(static_cast<int8_t>(p[d]));
    else dequantize_row(w.dtype, p, row.data(), D);
    for (int64_t d = 0; d < D; ++d) out[d * T + t] = row[static_cast<size_t>(d)] * scales[static_cast<size_t>(t)];
  }
  Tensor t;
  t.name = "mm.input_projection.weight";
  t.dtype = DType::F32;
  t.shape = {D, T};
  t.data = reinterpret_cast<const uint8_t*>(out);
  t.nbytes = static_cast<uint64_t>(T * D) * 4;
  return t;
}

}  // namespace

bool is_torch_checkpoint_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "pytorch_model.bin.index.json", ec)) return true;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().extension() == ".ckpt") return true;
    return false;
  }
  return has_suffix(path, ".ckpt") || has_suffix(path, ".pt") || has_suffix(path, ".bin") ||
         has_suffix(path, "pytorch_model.bin.index.json");
}

Result<LoadedVision> load_torch_vision(const std::string& path) {
  GE_ASSIGN(const std::string file, resolve_torch(path));
  TensorSet raw;
  GE_TRY(read_torch_checkpoint(file, raw));
  LoadedVision out;
  out.source = file;
  const std::string_view prefix = "siglip_vision_model.";
  std::map<int, int> blocks;  // block index -> tensors seen
  for (const auto& [name, t] : raw.all()) {
    if (name.rfind(prefix, 0) != 0) continue;
    std::optional<std::string> canon = canonical_torch_vision_name(std::string_view(name).substr(prefix.size()));
    if (!canon) return corrupt_input("{}: unexpected vision tensor '{}'", file, name);
    if (canon->rfind("v.blk.", 0) == 0) blocks[std::atoi(canon->c_str() + 6)]++;
    Tensor ct = t;
    ct.name = *canon;
    out.tensors.add(std::move(ct));
  }
  if (out.tensors.size() == 0)
    return invalid_argument(
        "{}: this checkpoint has no vision tower (no siglip_vision_model.* tensors; a text-only model cannot take "
        "images)",
        file);
  const Tensor* norm = raw.find("mm_soft_embedding_norm.weight");
  const Tensor* proj = raw.find("mm_input_projection.weight");
  if (!norm || !proj)
    return not_found("{}: a vision tower without mm_soft_embedding_norm.weight / mm_input_projection.weight", file);
  {
    auto folded = fold_norm(*norm, out.tensors);  // gemma_pytorch's RMSNorm adds the unit offset: 1 + w
    if (!folded.ok()) return with_context(std::move(folded).error(), file);
    Tensor n = std::move(folded).value();
    n.name = "mm.soft_emb_norm.weight";
    out.tensors.add(std::move(n));
  }
  GE_ASSIGN(Tensor p, transposed_projection(*proj, raw.find("mm_input_projection.weight_scaler"), out.tensors, file));
  out.text_hidden = static_cast<int>(p.shape[1]);
  out.tensors.add(std::move(p));

  // The config, from the shapes (the layout has none) and gemma_pytorch's fixed values.
  const Tensor* pos = out.tensors.find("v.position_embd.weight");
  const Tensor* patch = out.tensors.find("v.patch_embd.weight");
  const Tensor* fc1 = out.tensors.find("v.blk.0.ffn_up.weight");
  if (!pos || !patch || !fc1 || pos->shape.size() != 2 || patch->shape.size() != 4 || fc1->shape.size() != 2)
    return corrupt_input("{}: vision tower lacks a 2-D position embedding, a 4-D patch embedding or block 0's fc1",
                         file);
  VisionConfig& v = out.config;
  const int64_t n_patches = pos->shape[0];
  const int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n_patches))));
  if (n_patches <= 0 || n_patches > (int64_t{1} << 20) || side * side != n_patches)
    return corrupt_input("{}: {} position embeddings are not a square patch grid", file, n_patches);
  if (patch->shape[2] != patch->shape[3] || patch->shape[2] <= 0 || patch->shape[2] > 1024)
    return corrupt_input("{}: patch embedding has shape {}", file, patch->shape_string());
  if (side % kPool != 0)
    return unsupported("{}: a {}x{} patch grid cannot be pooled by gemma_pytorch's 4x4 window", file, side, side);
  v.hidden = static_cast<int>(pos->shape[1]);
  v.patch_size = static_cast<int>(patch->shape[2]);
  v.image_size = static_cast<int>(side) * v.patch_size;
  v.ffn = static_cast<int>(fc1->shape[0]);
  v.n_heads = kHeads;
  v.tokens_per_image = static_cast<int>((side / kPool) * (side / kPool));
  v.layer_norm_eps = 1e-6f;
  v.n_layers = static_cast<int>(blocks.size());
  for (int i = 0; i < v.n_layers; ++i)
    if (!blocks.count(i)) return corrupt_input("{}: vision encoder block {} is missing", file, i);
  GE_TRY(v.validate(file));
  out.tensors.merge_owners(raw);
  return out;
}

}  // namespace gemma

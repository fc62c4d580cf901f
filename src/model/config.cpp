#include "model/config.h"

#include <cmath>

namespace gemma {

const char* generation_name(Generation g) {
  switch (g) {
    case Generation::kGemma1: return "Gemma 1";
    case Generation::kGemma2: return "Gemma 2";
    case Generation::kGemma3: return "Gemma 3";
  }
  return "?";
}

int ModelConfig::n_sliding_layers() const {
  int n = 0;
  for (const LayerConfig& l : layers) n += l.sliding;
  return n;
}

Status ModelConfig::validate(const std::string& source) const {
  auto positive = [&](int v, const char* what) -> Status {
    if (v <= 0 || v > (1 << 24)) return corrupt_input("{}: invalid {} = {}", source, what, v);
    return {};
  };
  GE_TRY(positive(vocab_size, "vocabulary size"));
  GE_TRY(positive(hidden, "hidden size"));
  GE_TRY(positive(n_layers, "layer count"));
  GE_TRY(positive(n_heads, "head count"));
  GE_TRY(positive(n_kv_heads, "KV head count"));
  GE_TRY(positive(head_dim, "head dim"));
  GE_TRY(positive(ffn, "feed-forward size"));
  GE_TRY(positive(context_length, "context length"));
  if (n_layers > 1024) return corrupt_input("{}: implausible layer count {}", source, n_layers);
  if (n_heads % n_kv_heads != 0)
    return corrupt_input("{}: {} query heads is not a multiple of {} KV heads", source, n_heads, n_kv_heads);
  if (head_dim % 2 != 0) return corrupt_input("{}: head dim {} must be even for RoPE", source, head_dim);
  if (static_cast<int>(layers.size()) != n_layers)
    return corrupt_input("{}: {} layer entries for {} layers", source, layers.size(), n_layers);
  if (n_sliding_layers() > 0 && sliding_window <= 0)
    return corrupt_input("{}: sliding-window layers but no valid window size", source);
  if (!(std::isfinite(query_scale) && query_scale > 0)) return corrupt_input("{}: invalid query scale", source);
  if (!(std::isfinite(rms_eps) && rms_eps > 0 && rms_eps < 1))
    return corrupt_input("{}: invalid RMSNorm epsilon", source);
  if (!(std::isfinite(attn_softcap) && attn_softcap >= 0) || !(std::isfinite(final_softcap) && final_softcap >= 0))
    return corrupt_input("{}: invalid logit soft-cap", source);
  for (const LayerConfig& l : layers)
    if (!(std::isfinite(l.rope_base) && l.rope_base > 1) || !(std::isfinite(l.rope_scale) && l.rope_scale > 0))
      return corrupt_input("{}: invalid RoPE base or scale", source);
  return {};
}

std::vector<bool> default_sliding_pattern(Generation g, int n_layers) {
  std::vector<bool> s(static_cast<size_t>(n_layers), false);
  for (int i = 0; i < n_layers; ++i) {
    if (g == Generation::kGemma2) s[static_cast<size_t>(i)] = (i % 2 == 0);
    if (g == Generation::kGemma3) s[static_cast<size_t>(i)] = ((i + 1) % 6 != 0);
  }
  return s;
}

std::vector<LayerConfig> make_layers(int n_layers, const std::vector<bool>& sliding, float local_base,
                                     float global_base, float global_rope_scale) {
  std::vector<LayerConfig> layers(static_cast<size_t>(n_layers));
  for (size_t i = 0; i < layers.size(); ++i) {
    bool s = i < sliding.size() && sliding[i];
    layers[i].sliding = s;
    layers[i].rope_base = s ? local_base : global_base;
    layers[i].rope_scale = s ? 1.0f : global_rope_scale;
  }
  return layers;
}

int VisionConfig::pool_kernel() const {
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(tokens_per_image))));
  return side > 0 ? patches_per_side() / side : 0;
}

Status VisionConfig::validate(const std::string& source) const {
  auto positive = [&](int v, const char* what) -> Status {
    if (v <= 0 || v > (1 << 20)) return corrupt_input("{}: vision {} = {} is not a usable size", source, what, v);
    return {};
  };
  GE_TRY(positive(image_size, "image_size"));
  GE_TRY(positive(patch_size, "patch_size"));
  GE_TRY(positive(hidden, "hidden_size"));
  GE_TRY(positive(n_layers, "num_hidden_layers"));
  GE_TRY(positive(n_heads, "num_attention_heads"));
  GE_TRY(positive(ffn, "intermediate_size"));
  GE_TRY(positive(tokens_per_image, "tokens per image"));
  if (image_size % patch_size != 0)
    return corrupt_input("{}: vision image_size {} is not a whole number of {}-pixel patches", source, image_size,
                         patch_size);
  if (image_size > 8192) return unsupported("{}: vision image_size {} is over 8192", source, image_size);
  if (hidden % n_heads != 0)
    return corrupt_input("{}: vision hidden_size {} is not divisible by {} heads", source, hidden, n_heads);
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(tokens_per_image))));
  if (side * side != tokens_per_image || patches_per_side() % side != 0)
    return corrupt_input(
        "{}: {} tokens per image do not pool a {}x{} patch grid evenly (need a square grid "
        "whose side divides {})",
        source, tokens_per_image, patches_per_side(), patches_per_side(), patches_per_side());
  if (!(layer_norm_eps > 0) || !(layer_norm_eps < 1))
    return corrupt_input("{}: vision layer_norm_eps {} is not a small positive number", source, layer_norm_eps);
  return {};
}

}  // namespace gemma

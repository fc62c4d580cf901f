#include "model/variants.h"

#include <cmath>

namespace gemma {

namespace {

constexpr Generation kG1 = Generation::kGemma1, kG2 = Generation::kGemma2, kG3 = Generation::kGemma3;

// docs/spec/architecture.md §1.1-1.3. Columns: generation, name, releases; layers, D, N, K, H, F;
// W, local RoPE base, global RoPE base, global RoPE scale, query_pre_attn_scalar, context,
// attention soft-cap, final soft-cap.
constexpr Variant kReleased[] = {
    {kG1, "2b", "Gemma 1 2B, CodeGemma 2B", 18, 2048, 8, 1, 256, 16384, 0, 10000, 10000, 1, 256, 8192, 0, 0},
    {kG1, "7b", "Gemma 1 7B, CodeGemma 7B", 28, 3072, 16, 16, 256, 24576, 0, 10000, 10000, 1, 256, 8192, 0, 0},
    {kG2, "2b-v2", "Gemma 2 2B", 26, 2304, 8, 4, 256, 9216, 4096, 10000, 10000, 1, 256, 8192, 50, 30},
    {kG2, "9b", "Gemma 2 9B", 42, 3584, 16, 8, 256, 14336, 4096, 10000, 10000, 1, 256, 8192, 50, 30},
    {kG2, "27b", "Gemma 2 27B", 46, 4608, 32, 16, 128, 36864, 4096, 10000, 10000, 1, 144, 8192, 50, 30},
    {kG3, "270m", "Gemma 3 270M", 18, 640, 4, 1, 256, 2048, 512, 10000, 1000000, 1, 256, 32768, 0, 0},
    {kG3, "1b", "Gemma 3 1B", 26, 1152, 4, 1, 256, 6912, 512, 10000, 1000000, 1, 256, 32768, 0, 0},
    {kG3, "4b", "Gemma 3 4B", 34, 2560, 8, 4, 256, 10240, 1024, 10000, 1000000, 8, 256, 131072, 0, 0},
    {kG3, "12b", "Gemma 3 12B", 48, 3840, 16, 8, 256, 15360, 1024, 10000, 1000000, 8, 256, 131072, 0, 0},
    {kG3, "27b_v3", "Gemma 3 27B", 62, 5376, 32, 16, 128, 21504, 1024, 10000, 1000000, 8, 168, 131072, 0, 0},
};

// Shapes that match no release: the generation's common settings (those of its smaller models),
// with query_pre_attn_scalar = head_dim.
constexpr Variant kDefaults[] = {
    {kG1, "custom", "", 0, 0, 0, 0, 0, 0, 0, 10000, 10000, 1, 0, 8192, 0, 0},
    {kG2, "custom", "", 0, 0, 0, 0, 0, 0, 4096, 10000, 10000, 1, 0, 8192, 50, 30},
    {kG3, "custom", "", 0, 0, 0, 0, 0, 0, 512, 10000, 1000000, 1, 0, 32768, 0, 0},
};

}  // namespace

bool Variant::matches_shape(const ModelConfig& c) const {
  return generation == c.generation && layers == c.n_layers && hidden == c.hidden && heads == c.n_heads &&
         kv_heads == c.n_kv_heads && head_dim == c.head_dim && ffn == c.ffn;
}

float Variant::query_scalar(int model_head_dim) const {
  return static_cast<float>(query_pre_attn_scalar ? query_pre_attn_scalar : model_head_dim);
}

std::span<const Variant> released_variants() { return kReleased; }

const Variant* find_variant(const ModelConfig& c) {
  for (const Variant& v : kReleased)
    if (v.matches_shape(c)) return &v;
  return nullptr;
}

std::string detect_variant(const ModelConfig& c) {
  const Variant* v = find_variant(c);
  return v ? v->name : "custom";
}

const Variant& generation_defaults(Generation g) {
  for (const Variant& v : kDefaults)
    if (v.generation == g) return v;
  return kDefaults[0];
}

void apply_variant_settings(const Variant& v, ModelConfig& c) {
  c.sliding_window = v.sliding_window;
  c.context_length = v.context_length;
  c.query_scale = 1.0f / std::sqrt(v.query_scalar(c.head_dim));
  c.attn_softcap = v.attn_softcap;
  c.final_softcap = v.final_softcap;
  c.layers = make_layers(c.n_layers, default_sliding_pattern(c.generation, c.n_layers), v.local_rope_base,
                         v.global_rope_base, v.global_rope_scale);
}

}  // namespace gemma

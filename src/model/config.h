// ModelConfig: the single source of truth for a model's architecture, read from the checkpoint
// (GGUF metadata, HF config.json, ...) and never from a user-written file. The model code reads
// only these fields; it never guesses behaviour from the layer count (docs/spec/architecture.md §8).
// Loaders whose files lack a setting look the released model up by its whole shape in the one
// table of releases (model/variants.h) and fill the field from that; see docs/architecture.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace gemma {

enum class Generation { kGemma1, kGemma2, kGemma3 };
const char* generation_name(Generation g);

struct LayerConfig {
  bool sliding = false;     // local (sliding-window) attention layer
  float rope_base = 10000;  // RoPE theta
  float rope_scale = 1;     // linear scaling: positions are divided by this factor
};

// Gemma 3's SigLIP vision tower and projector (docs/spec/architecture.md §4), for checkpoints that
// carry one. Filled by the loaders that read a tower; the language model never reads it.
struct VisionConfig {
  int image_size = 0;  // square input, pixels
  int patch_size = 0;  // square patches: (image_size / patch_size)^2 tokens before pooling
  int hidden = 0;      // tower width
  int n_layers = 0;
  int n_heads = 0;
  int ffn = 0;
  int tokens_per_image = 0;  // soft tokens after average pooling (256 in the released models)
  float layer_norm_eps = 1e-6f;
  // Token ids of the image markers where the checkpoint names them (config.json boi_token_index,
  // eoi_token_index, image_token_index); -1: not given (take them from the tokenizer).
  int boi_token = -1, eoi_token = -1, image_token = -1;

  int patches_per_side() const { return patch_size > 0 ? image_size / patch_size : 0; }
  int n_patches() const { return patches_per_side() * patches_per_side(); }
  int head_dim() const { return n_heads > 0 ? hidden / n_heads : 0; }
  // The pooling window's side: patches_per_side / sqrt(tokens_per_image) (HF's AvgPool2d kernel).
  int pool_kernel() const;
  // Positive sizes, whole patches, heads dividing the width, a square token grid that divides the
  // patch grid; errors name the field and `source`.
  Status validate(const std::string& source) const;
};

struct ModelConfig {
  Generation generation = Generation::kGemma3;
  std::string variant;     // gemma_pytorch-style name ("270m", "1b", "2b-v2", ...) or "custom"
  int vocab_size = 0;      // rows of the embedding matrix (may exceed the tokenizer's size)
  int hidden = 0;          // D
  int n_layers = 0;        // L
  int n_heads = 0;         // N (query heads)
  int n_kv_heads = 0;      // K
  int head_dim = 0;        // H (not always D / N)
  int ffn = 0;             // F, width of one of gate/up
  int context_length = 0;  // trained maximum context
  int sliding_window = 0;  // W: a local-layer query sees itself and the W-1 previous positions
  float rms_eps = 1e-6f;
  float query_scale = 0;           // query_pre_attn_scalar^-0.5
  float attn_softcap = 0;          // Gemma 2: 50; 0 = none
  float final_softcap = 0;         // Gemma 2: 30; 0 = none
  float embed_scale = 0;           // sqrt(D), rounded as the reference for this checkpoint does (§2.2)
  bool qk_norm = false;            // Gemma 3
  bool post_norms = false;         // Gemma 2/3: post-attention and post-FFN RMSNorm
  bool instruction_tuned = false;  // has a chat template / is an -it checkpoint
  std::vector<LayerConfig> layers;
  std::optional<VisionConfig> vision;  // absent: a text-only checkpoint

  int q_width() const { return n_heads * head_dim; }
  int kv_width() const { return n_kv_heads * head_dim; }
  int n_sliding_layers() const;

  // Checks internal consistency (positive sizes, heads divisible, window, caps); errors name the
  // offending field and the checkpoint.
  Status validate(const std::string& source) const;
};

// Builds the per-layer table from a sliding pattern, bases and the global-layer rope scale.
std::vector<LayerConfig> make_layers(int n_layers, const std::vector<bool>& sliding, float local_base,
                                     float global_base, float global_rope_scale);

// The standard pattern of each generation: Gemma 1 none, Gemma 2 even layers, Gemma 3 5:1.
std::vector<bool> default_sliding_pattern(Generation g, int n_layers);

}  // namespace gemma

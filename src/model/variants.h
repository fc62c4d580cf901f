// The released Gemma models, one table (docs/spec/architecture.md §1.1-1.4). Each row holds the
// whole shape that identifies a release and the settings a checkpoint without a config (Orbax,
// gemma_pytorch) cannot state: window, RoPE bases and scale, query_pre_attn_scalar, context and
// soft-caps. Every loader identifies a checkpoint here (detect_variant / find_variant); the
// forward pass never reads this table, only the ModelConfig a loader filled from it.
#pragma once

#include <span>
#include <string>

#include "model/config.h"

namespace gemma {

struct Variant {
  Generation generation;
  const char* name;      // gemma_pytorch's --variant value ("2b", "2b-v2", "27b_v3"), "270m", or "custom"
  const char* releases;  // the models released with this shape
  // The shape: matched as a whole, never the layer count alone.
  int layers, hidden, heads, kv_heads, head_dim, ffn;
  // What the configless formats take from the row.
  int sliding_window;  // W; 0: every layer global
  float local_rope_base, global_rope_base, global_rope_scale;
  int query_pre_attn_scalar;  // 0: head_dim (only in the generation defaults)
  int context_length;
  float attn_softcap, final_softcap;  // 0: none

  bool matches_shape(const ModelConfig& c) const;
  // query_pre_attn_scalar for a model of head size `head_dim`.
  float query_scalar(int head_dim) const;
};

// Every released variant (CodeGemma 2B/7B share the Gemma 1 2B/7B rows: same shape and settings).
std::span<const Variant> released_variants();

// The release with c's generation and whole shape (layers, D, N, K, H, F), or nullptr.
const Variant* find_variant(const ModelConfig& c);

// The name of find_variant(c), or "custom".
std::string detect_variant(const ModelConfig& c);

// The generation's common settings, for shapes that match no release (name "custom", shape 0).
const Variant& generation_defaults(Generation g);

// Fills the settings a configless checkpoint lacks from `v`: window, query scale, context,
// soft-caps and the per-layer RoPE table on the generation's standard sliding pattern. c's shape
// (n_layers, head_dim) must already be set.
void apply_variant_settings(const Variant& v, ModelConfig& c);

}  // namespace gemma

// The model's weights as plain views, one field per tensor, shapes written next to each.
// Norm vectors hold the full multiplier (Gemma's 1 + w is folded in at load; GGUF stores it so).
#pragma once

#include <vector>

#include "formats/tensor_set.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "util/result.h"

namespace gemma {

struct LayerWeights {
  const float* attn_norm = nullptr;       // [D]      pre-attention RMSNorm
  WeightMatrix q, k, v;                   // [N·H, D], [K·H, D], [K·H, D]
  const float* q_norm = nullptr;          // [H]      Gemma 3 QK-norm (nullptr otherwise)
  const float* k_norm = nullptr;          // [H]
  WeightMatrix o;                         // [D, N·H]
  const float* post_attn_norm = nullptr;  // [D]      Gemma 2/3
  const float* ffn_norm = nullptr;        // [D]      pre-FFN RMSNorm
  WeightMatrix gate, up;                  // [F, D]
  WeightMatrix down;                      // [D, F]
  const float* post_ffn_norm = nullptr;   // [D]      Gemma 2/3
};

struct Weights {
  WeightMatrix embedding;             // [V, D]   token embedding, also the tied output projection
  const float* final_norm = nullptr;  // [D]
  std::vector<LayerWeights> layers;
  TensorSet storage;  // owns the file maps and any converted buffers

  uint64_t bytes() const;                             // bytes of all weights as held in memory
  std::vector<const WeightMatrix*> matrices() const;  // every matrix the forward pass multiplies by
};

// Binds tensors named in the canonical (GGUF) scheme — token_embd.weight, blk.N.attn_q.weight, ...
// — checking each one's presence, shape and type against the config, and each matrix's type and
// shape against what the backend supports (the reference CPU backend's when none is given). Norm
// tensors must already hold the full multiplier; non-F32 norms are converted to F32 here.
Result<Weights> bind_weights(const ModelConfig& config, TensorSet tensors, const std::string& source,
                             const Backend* backend = nullptr);

}  // namespace gemma

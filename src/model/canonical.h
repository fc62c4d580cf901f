// What every loader and exporter shares about the canonical tensor scheme (GGUF's names:
// token_embd.weight, blk.N.attn_q.weight, ...): the Hugging Face names, in both directions, and
// Gemma's zero-centred norms folded into the full multiplier 1 + w.
#pragma once

#include <optional>
#include <string>

#include "formats/tensor_set.h"
#include "model/config.h"
#include "util/result.h"

namespace gemma {

struct CanonicalName {
  std::string name;   // "blk.3.attn_q.weight"
  bool norm = false;  // an RMSNorm weight (stored zero-centred by HF, Orbax and gemma_pytorch)
};

// "model.layers.3.self_attn.q_proj.weight" (also under "model.language_model." or
// "language_model.model.") -> "blk.3.attn_q.weight"; nullopt for a name outside the scheme.
// Gemma 1's post_attention_layernorm is the pre-FFN norm (docs/spec/formats.md §2.3).
std::optional<CanonicalName> canonical_from_hf(const std::string& hf, Generation g);

// The inverse, as HF's Gemma*ForCausalLM names it (docs/spec/formats.md §6):
// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight".
std::string hf_from_canonical(const std::string& canonical, Generation g);

// Gemma's RMSNorm multiplies by 1 + w and the checkpoints store w; the model holds 1 + w in
// float32. Returns `norm` with that data (allocated in `storage`), same name and shape.
// Float types only (f32, f16, bf16, f64): anything else is unsupported.
Result<Tensor> fold_norm(const Tensor& norm, TensorSet& storage);

}  // namespace gemma

#include "model/canonical.h"

#include <cctype>
#include <new>

#include "kernels/dequant.h"

namespace gemma {

namespace {

// The per-layer parts: HF's name under model.layers.N., ours under blk.N., both before ".weight".
// Searched in order in either direction, skipping rows for other generations.
enum Gens { kAll, kGemma1Only, kGemma2On };
struct LayerPart {
  const char* hf;
  const char* ours;
  bool norm;
  Gens gens;
};
constexpr LayerPart kLayerParts[] = {
    {"input_layernorm", "attn_norm", true, kAll},
    {"self_attn.q_proj", "attn_q", false, kAll},
    {"self_attn.k_proj", "attn_k", false, kAll},
    {"self_attn.v_proj", "attn_v", false, kAll},
    {"self_attn.o_proj", "attn_output", false, kAll},
    {"self_attn.q_norm", "attn_q_norm", true, kAll},
    {"self_attn.k_norm", "attn_k_norm", true, kAll},
    // Gemma 1 reuses Llama's name: its post_attention_layernorm is the pre-FFN norm.
    {"post_attention_layernorm", "ffn_norm", true, kGemma1Only},
    {"post_attention_layernorm", "post_attention_norm", true, kGemma2On},
    {"pre_feedforward_layernorm", "ffn_norm", true, kAll},
    {"post_feedforward_layernorm", "post_ffw_norm", true, kAll},
    {"mlp.gate_proj", "ffn_gate", false, kAll},
    {"mlp.up_proj", "ffn_up", false, kAll},
    {"mlp.down_proj", "ffn_down", false, kAll},
};

bool applies(const LayerPart& p, Generation g) {
  return p.gens == kAll || (p.gens == kGemma1Only) == (g == Generation::kGemma1);
}

// Splits "<head><N>.<part>.weight" into N and part.
bool split_layer_name(const std::string& n, const std::string& head, std::string& layer, std::string& part) {
  const std::string tail = ".weight";
  if (n.size() <= head.size() + tail.size() || n.compare(0, head.size(), head) != 0 ||
      n.compare(n.size() - tail.size(), tail.size(), tail) != 0)
    return false;
  size_t i = head.size();
  while (i < n.size() && std::isdigit(static_cast<unsigned char>(n[i]))) ++i;
  if (i == head.size() || i >= n.size() - tail.size() || n[i] != '.') return false;
  layer = n.substr(head.size(), i - head.size());
  part = n.substr(i + 1, n.size() - tail.size() - i - 1);
  return !part.empty();
}

}  // namespace

std::optional<CanonicalName> canonical_from_hf(const std::string& hf, Generation g) {
  std::string n = hf;
  for (const char* prefix : {"model.language_model.", "language_model.model.", "model."})
    if (n.rfind(prefix, 0) == 0) {
      n = n.substr(std::string(prefix).size());
      break;
    }
  if (n == "embed_tokens.weight") return CanonicalName{"token_embd.weight"};
  if (n == "norm.weight") return CanonicalName{"output_norm.weight", true};
  std::string layer, part;
  if (!split_layer_name(n, "layers.", layer, part)) return std::nullopt;
  for (const LayerPart& p : kLayerParts)
    if (applies(p, g) && part == p.hf) return CanonicalName{"blk." + layer + "." + p.ours + ".weight", p.norm};
  return std::nullopt;
}

std::string hf_from_canonical(const std::string& canonical, Generation g) {
  if (canonical == "token_embd.weight") return "model.embed_tokens.weight";
  if (canonical == "output_norm.weight") return "model.norm.weight";
  std::string layer, part;
  if (split_layer_name(canonical, "blk.", layer, part))
    for (const LayerPart& p : kLayerParts)
      if (applies(p, g) && part == p.ours) return "model.layers." + layer + "." + p.hf + ".weight";
  return canonical;
}

Result<Tensor> fold_norm(const Tensor& norm, TensorSet& storage) {
  if (norm.dtype != DType::F32 && norm.dtype != DType::F16 && norm.dtype != DType::BF16 && norm.dtype != DType::F64)
    return unsupported("norm '{}' has type {}", norm.name, dtype_name(norm.dtype));
  const int64_t n = norm.numel();
  const uint64_t nbytes = static_cast<uint64_t>(n) * 4;
  float* f = nullptr;
  try {
    f = reinterpret_cast<float*>(storage.allocate(nbytes));
  } catch (const std::bad_alloc&) {
    return resource_exhausted("cannot allocate {} bytes for norm '{}'", nbytes, norm.name);
  }
  if (!dequantize_row(norm.dtype, norm.data, f, n))
    return unsupported("norm '{}' has type {}", norm.name, dtype_name(norm.dtype));
  for (int64_t i = 0; i < n; ++i) f[i] += 1.0f;
  Tensor t = norm;
  t.dtype = DType::F32;
  t.data = reinterpret_cast<const uint8_t*>(f);
  t.nbytes = nbytes;
  return t;
}

}  // namespace gemma

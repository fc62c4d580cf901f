#include "model/weights.h"

#include <fmt/format.h>

#include "kernels/backend.h"
#include "kernels/dequant.h"

namespace gemma {

std::vector<const WeightMatrix*> Weights::matrices() const {
  std::vector<const WeightMatrix*> v{&embedding};
  for (const LayerWeights& l : layers)
    for (const WeightMatrix* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) v.push_back(m);
  return v;
}

uint64_t Weights::bytes() const {
  uint64_t n = 0;
  for (const auto& [name, t] : storage.all()) n += t.nbytes;
  return n;
}

namespace {

class Binder {
 public:
  Binder(TensorSet& tensors, const std::string& source, const Backend* backend)
      : tensors_(tensors), source_(source), backend_(backend) {}

  Result<WeightMatrix> matrix(const std::string& name, int64_t rows, int64_t cols) {
    GE_ASSIGN(const Tensor* t, get(name));
    if (t->shape.size() != 2 || t->shape[0] != rows || t->shape[1] != cols)
      return corrupt_input("{}: tensor '{}' has shape {}, expected [{}, {}] from the model config", source_, name,
                           t->shape_string(), rows, cols);
    if (Status st = backend_ ? backend_->supports(t->dtype, rows, cols) : reference_supports(t->dtype, rows, cols);
        !st.ok())
      return with_context(std::move(st).error(), fmt::format("{}: tensor '{}'", source_, name));
    WeightMatrix m;
    m.type = t->dtype;
    m.rows = rows;
    m.cols = cols;
    m.data = t->data;
    m.row_bytes = *row_bytes(t->dtype, static_cast<uint64_t>(cols));
    // Per-row scales travel as a companion tensor "<name>.row_scale" [rows] (gemma_pytorch int8:
    // W[r][c] = int8[r][c] * scale[r]); plain int8 matrices must have one.
    const std::string scale_name = name + ".row_scale";
    if (tensors_.find(scale_name)) {
      GE_ASSIGN(m.row_scales, vector(scale_name, rows));
    } else if (t->dtype == DType::I8) {
      return not_found("{}: int8 tensor '{}' has no per-row scales ('{}')", source_, name, scale_name);
    }
    return m;
  }

  Result<const float*> vector(const std::string& name, int64_t n) {
    GE_ASSIGN(const Tensor* t, get(name));
    if (t->numel() != n || t->shape.size() != 1)
      return corrupt_input("{}: tensor '{}' has shape {}, expected [{}]", source_, name, t->shape_string(), n);
    if (t->dtype == DType::F32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0)
      return reinterpret_cast<const float*>(t->data);
    if (dtype_info(t->dtype).quantized || t->dtype == DType::I8 || t->dtype == DType::I32)
      return unsupported("{}: norm tensor '{}' has type {}, expected a float type", source_, name,
                         dtype_name(t->dtype));
    auto* out = reinterpret_cast<float*>(tensors_.allocate(static_cast<uint64_t>(n) * sizeof(float)));
    dequantize_row(t->dtype, t->data, out, n);
    return static_cast<const float*>(out);
  }

 private:
  Result<const Tensor*> get(const std::string& name) {
    const Tensor* t = tensors_.find(name);
    if (!t) return not_found("{}: missing tensor '{}'", source_, name);
    return t;
  }
  TensorSet& tensors_;
  const std::string& source_;
  const Backend* backend_;
};

}  // namespace

Result<Weights> bind_weights(const ModelConfig& c, TensorSet tensors, const std::string& source,
                             const Backend* backend) {
  Weights w;
  w.storage = std::move(tensors);
  Binder b(w.storage, source, backend);
  const int64_t D = c.hidden, F = c.ffn, H = c.head_dim, Q = c.q_width(), KV = c.kv_width();
  GE_ASSIGN(w.embedding, b.matrix("token_embd.weight", c.vocab_size, D));
  GE_ASSIGN(w.final_norm, b.vector("output_norm.weight", D));
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    auto n = [l](const char* what) { return fmt::format("blk.{}.{}.weight", l, what); };
    GE_ASSIGN(L.attn_norm, b.vector(n("attn_norm"), D));
    GE_ASSIGN(L.q, b.matrix(n("attn_q"), Q, D));
    GE_ASSIGN(L.k, b.matrix(n("attn_k"), KV, D));
    GE_ASSIGN(L.v, b.matrix(n("attn_v"), KV, D));
    GE_ASSIGN(L.o, b.matrix(n("attn_output"), D, Q));
    if (c.qk_norm) {
      GE_ASSIGN(L.q_norm, b.vector(n("attn_q_norm"), H));
      GE_ASSIGN(L.k_norm, b.vector(n("attn_k_norm"), H));
    }
    GE_ASSIGN(L.ffn_norm, b.vector(n("ffn_norm"), D));
    GE_ASSIGN(L.gate, b.matrix(n("ffn_gate"), F, D));
    GE_ASSIGN(L.up, b.matrix(n("ffn_up"), F, D));
    GE_ASSIGN(L.down, b.matrix(n("ffn_down"), D, F));
    if (c.post_norms) {
      GE_ASSIGN(L.post_attn_norm, b.vector(n("post_attention_norm"), D));
      GE_ASSIGN(L.post_ffn_norm, b.vector(n("post_ffw_norm"), D));
    }
  }
  return w;
}

}  // namespace gemma

// The SigLIP tower and Gemma 3's multimodal projector, as HF's SiglipVisionModel and
// Gemma3MultiModalProjector compute them (docs/spec/architecture.md §4), on the Backend.
#include "vision/encoder.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "kernels/dequant.h"

namespace gemma {

struct VisionEncoder::Impl {
  struct Layer {
    WeightMatrix q, k, v, o, up, down;
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *q_b, *k_b, *v_b, *o_b, *up_b, *down_b;
  };
  VisionConfig cfg;
  int text_hidden = 0;
  Backend* backend = nullptr;
  WeightMatrix patch, proj;
  std::vector<uint8_t> proj_storage;  // mm.input_projection transposed to [text_hidden, hidden]
  std::vector<Layer> layers;
  const float *patch_b = nullptr, *pos = nullptr, *post_w = nullptr, *post_b = nullptr, *soft_w = nullptr;
  DeviceBuffer params;  // every float vector and the position table, float32, on the device
  DeviceBuffer acts;    // one encode's activations
  float *x = nullptr, *y = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *a = nullptr, *f = nullptr,
        *patches = nullptr, *pooled = nullptr, *out = nullptr;

  Status encode(std::span<const float> pixels, std::vector<float>& result);
};

namespace {

class Binder {
 public:
  Binder(const TensorSet& t, const Backend& b) : tensors_(t), backend_(b) {}

  Result<const Tensor*> get(const std::string& name) const {
    const Tensor* t = tensors_.find(name);
    if (!t) return not_found("vision tower: missing tensor '{}'", name);
    return t;
  }
  // A matrix of rows x cols in its stored type. Tensors of higher rank whose trailing dimensions
  // flatten to cols (the conv kernel [hidden, 3, p, p]) are read as that matrix.
  Result<WeightMatrix> matrix(const std::string& name, int64_t rows, int64_t cols) const {
    GE_ASSIGN(const Tensor* t, get(name));
    if (t->shape.size() < 2 || t->shape[0] != rows || t->numel() != rows * cols)
      return corrupt_input("vision tower: tensor '{}' has shape {}, expected [{}, {}] from the config", name,
                           t->shape_string(), rows, cols);
    if (Status st = backend_.supports(t->dtype, rows, cols); !st.ok())
      return with_context(std::move(st).error(), fmt::format("vision tower: tensor '{}'", name));
    WeightMatrix m;
    m.type = t->dtype;
    m.rows = rows;
    m.cols = cols;
    m.data = t->data;
    m.row_bytes = *row_bytes(t->dtype, static_cast<uint64_t>(cols));
    if (m.row_bytes * static_cast<uint64_t>(rows) > t->nbytes)
      return corrupt_input("vision tower: tensor '{}' holds {} bytes, fewer than its shape needs", name, t->nbytes);
    return m;
  }
  // A float vector (any float type) of n values appended, as float32, to `host`; returns its offset.
  Result<size_t> vector(const std::string& name, int64_t n, std::vector<float>& host) const {
    GE_ASSIGN(const Tensor* t, get(name));
    if (t->numel() != n)
      return corrupt_input("vision tower: tensor '{}' has shape {}, expected {} values", name, t->shape_string(), n);
    if (!is_float(t->dtype))
      return unsupported("vision tower: tensor '{}' has type {}, expected a float type", name, dtype_name(t->dtype));
    if (*row_bytes(t->dtype, static_cast<uint64_t>(n)) > t->nbytes)
      return corrupt_input("vision tower: tensor '{}' holds {} bytes, fewer than its shape needs", name, t->nbytes);
    const size_t at = host.size();
    host.resize(at + static_cast<size_t>(n));
    dequantize_row(t->dtype, t->data, host.data() + at, n);
    return at;
  }

 private:
  static bool is_float(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }
  const TensorSet& tensors_;
  const Backend& backend_;
};

}  // namespace

Result<std::unique_ptr<VisionEncoder>> VisionEncoder::create(const VisionConfig& cfg, int text_hidden,
                                                             const TensorSet& tensors, Backend& backend) {
  GE_TRY(cfg.validate("vision tower"));
  if (text_hidden <= 0 || text_hidden > 65536) return invalid_argument("vision tower: text width {}", text_hidden);
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  impl->text_hidden = text_hidden;
  impl->backend = &backend;
  const Binder b(tensors, backend);
  const int64_t H = cfg.hidden, F = cfg.ffn, NP = cfg.n_patches(), PP = 3LL * cfg.patch_size * cfg.patch_size;

  GE_ASSIGN(impl->patch, b.matrix("v.patch_embd.weight", H, PP));
  // The projection: HF and llama.cpp store it [hidden, text_hidden] (in x out, S @ W); our
  // matmul takes [out, in], so it is transposed once here, in its stored type.
  {
    GE_ASSIGN(const Tensor* p, b.get("mm.input_projection.weight"));
    if (p->shape.size() != 2 || p->shape[0] != H)
      return corrupt_input("vision tower: mm.input_projection.weight has shape {}, expected [{}, {}]",
                           p->shape_string(), H, text_hidden);
    if (p->shape[1] != text_hidden)
      return invalid_argument(
          "vision tower: the projection maps to width {}, but the language model is {} wide (a tower of another "
          "model?)",
          p->shape[1], text_hidden);
    if (p->dtype != DType::F32 && p->dtype != DType::F16 && p->dtype != DType::BF16)
      return unsupported("vision tower: mm.input_projection.weight of type {} (f32, f16 or bf16 only)",
                         dtype_name(p->dtype));
    const size_t es = p->dtype == DType::F32 ? 4 : 2;
    if (p->nbytes < static_cast<uint64_t>(H * text_hidden) * es)
      return corrupt_input("vision tower: mm.input_projection.weight is truncated");
    impl->proj_storage.resize(static_cast<size_t>(H * text_hidden) * es);
    for (int64_t i = 0; i < H; ++i)
      for (int64_t o = 0; o < text_hidden; ++o)
        std::memcpy(impl->proj_storage.data() + static_cast<size_t>(o * H + i) * es,
                    p->data + static_cast<size_t>(i * text_hidden + o) * es, es);
    impl->proj.type = p->dtype;
    impl->proj.rows = text_hidden;
    impl->proj.cols = H;
    impl->proj.data = impl->proj_storage.data();
    impl->proj.row_bytes = static_cast<uint64_t>(H) * es;
    GE_TRY(backend.supports(p->dtype, text_hidden, H));
  }

  // Float vectors, gathered into one host array, then one device buffer.
  std::vector<float> host;
  std::vector<std::pair<const float**, size_t>> fixups;
  auto vec = [&](const std::string& name, int64_t n, const float** dst) -> Status {
    GE_ASSIGN(size_t at, b.vector(name, n, host));
    fixups.emplace_back(dst, at);
    return {};
  };
  GE_TRY(vec("v.patch_embd.bias", H, &impl->patch_b));
  GE_TRY(vec("v.position_embd.weight", NP * H, &impl->pos));
  GE_TRY(vec("v.post_ln.weight", H, &impl->post_w));
  GE_TRY(vec("v.post_ln.bias", H, &impl->post_b));
  GE_TRY(vec("mm.soft_emb_norm.weight", H, &impl->soft_w));
  impl->layers.resize(static_cast<size_t>(cfg.n_layers));
  for (int l = 0; l < cfg.n_layers; ++l) {
    Impl::Layer& L = impl->layers[static_cast<size_t>(l)];
    const std::string p = fmt::format("v.blk.{}.", l);
    GE_ASSIGN(L.q, b.matrix(p + "attn_q.weight", H, H));
    GE_ASSIGN(L.k, b.matrix(p + "attn_k.weight", H, H));
    GE_ASSIGN(L.v, b.matrix(p + "attn_v.weight", H, H));
    GE_ASSIGN(L.o, b.matrix(p + "attn_out.weight", H, H));
    GE_ASSIGN(L.up, b.matrix(p + "ffn_up.weight", F, H));
    GE_ASSIGN(L.down, b.matrix(p + "ffn_down.weight", H, F));
    GE_TRY(vec(p + "ln1.weight", H, &L.ln1_w));
    GE_TRY(vec(p + "ln1.bias", H, &L.ln1_b));
    GE_TRY(vec(p + "ln2.weight", H, &L.ln2_w));
    GE_TRY(vec(p + "ln2.bias", H, &L.ln2_b));
    GE_TRY(vec(p + "attn_q.bias", H, &L.q_b));
    GE_TRY(vec(p + "attn_k.bias", H, &L.k_b));
    GE_TRY(vec(p + "attn_v.bias", H, &L.v_b));
    GE_TRY(vec(p + "attn_out.bias", H, &L.o_b));
    GE_TRY(vec(p + "ffn_up.bias", F, &L.up_b));
    GE_TRY(vec(p + "ffn_down.bias", H, &L.down_b));
  }
  GE_ASSIGN(impl->params, backend.allocate(host.size() * sizeof(float), BufferUse::kActivations));
  GE_TRY(backend.to_device(impl->params.data(), host.data(), host.size() * sizeof(float)));
  for (auto& [dst, at] : fixups) *dst = impl->params.as<float>() + at;

  std::vector<const WeightMatrix*> mats{&impl->patch, &impl->proj};
  for (const Impl::Layer& L : impl->layers)
    for (const WeightMatrix* m : {&L.q, &L.k, &L.v, &L.o, &L.up, &L.down}) mats.push_back(m);
  GE_TRY(backend.prepare(mats));

  // Activations: x, y, q, k, v, a [NP, H]; f [NP, F]; patches [NP, PP]; pooled [T, H]; out [T, D].
  const int64_t T = cfg.tokens_per_image;
  const int64_t sizes[] = {NP * H, NP * H, NP * H, NP * H, NP * H, NP * H, NP * F, NP * PP, T * H, T * text_hidden};
  int64_t total = 0;
  for (int64_t s : sizes) total += (s + 15) / 16 * 16;  // 64-byte aligned arrays
  GE_ASSIGN(impl->acts, backend.allocate(static_cast<uint64_t>(total) * sizeof(float), BufferUse::kActivations));
  float* at = impl->acts.as<float>();
  float** dsts[] = {&impl->x, &impl->y, &impl->q,       &impl->k,      &impl->v,
                    &impl->a, &impl->f, &impl->patches, &impl->pooled, &impl->out};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    *dsts[i] = at;
    at += (sizes[i] + 15) / 16 * 16;
  }
  return std::unique_ptr<VisionEncoder>(new VisionEncoder(std::move(impl)));
}

VisionEncoder::VisionEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VisionEncoder::~VisionEncoder() = default;
const VisionConfig& VisionEncoder::config() const { return impl_->cfg; }
int VisionEncoder::text_hidden() const { return impl_->text_hidden; }
int VisionEncoder::tokens_per_image() const { return impl_->cfg.tokens_per_image; }

Result<std::vector<float>> VisionEncoder::encode(std::span<const float> pixels) {
  std::vector<float> result;
  GE_TRY(impl_->encode(pixels, result));
  return result;
}

Status VisionEncoder::Impl::encode(std::span<const float> pixels, std::vector<float>& result) {
  const int S = cfg.image_size, P = cfg.patch_size, side = cfg.patches_per_side();
  const int64_t H = cfg.hidden, F = cfg.ffn, NP = cfg.n_patches(), PP = 3LL * P * P, T = cfg.tokens_per_image;
  if (pixels.size() != static_cast<size_t>(3LL * S * S))
    return invalid_argument("vision tower: an image of {} values, expected 3 x {} x {} = {}", pixels.size(), S, S,
                            3LL * S * S);
  Backend& be = *backend;
  // The stride-P convolution as a matmul: each patch's pixels flattened (channel, row, column), the
  // order of the conv kernel's [hidden, 3, P, P] weights; patches row-major over the grid.
  {
    std::vector<float> host(static_cast<size_t>(NP * PP));
    for (int py = 0; py < side; ++py)
      for (int px = 0; px < side; ++px) {
        float* dst = host.data() + static_cast<size_t>((py * side + px) * PP);
        for (int c = 0; c < 3; ++c)
          for (int ky = 0; ky < P; ++ky) {
            const float* row = pixels.data() + (static_cast<size_t>(c) * S + py * P + ky) * S + px * P;
            std::memcpy(dst + (c * P + ky) * P, row, sizeof(float) * static_cast<size_t>(P));
          }
      }
    GE_TRY(be.to_device(patches, host.data(), host.size() * sizeof(float)));
  }
  GE_TRY(be.matmul(patch, patches, NP, x));
  GE_TRY(be.add_bias(x, patch_b, NP, H));
  GE_TRY(be.add_norm(x, pos, nullptr, NP, H, 0));  // x += position embedding (rows 0..NP-1)

  const float eps = cfg.layer_norm_eps;
  const float scale = 1.0f / std::sqrt(static_cast<float>(cfg.head_dim()));  // SiglipAttention: head_dim^-0.5
  for (const Layer& L : layers) {
    GE_TRY(be.layer_norm(x, L.ln1_w, L.ln1_b, NP, H, eps, y));
    const WeightMatrix* qkv[3] = {&L.q, &L.k, &L.v};
    float* qkv_out[3] = {q, k, v};
    GE_TRY(be.matmul_many(qkv, y, NP, qkv_out));
    GE_TRY(be.add_bias(q, L.q_b, NP, H));
    GE_TRY(be.add_bias(k, L.k_b, NP, H));
    GE_TRY(be.add_bias(v, L.v_b, NP, H));
    GE_TRY(be.full_attention(q, k, v, NP, cfg.n_heads, cfg.head_dim(), scale, a));
    GE_TRY(be.matmul(L.o, a, NP, y));
    GE_TRY(be.add_bias(y, L.o_b, NP, H));
    GE_TRY(be.add_norm(x, y, nullptr, NP, H, 0));  // residual
    GE_TRY(be.layer_norm(x, L.ln2_w, L.ln2_b, NP, H, eps, y));
    GE_TRY(be.matmul(L.up, y, NP, f));
    GE_TRY(be.add_bias(f, L.up_b, NP, F));
    GE_TRY(be.gelu(f, NP * F));
    GE_TRY(be.matmul(L.down, f, NP, y));
    GE_TRY(be.add_bias(y, L.down_b, NP, H));
    GE_TRY(be.add_norm(x, y, nullptr, NP, H, 0));  // residual
  }
  GE_TRY(be.layer_norm(x, post_w, post_b, NP, H, eps, y));
  // Gemma3MultiModalProjector: average pool to the token grid, Gemma RMSNorm (1 + w folded; eps
  // is the vision config's layer_norm_eps, as HF builds it), then the projection.
  GE_TRY(be.avg_pool(y, side, H, cfg.pool_kernel(), pooled));
  GE_TRY(be.rms_norm(pooled, soft_w, T, H, eps, pooled));
  GE_TRY(be.matmul(proj, pooled, T, out));
  result.resize(static_cast<size_t>(T * text_hidden));
  return be.to_host(result.data(), out, result.size() * sizeof(float));
}

}  // namespace gemma

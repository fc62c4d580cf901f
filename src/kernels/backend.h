// The interface between the model and the hardware. The model (model/forward.cpp) expresses the
// forward pass as calls on a Backend and never touches SIMD intrinsics or device headers; the CPU
// backend (kernels/cpu/) implements it with run-time ISA dispatch, a CUDA backend would implement
// the same calls. Activations are float32, row-major [tokens, features].
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "formats/dtype.h"
#include "util/result.h"

namespace gemma {

// A weight matrix as stored: `rows` rows of `cols` elements of `type`; row r occupies bytes
// [r * row_bytes, (r + 1) * row_bytes) of `data`. y = W·x means y[r] = Σ_c W[r][c]·x[c].
struct WeightMatrix {
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  uint64_t row_bytes = 0;
  const float* row_scales = nullptr;  // per-row multipliers for per-channel int8 (nullptr: none)

  const uint8_t* row(int64_t r) const { return data + static_cast<uint64_t>(r) * row_bytes; }
};

// Absolute positions [begin, end) whose tokens all see each other (one image's soft tokens in
// Gemma 3): a query inside sees every key of the span, later ones included, on every layer, as
// HF's token-type mask adds to the causal (and sliding) mask.
struct PositionSpan {
  int32_t begin = 0, end = 0;
};

// One sequence's attention over its KV cache for a chunk of queries: what the attention kernels
// see (the backend makes one per sequence of a BatchAttention).
struct AttentionArgs {
  const float* q = nullptr;            // [n_tokens, n_heads, head_dim], RoPE applied
  float* out = nullptr;                // [n_tokens, n_heads, head_dim]; may be q (each row replaces its query)
  const int32_t* positions = nullptr;  // [n_tokens] absolute positions of the queries
  int64_t n_tokens = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  const void* k_cache = nullptr;  // [capacity, n_kv_heads, head_dim]; position p lives in slot p % capacity
  const void* v_cache = nullptr;
  DType kv_type = DType::F32;  // kv_type_supported()
  int64_t capacity = 0;
  int window = 0;     // > 0: query i sees keys j with i - window < j <= i; 0: all j <= i
  float scale = 1;    // applied to q·k
  float softcap = 0;  // > 0: s = softcap * tanh(s / softcap) (Gemma 2)
  // Bidirectional spans, sorted and disjoint. Every key they add must be in the cache: a span lies
  // within one chunk (or before it).
  std::span<const PositionSpan> bidirectional;

  // Keys [first, last] that the query at `position` sees: causal and windowed, widened to its span.
  std::pair<int64_t, int64_t> key_range(int64_t position) const {
    int64_t first = window > 0 ? std::max<int64_t>(0, position - window + 1) : 0, last = position;
    for (const PositionSpan& s : bidirectional)
      if (position >= s.begin && position < s.end) {
        first = std::min<int64_t>(first, s.begin);
        last = s.end - 1;
      }
    return {first, last};
  }
};

// The element types a KV cache can hold: F32 (exact), F16 (the default, as llama.cpp's), BF16, and
// Q8_0 (blocks of 32 int8 with an f16 scale: 1.06 bytes a value; needs head_dim % 32 == 0).
bool kv_type_supported(DType type);
// "f32", "f16", "bf16" or "q8_0", as llama.cpp's --cache-type-k names them.
Result<DType> parse_kv_type(std::string_view name);

// One sequence's rows of a batch and the KV cache (one layer's) they go into.
struct SequenceKv {
  int64_t first_row = 0;  // the sequence's first token in the batch's rows
  int64_t n_tokens = 0;
  void* k_cache = nullptr;  // [capacity, n_kv_heads, head_dim] of BatchAttention::kv_type
  void* v_cache = nullptr;
  int64_t capacity = 0;  // position p lives in slot p % capacity (a ring on sliding-window layers)
  std::span<const PositionSpan> bidirectional;
};

// One layer's attention for every sequence of a batch: the new K/V rows are stored into each
// sequence's cache (store_kv), then every query attends over its own sequence's cache (attention).
struct BatchAttention {
  const float* q = nullptr;            // [rows, n_heads, head_dim], RoPE applied
  float* out = nullptr;                // [rows, n_heads, head_dim]; may be q
  const float* k = nullptr;            // [rows, n_kv_heads, head_dim]: the batch's new keys
  const float* v = nullptr;            // [rows, n_kv_heads, head_dim]
  const int32_t* positions = nullptr;  // [rows] absolute positions (host memory)
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  DType kv_type = DType::F32;
  int window = 0;  // > 0: a sliding-window layer
  float scale = 1;
  float softcap = 0;
  std::span<const SequenceKv> sequences;

  // Sequence i as the kernels see it.
  AttentionArgs sequence(size_t i) const {
    const SequenceKv& s = sequences[i];
    AttentionArgs a;
    a.q = q + s.first_row * n_heads * head_dim;
    a.out = out + s.first_row * n_heads * head_dim;
    a.positions = positions + s.first_row;
    a.n_tokens = s.n_tokens;
    a.n_heads = n_heads;
    a.n_kv_heads = n_kv_heads;
    a.head_dim = head_dim;
    a.k_cache = s.k_cache;
    a.v_cache = s.v_cache;
    a.kv_type = kv_type;
    a.capacity = s.capacity;
    a.window = window;
    a.scale = scale;
    a.softcap = softcap;
    a.bidirectional = s.bidirectional;
    return a;
  }
};

// Memory a backend computes in (host memory for the CPU, device memory for a GPU), returned to
// the backend when the buffer is destroyed. Move-only.
class DeviceBuffer {
 public:
  using Release = void (*)(void* data, uint64_t bytes);
  DeviceBuffer() = default;
  DeviceBuffer(void* data, uint64_t bytes, Release release) : data_(data), bytes_(bytes), release_(release) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(data_, o.data_), std::swap(bytes_, o.bytes_), std::swap(release_, o.release_);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  uint64_t bytes() const { return bytes_; }
  void reset() {
    if (data_ && release_) release_(data_, bytes_);
    data_ = nullptr, bytes_ = 0, release_ = nullptr;
  }

 private:
  void* data_ = nullptr;
  uint64_t bytes_ = 0;
  Release release_ = nullptr;
};

// What a buffer is for: a backend may place them differently (the CPU backend reserves address
// space for KV caches and logits, so only the pages written become resident).
enum class BufferUse { kActivations, kKvCache, kLogits };

// Every op returns a Status: a device can fail (out of memory, a launch error, an unsupported
// type reaching it), and a failed op ends that forward pass with an error, not the process.
// Float arrays passed to ops live in the backend's buffers; index arrays (token ids, positions)
// and weights' host-side descriptors are host memory.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int n_threads() const { return 1; }

  // Whether this device can multiply by a weight matrix of this stored type and shape. Asked by
  // the loader for every matrix (LoadOptions::backend) and by the engine before it starts, so an
  // unsupported checkpoint fails before any compute, with the tensor named.
  virtual Status supports(DType type, int64_t rows, int64_t cols) const = 0;
  // Called once per model before the first forward pass: the hook where a GPU backend uploads the
  // weights and a CPU backend may repack them. The CPU backend computes from the weights in place.
  virtual Status prepare(std::span<const WeightMatrix* const> matrices) {
    for (const WeightMatrix* m : matrices) GE_TRY(supports(m->type, m->rows, m->cols));
    return {};
  }

  // Memory for activations, KV caches and logits, zero-filled.
  virtual Result<DeviceBuffer> allocate(uint64_t bytes, BufferUse use) = 0;
  // Copies between host memory and this backend's buffers, and within its buffers.
  virtual Status to_device(void* device_dst, const void* host_src, uint64_t bytes) = 0;
  virtual Status to_host(void* host_dst, const void* device_src, uint64_t bytes) = 0;
  virtual Status copy(void* device_dst, const void* device_src, uint64_t bytes) = 0;

  // y[t] = W·x[t] for t < n. x: [n, W.cols], y: [n, W.rows].
  virtual Status matmul(const WeightMatrix& w, const float* x, int64_t n, float* y) = 0;
  // Several products of the same input (q/k/v, gate/up) in one parallel pass.
  virtual Status matmul_many(std::span<const WeightMatrix* const> ws, const float* x, int64_t n,
                             std::span<float* const> ys) = 0;
  // out[t] = table[ids[t]] * scale (any stored type, dequantized).
  virtual Status embed(const WeightMatrix& table, std::span<const int32_t> ids, float scale, float* out) = 0;
  // out[t] = x[t] / rms(x[t]) * w  (w is the full multiplier; Gemma's 1 + w is folded in at load).
  virtual Status rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* out) = 0;
  // x[t] += rms_norm(y[t]) * w, or x[t] += y[t] when w is null.
  virtual Status add_norm(float* x, const float* y, const float* w, int64_t n_rows, int64_t dim, float eps) = 0;
  // g = gelu_tanh(g) * u, elementwise over n values.
  virtual Status gelu_mul(float* g, const float* u, int64_t n) = 0;
  // Per head: optional RMSNorm over head_dim (QK-norm, w may be null), then rotary embedding
  // (split-half layout) at the given positions. x: [n_tokens, n_heads, head_dim], in place.
  virtual Status norm_rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const float* norm_w, float eps,
                           const int32_t* positions, float rope_base, float rope_scale) = 0;
  // Writes every sequence's new K and V rows into its cache, at slot position % capacity.
  virtual Status store_kv(const BatchAttention& batch) = 0;
  // Every sequence's queries over its cache (causal, windowed, widened to bidirectional spans).
  // A sequence's result does not depend on the others in the batch.
  virtual Status attention(const BatchAttention& batch) = 0;
  // x = cap * tanh(x / cap)
  virtual Status softcap(float* x, int64_t n, float cap) = 0;

  // Encoder ops (Gemma 3's SigLIP vision tower, vision/encoder.cpp).
  // out[t] = (x[t] - mean(x[t])) / sqrt(var(x[t]) + eps) * w + b: LayerNorm with bias, the
  // biased variance as torch computes it. out may be x.
  virtual Status layer_norm(const float* x, const float* w, const float* b, int64_t n_rows, int64_t dim, float eps,
                            float* out) = 0;
  // x[t] += b for each of n_rows rows of dim values (the bias of a linear layer).
  virtual Status add_bias(float* x, const float* b, int64_t n_rows, int64_t dim) = 0;
  // x = gelu_tanh(x) (torch's gelu(approximate="tanh"), HF's "gelu_pytorch_tanh"), n values.
  virtual Status gelu(float* x, int64_t n) = 0;
  // Bidirectional softmax attention of n tokens over each other: q, k, v, out [n, n_heads, head_dim]
  // (out must not alias q, k or v); softmax(scale * q·k) over all n keys, no mask.
  virtual Status full_attention(const float* q, const float* k, const float* v, int64_t n, int n_heads, int head_dim,
                                float scale, float* out) = 0;
  // Average pooling of a side x side grid of dim-vectors (x: [side * side, dim], row-major grid)
  // with a kernel x kernel window and stride kernel: out [(side / kernel)^2, dim], row-major.
  virtual Status avg_pool(const float* x, int side, int64_t dim, int kernel, float* out) = 0;
};

// What a front end asks for; create_backend() makes it. Front ends never construct a backend by
// its class, so a new device is one more name here.
struct BackendOptions {
  std::string device = "cpu";  // "cpu", or "cuda" in a -DGEMMA_CUDA=ON build
  int threads = 0;             // CPU worker threads; 0: default_thread_count()
  // Float32 products for every weight type (dequantized rows, as the reference implementations
  // compute) instead of int8-quantized activations: slower, closest to the references.
  bool precise = false;
};
Result<std::unique_ptr<Backend>> create_backend(const BackendOptions& options);
// The memory of the device create_backend would compute on, for memory plans (`gemma inspect
// --device cuda`): the GPU's name, free and total bytes. Only "cuda" is answered; an error for a
// build or machine without it.
struct DeviceMemory {
  std::string name;
  uint64_t free_bytes = 0, total_bytes = 0;
  // Device memory a backend needs beyond the engine's own buffers (the CUDA backend's dequantized
  // tile for many-token products, its f16 input copy and small index buffers).
  uint64_t backend_scratch = 0;
};
Result<DeviceMemory> device_memory(std::string_view device);
// What the reference (CPU) backend supports, for loads that name no backend.
Status reference_supports(DType type, int64_t rows, int64_t cols);

}  // namespace gemma

#include "kernels/cuda/cuda_backend.h"

#include <cmath>
#include <cstring>
#include <unordered_map>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include "kernels/cuda/kernels.h"

namespace gemma {

namespace {

Status cuda_check(cudaError_t e, std::string_view op) {
  if (e == cudaSuccess) return {};
  cudaGetLastError();  // clear a non-sticky error so the next op starts clean
  if (e == cudaErrorMemoryAllocation) return resource_exhausted("cuda {}: {}", op, cudaGetErrorString(e));
  return internal_error("cuda {}: {}", op, cudaGetErrorString(e));
}

Status cublas_check(cublasStatus_t s, std::string_view op) {
  if (s == CUBLAS_STATUS_SUCCESS) return {};
  return internal_error("cuda {}: cuBLAS status {}", op, static_cast<int>(s));
}

void release_device(void* p, uint64_t) { cudaFree(p); }

Status encoder_unsupported(std::string_view op) {
  return unsupported("cuda {}: the vision encoder's ops are not on the CUDA backend yet; use --device cpu for images",
                     op);
}

bool weight_type(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q4_0F:
    case DType::I8: return true;
    default: return false;
  }
}

// The float types keep any column count; the others are read in 32-element groups.
bool plain(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Many-token products dequantize the weights this many values at a time (64 MiB of float32), so a
// 262144-row embedding never needs a full float copy.
constexpr int64_t kTileValues = int64_t{16} << 20;

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, bool precise, cublasHandle_t blas) : device_(device), precise_(precise), blas_(blas) {}
  ~CudaBackend() override {
    weights_.clear();
    vectors_.clear();
    cudaDeviceSynchronize();  // the staging ring may still be read by a copy in flight
    for (DeviceBuffer& s : scratch_) s.reset();
    for (cudaEvent_t e : ring_events_)
      if (e) cudaEventDestroy(e);
    if (ring_host_) cudaFreeHost(ring_host_);
    cublasDestroy(blas_);
  }

  const char* name() const override { return "cuda"; }
  Status supports(DType type, int64_t rows, int64_t cols) const override { return cuda_supports(type, rows, cols); }

  Status prepare(std::span<const WeightMatrix* const> matrices) override {
    // A new model: host vectors (norm weights) seen before belong to the previous one.
    vectors_.clear();
    for (const WeightMatrix* m : matrices) {
      GE_TRY(supports(m->type, m->rows, m->cols));
      GE_TRY(device_weight(*m));
    }
    return cuda_check(cudaDeviceSynchronize(), "prepare");
  }

  Result<DeviceBuffer> allocate(uint64_t bytes, BufferUse use) override {
    if (bytes == 0) return DeviceBuffer();
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      const char* what = use == BufferUse::kKvCache  ? "the KV cache"
                         : use == BufferUse::kLogits ? "logits"
                                                     : "activations";
      return resource_exhausted("cuda: cannot allocate {} bytes of device memory for {}", bytes, what);
    }
    DeviceBuffer b(p, bytes, release_device);
    GE_TRY(cuda_check(cudaMemset(p, 0, bytes), "allocate"));
    return b;
  }

  Status to_device(void* dst, const void* src, uint64_t bytes) override {
    if (!bytes) return {};
    return cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "to_device");
  }
  Status to_host(void* dst, const void* src, uint64_t bytes) override {
    if (!bytes) return {};
    return cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "to_host");
  }
  Status copy(void* dst, const void* src, uint64_t bytes) override {
    if (!bytes || dst == src) return {};
    const auto* d = static_cast<const uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    if (d < s + bytes && s < d + bytes) {  // overlapping (memmove semantics): through scratch
      GE_ASSIGN(void* tmp, scratch(kCopy, bytes));
      GE_TRY(cuda_check(cudaMemcpy(tmp, src, bytes, cudaMemcpyDeviceToDevice), "copy"));
      src = tmp;
    }
    return cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "copy");
  }

  Status matmul(const WeightMatrix& w, const float* x, int64_t n, float* y) override {
    GE_TRY(supports(w.type, w.rows, w.cols));
    if (n <= 0 || w.rows == 0) return {};
    GE_ASSIGN(const DevWeight* dw, device_weight(w));
    const float* scales = dw->scales.as<float>();
    if (n <= cuda::kMatvecMaxTokens)
      return cuda_check(
          cuda::matvec(w.type, dw->data.as<uint8_t>(), w.row_bytes, w.rows, w.cols, scales, x, n, y, w.rows, nullptr),
          "matmul");
    GE_TRY(gemm(w, *dw, x, n, y));
    if (scales) GE_TRY(cuda_check(cuda::scale_rows(y, scales, n, w.rows, nullptr), "matmul"));
    return {};
  }

  Status matmul_many(std::span<const WeightMatrix* const> ws, const float* x, int64_t n,
                     std::span<float* const> ys) override {
    if (ws.empty() || ws.size() != ys.size())
      return internal_error("matmul_many of {} matrices into {} outputs", ws.size(), ys.size());
    for (const WeightMatrix* w : ws)
      if (w->cols != ws[0]->cols)
        return internal_error("matmul_many over matrices of {} and {} columns", ws[0]->cols, w->cols);
    for (size_t i = 0; i < ws.size(); ++i) GE_TRY(matmul(*ws[i], x, n, ys[i]));
    return {};
  }

  Status embed(const WeightMatrix& table, std::span<const int32_t> ids, float scale, float* out) override {
    GE_TRY(supports(table.type, table.rows, table.cols));
    for (int32_t id : ids)
      if (id < 0 || id >= table.rows)
        return invalid_argument("token id {} outside the table's {} rows", id, table.rows);
    if (ids.empty()) return {};
    GE_ASSIGN(const DevWeight* dw, device_weight(table));
    GE_ASSIGN(void* d_ids, upload(kIndex, ids.data(), ids.size_bytes()));
    return cuda_check(
        cuda::embed(table.type, dw->data.as<uint8_t>(), table.row_bytes, table.cols, dw->scales.as<float>(),
                    static_cast<const int32_t*>(d_ids), static_cast<int64_t>(ids.size()), scale, out, nullptr),
        "embed");
  }

  Status rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* out) override {
    GE_ASSIGN(const float* dw, device_vector(w, dim));
    return cuda_check(cuda::rms_norm(x, dw, n_rows, dim, eps, out, nullptr), "rms_norm");
  }

  Status add_norm(float* x, const float* y, const float* w, int64_t n_rows, int64_t dim, float eps) override {
    const float* dw = nullptr;
    if (w) { GE_ASSIGN(dw, device_vector(w, dim)); }
    return cuda_check(cuda::add_norm(x, y, dw, n_rows, dim, eps, nullptr), "add_norm");
  }

  Status gelu_mul(float* g, const float* u, int64_t n) override {
    return cuda_check(cuda::gelu_mul(g, u, n, nullptr), "gelu_mul");
  }

  Status norm_rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const float* norm_w, float eps,
                   const int32_t* positions, float rope_base, float rope_scale) override {
    if (n_tokens <= 0) return {};
    if (head_dim % 2 != 0) return invalid_argument("norm_rope over an odd head_dim {}", head_dim);
    const float* dw = nullptr;
    if (norm_w) { GE_ASSIGN(dw, device_vector(norm_w, head_dim)); }
    // inv_freq and positions in one upload: inv_freq as the CPU computes it, in float32.
    const int half = head_dim / 2;
    std::vector<uint8_t>& staging = staging_;
    staging.resize(static_cast<size_t>(half) * 4 + static_cast<size_t>(n_tokens) * 4);
    for (int k = 0; k < half; ++k) {
      const float f = 1.0f / std::pow(rope_base, static_cast<float>(2 * k) / static_cast<float>(head_dim)) / rope_scale;
      std::memcpy(staging.data() + 4 * k, &f, 4);
    }
    std::memcpy(staging.data() + 4 * half, positions, static_cast<size_t>(n_tokens) * 4);
    GE_ASSIGN(void* d, upload(kIndex, staging.data(), staging.size()));
    const auto* inv_freq = static_cast<const float*>(d);
    const auto* d_pos = reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(d) + 4 * half);
    return cuda_check(cuda::norm_rope(x, n_tokens, n_heads, head_dim, dw, eps, d_pos, inv_freq, nullptr), "norm_rope");
  }

  Status store_kv(const BatchAttention& batch) override {
    const int64_t kvw = static_cast<int64_t>(batch.n_kv_heads) * batch.head_dim;
    const std::optional<uint64_t> row = row_bytes(batch.kv_type, static_cast<uint64_t>(kvw));
    if (!kv_type_supported(batch.kv_type) || !row)
      return unsupported("a KV cache of {} rows of {} values", dtype_name(batch.kv_type), kvw);
    std::vector<cuda::KvStoreItem> items;
    for (const SequenceKv& s : batch.sequences)
      for (int64_t i = 0; i < s.n_tokens; ++i) {
        const int64_t r = s.first_row + i;
        const uint64_t slot = static_cast<uint64_t>(batch.positions[r] % s.capacity);
        items.push_back(
            {r, static_cast<uint8_t*>(s.k_cache) + slot * *row, static_cast<uint8_t*>(s.v_cache) + slot * *row});
      }
    if (items.empty()) return {};
    GE_ASSIGN(void* d, upload(kItems, items.data(), items.size() * sizeof(items[0])));
    return cuda_check(cuda::store_kv(static_cast<const cuda::KvStoreItem*>(d), static_cast<int64_t>(items.size()),
                                     batch.k, batch.v, kvw, batch.kv_type, nullptr),
                      "store_kv");
  }

  Status attention(const BatchAttention& batch) override {
    if (batch.n_kv_heads <= 0 || batch.n_heads % batch.n_kv_heads != 0)
      return internal_error("attention with {} heads over {} KV heads", batch.n_heads, batch.n_kv_heads);
    if (batch.head_dim > cuda::kMaxHeadDim)
      return unsupported("cuda attention: head_dim {} exceeds {}", batch.head_dim, cuda::kMaxHeadDim);
    if (!kv_type_supported(batch.kv_type) || (batch.kv_type == DType::Q8_0 && batch.head_dim % 32 != 0))
      return unsupported("a KV cache of {} with head_dim {}", dtype_name(batch.kv_type), batch.head_dim);
    std::vector<cuda::AttentionItem> items;
    for (size_t i = 0; i < batch.sequences.size(); ++i) {
      const AttentionArgs a = batch.sequence(i);
      const SequenceKv& s = batch.sequences[i];
      for (int64_t t = 0; t < a.n_tokens; ++t) {
        auto [j0, j1] = a.key_range(a.positions[t]);
        items.push_back({s.first_row + t, static_cast<const uint8_t*>(a.k_cache),
                         static_cast<const uint8_t*>(a.v_cache), a.capacity, j0, j1});
      }
    }
    if (items.empty()) return {};
    GE_ASSIGN(void* d, upload(kItems, items.data(), items.size() * sizeof(items[0])));
    return cuda_check(cuda::attention(static_cast<const cuda::AttentionItem*>(d), static_cast<int64_t>(items.size()),
                                      batch.q, batch.out, batch.n_heads, batch.n_kv_heads, batch.head_dim,
                                      batch.kv_type, batch.scale, batch.softcap, nullptr),
                      "attention");
  }

  Status softcap(float* x, int64_t n, float cap) override {
    return cuda_check(cuda::softcap(x, n, cap, nullptr), "softcap");
  }

  // The vision tower's encoder ops have no CUDA kernels yet: an image given with --device cuda is
  // refused with this error before the tower computes anything (the text model still runs here).
  Status layer_norm(const float*, const float*, const float*, int64_t, int64_t, float, float*) override {
    return encoder_unsupported("layer_norm");
  }
  Status add_bias(float*, const float*, int64_t, int64_t) override { return encoder_unsupported("add_bias"); }
  Status gelu(float*, int64_t) override { return encoder_unsupported("gelu"); }
  Status full_attention(const float*, const float*, const float*, int64_t, int, int, float, float*) override {
    return encoder_unsupported("full_attention");
  }
  Status avg_pool(const float*, int, int64_t, int, float*) override { return encoder_unsupported("avg_pool"); }

 private:
  struct DevWeight {
    DeviceBuffer data;
    DeviceBuffer scales;  // per-row float32 multipliers, when the matrix has them
  };
  // Grow-only scratch buffers, one per use so one op's two uses never share one.
  enum Slot { kIndex, kItems, kTile, kInput, kCopy, kSlots };
  static constexpr int kRingSlots = 64;
  static constexpr uint64_t kRingSlotBytes = 64 << 10;  // a 512-token prefill's attention items: 24 KiB

  Result<void*> scratch(Slot slot, uint64_t bytes) {
    DeviceBuffer& b = scratch_[slot];
    if (b.bytes() < bytes) {
      b.reset();
      GE_ASSIGN(b, allocate(std::max<uint64_t>(bytes, 4096), BufferUse::kActivations));
    }
    return b.data();
  }
  // Host bytes (ids, positions, descriptors) into device memory for the next kernel. Small ones
  // go through a ring of pinned staging slots, each with its own device region and an event:
  // the copy is asynchronous (no stall of the GPU per op), and a slot is refilled only after its
  // previous copy has completed (its event); the device region is rewritten only by a copy that
  // the stream orders after the kernels that read it. Larger ones take a synchronous copy into a
  // scratch buffer, which the legacy default stream orders the same way.
  Result<void*> upload(Slot slot, const void* host, uint64_t bytes) {
    if (bytes <= kRingSlotBytes) {
      if (!ring_host_) GE_TRY(make_ring());
      const int i = ring_next_;
      ring_next_ = (ring_next_ + 1) % kRingSlots;
      GE_TRY(cuda_check(cudaEventSynchronize(ring_events_[i]), "upload"));
      uint8_t* h = ring_host_ + static_cast<uint64_t>(i) * kRingSlotBytes;
      uint8_t* d = ring_device_.as<uint8_t>() + static_cast<uint64_t>(i) * kRingSlotBytes;
      std::memcpy(h, host, bytes);
      GE_TRY(cuda_check(cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, nullptr), "upload"));
      GE_TRY(cuda_check(cudaEventRecord(ring_events_[i], nullptr), "upload"));
      return d;
    }
    GE_ASSIGN(void* d, scratch(slot, bytes));
    GE_TRY(to_device(d, host, bytes));
    return d;
  }
  Status make_ring() {
    GE_ASSIGN(ring_device_, allocate(kRingSlots * kRingSlotBytes, BufferUse::kActivations));
    void* h = nullptr;
    GE_TRY(cuda_check(cudaMallocHost(&h, kRingSlots * kRingSlotBytes), "pinned staging"));
    ring_host_ = static_cast<uint8_t*>(h);
    for (cudaEvent_t& e : ring_events_) {
      GE_TRY(cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event"));
      GE_TRY(cuda_check(cudaEventRecord(e, nullptr), "event"));
    }
    return {};
  }

  // The device copy of a weight matrix, keyed by its host bytes; made on first use (prepare()
  // makes them all up front).
  Result<const DevWeight*> device_weight(const WeightMatrix& w) {
    const WeightKey key{w.data, w.type, w.rows, w.row_bytes};
    auto it = weights_.find(key);
    if (it != weights_.end()) return &it->second;
    DevWeight dw;
    const uint64_t bytes = static_cast<uint64_t>(w.rows) * w.row_bytes;
    GE_ASSIGN(dw.data, allocate(bytes, BufferUse::kActivations));
    GE_TRY(to_device(dw.data.data(), w.data, bytes));
    if (w.row_scales) {
      GE_ASSIGN(dw.scales, allocate(static_cast<uint64_t>(w.rows) * sizeof(float), BufferUse::kActivations));
      GE_TRY(to_device(dw.scales.data(), w.row_scales, static_cast<uint64_t>(w.rows) * sizeof(float)));
    }
    return &weights_.emplace(key, std::move(dw)).first->second;
  }

  // A float vector an op names: device memory as is, host memory (the model's norm weights, which
  // stay unchanged while a model is loaded) uploaded once and looked up by address after that.
  Result<const float*> device_vector(const float* p, int64_t n) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, p) == cudaSuccess && attr.type == cudaMemoryTypeDevice) return p;
    cudaGetLastError();
    auto it = vectors_.find(p);
    if (it != vectors_.end() && it->second.bytes() >= static_cast<uint64_t>(n) * sizeof(float))
      return it->second.as<const float>();
    GE_ASSIGN(DeviceBuffer b, allocate(static_cast<uint64_t>(n) * sizeof(float), BufferUse::kActivations));
    GE_TRY(to_device(b.data(), p, static_cast<uint64_t>(n) * sizeof(float)));
    const float* d = b.as<const float>();
    vectors_[p] = std::move(b);
    return d;
  }

  // y[n, rows] = x[n, cols] · Wᵀ through cuBLAS (column-major: Y(rows x n) = op(A)ᵀ B with A the
  // row-major weight seen as cols x rows). Float32 weights go in directly; other types are
  // dequantized a tile of rows at a time, to float32 (precise) or f16 with x converted to f16.
  Status gemm(const WeightMatrix& w, const DevWeight& dw, const float* x, int64_t n, float* y) {
    GE_TRY(cublas_check(cublasSetStream(blas_, nullptr), "matmul"));
    const float alpha = 1, beta = 0;
    const int m_rows = static_cast<int>(w.rows), k = static_cast<int>(w.cols), nn = static_cast<int>(n);
    const uint8_t* data = dw.data.as<uint8_t>();
    if (w.type == DType::F32 && w.row_bytes == static_cast<uint64_t>(w.cols) * 4)
      return cublas_check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, m_rows, nn, k, &alpha,
                                      reinterpret_cast<const float*>(data), k, x, k, &beta, y, m_rows),
                          "matmul (cublasSgemm)");
    const bool half = !precise_;
    const void* xh = nullptr;
    if (half) {
      // BF16 weights multiply bfloat16 activations in place; every other type f16 tiles.
      const bool bf16 = w.type == DType::BF16 && w.row_bytes == static_cast<uint64_t>(w.cols) * 2;
      GE_ASSIGN(void* p, scratch(kInput, static_cast<uint64_t>(n * w.cols) * 2));
      GE_TRY(cuda_check(cuda::to_half(x, n * w.cols, p, bf16, nullptr), "matmul"));
      xh = p;
      if (bf16 || (w.type == DType::F16 && w.row_bytes == static_cast<uint64_t>(w.cols) * 2)) {
        const cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
        return cublas_check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, m_rows, nn, k, &alpha, data, t, k, xh, t, k,
                                         &beta, y, CUDA_R_32F, m_rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                            "matmul (cublasGemmEx)");
      }
    }
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(w.rows, kTileValues / std::max<int64_t>(1, w.cols)));
    GE_ASSIGN(void* tile, scratch(kTile, static_cast<uint64_t>(chunk * w.cols) * (half ? 2 : 4)));
    for (int64_t r0 = 0; r0 < w.rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, w.rows - r0);
      GE_TRY(cuda_check(cuda::dequantize_rows(w.type, data, w.row_bytes, r0, nr, w.cols, tile, half, nullptr),
                        "matmul (dequantize)"));
      if (half)
        GE_TRY(cublas_check(
            cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nr), nn, k, &alpha, tile, CUDA_R_16F, k, xh,
                         CUDA_R_16F, k, &beta, y + r0, CUDA_R_32F, m_rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "matmul (cublasGemmEx)"));
      else
        GE_TRY(cublas_check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nr), nn, k, &alpha,
                                        static_cast<const float*>(tile), k, x, k, &beta, y + r0, m_rows),
                            "matmul (cublasSgemm)"));
    }
    return {};
  }

  int device_;
  bool precise_;
  cublasHandle_t blas_;
  // A matrix is its host bytes' address with its type and shape: host memory freed and reused for
  // another matrix (tests do that) never finds the old one's device copy. The bytes at an address
  // must not change while the backend lives, as a loaded model's do not.
  struct WeightKey {
    const uint8_t* data;
    DType type;
    int64_t rows;
    uint64_t row_bytes;
    bool operator==(const WeightKey&) const = default;
  };
  struct WeightKeyHash {
    size_t operator()(const WeightKey& k) const {
      return std::hash<const void*>()(k.data) ^ (static_cast<size_t>(k.rows) * 0x9E3779B97F4A7C15ull) ^
             (static_cast<size_t>(k.type) << 56) ^ k.row_bytes;
    }
  };
  std::unordered_map<WeightKey, DevWeight, WeightKeyHash> weights_;
  std::unordered_map<const float*, DeviceBuffer> vectors_;
  DeviceBuffer scratch_[kSlots];
  std::vector<uint8_t> staging_;
  DeviceBuffer ring_device_;
  uint8_t* ring_host_ = nullptr;  // pinned, kRingSlots * kRingSlotBytes
  cudaEvent_t ring_events_[kRingSlots] = {};
  int ring_next_ = 0;
};

}  // namespace

Status cuda_supports(DType type, int64_t rows, int64_t cols) {
  if (!weight_type(type)) return unsupported("type {} is not supported for weight matrices on cuda", dtype_name(type));
  if (rows < 0 || cols < 0) return invalid_argument("a weight matrix of {} x {}", rows, cols);
  if (rows > INT32_MAX || cols > INT32_MAX)
    return unsupported("cuda: a weight matrix of {} x {} exceeds cuBLAS's int dimensions", rows, cols);
  if (!plain(type) && cols % 32 != 0)
    return unsupported("type {} needs a multiple of 32 columns, has {}", dtype_name(type), cols);
  if (cols % dtype_info(type).block_elems != 0)
    return unsupported("type {} stores rows in blocks of {}; a row of {} is not whole blocks", dtype_name(type),
                       dtype_info(type).block_elems, cols);
  return {};
}

Result<std::unique_ptr<Backend>> create_cuda_backend(const CudaOptions& o) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    return unsupported("no CUDA device{}", e != cudaSuccess ? fmt::format(" ({})", cudaGetErrorString(e)) : "");
  }
  if (o.device < 0 || o.device >= count)
    return invalid_argument("CUDA device {} does not exist ({} present)", o.device, count);
  GE_TRY(cuda_check(cudaSetDevice(o.device), "set device"));
  cublasHandle_t blas = nullptr;
  GE_TRY(cublas_check(cublasCreate(&blas), "cublasCreate"));
  // No TF32: float32 GEMMs stay float32, as the precise mode promises.
  GE_TRY(cublas_check(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode"));
  return std::unique_ptr<Backend>(new CudaBackend(o.device, o.precise, blas));
}

uint64_t cuda_scratch_bytes() { return static_cast<uint64_t>(kTileValues) * sizeof(float); }

Result<CudaDeviceInfo> cuda_device_info(int device) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    return unsupported("no CUDA device{}", e != cudaSuccess ? fmt::format(" ({})", cudaGetErrorString(e)) : "");
  }
  cudaDeviceProp p{};
  GE_TRY(cuda_check(cudaGetDeviceProperties(&p, device), "device properties"));
  GE_TRY(cuda_check(cudaSetDevice(device), "set device"));
  CudaDeviceInfo info;
  info.name = p.name;
  info.cc_major = p.major;
  info.cc_minor = p.minor;
  size_t free_b = 0, total_b = 0;
  GE_TRY(cuda_check(cudaMemGetInfo(&free_b, &total_b), "memory info"));
  info.free_bytes = free_b;
  info.total_bytes = total_b;
  return info;
}

}  // namespace gemma

// Launchers of the CUDA kernels (matmul.cu, ops.cu), called by CudaBackend (cuda_backend.cpp). Plain
// C++17 with CUDA runtime types only, so the host compiler and nvcc both read it. Every pointer is
// device memory; every launcher queues its kernels on `stream` and returns cudaGetLastError().
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "formats/dtype.h"

namespace gemma::cuda {

// y[t * ldy + r] = Σ_c W[r][c] · x[t * cols + c] (times row_scales[r] when not null), for t < n,
// n <= kMatvecMaxTokens: each weight row is read once for all n tokens, dequantized in registers,
// float32 products and sums (a warp per row, shuffle reduction). Block types need cols % 32 == 0.
constexpr int kMatvecMaxTokens = 8;
cudaError_t matvec(DType type, const uint8_t* w, uint64_t row_bytes, int64_t rows, int64_t cols,
                   const float* row_scales, const float* x, int64_t n, float* y, int64_t ldy, cudaStream_t stream);

// Rows [r0, r0 + n_rows) of W dequantized into out[n_rows, cols]: float32, or half (f16) when
// `half` is set. The values are those of the CPU's dequantize_row, bit for bit in float32.
cudaError_t dequantize_rows(DType type, const uint8_t* w, uint64_t row_bytes, int64_t r0, int64_t n_rows, int64_t cols,
                            void* out, bool half, cudaStream_t stream);
// out[i] = half(x[i]) (IEEE f16, or bfloat16 when bf16), round to nearest even.
cudaError_t to_half(const float* x, int64_t n, void* out, bool bf16, cudaStream_t stream);
// y[t * rows + r] *= s[r] for t < n.
cudaError_t scale_rows(float* y, const float* s, int64_t n, int64_t rows, cudaStream_t stream);

// out[t] = dequant(table row ids[t]) * scale (* row_scales[ids[t]]).
cudaError_t embed(DType type, const uint8_t* table, uint64_t row_bytes, int64_t cols, const float* row_scales,
                  const int32_t* ids, int64_t n, float scale, float* out, cudaStream_t stream);
cudaError_t rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* out,
                     cudaStream_t stream);
cudaError_t add_norm(float* x, const float* y, const float* w, int64_t n_rows, int64_t dim, float eps,
                     cudaStream_t stream);
cudaError_t gelu_mul(float* g, const float* u, int64_t n, cudaStream_t stream);
cudaError_t softcap(float* x, int64_t n, float cap, cudaStream_t stream);
// inv_freq[head_dim / 2] as the CPU computes it (on the host); positions[n_tokens].
cudaError_t norm_rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const float* norm_w, float eps,
                      const int32_t* positions, const float* inv_freq, cudaStream_t stream);

// One new K/V row of the batch and where it goes in its sequence's cache.
struct KvStoreItem {
  int64_t row;     // batch row of k and v
  uint8_t* k_dst;  // the cache slot's first byte
  uint8_t* v_dst;
};
// kvw = n_kv_heads * head_dim values a row; kv_type F32, F16, BF16 or Q8_0 (kvw % 32 == 0).
cudaError_t store_kv(const KvStoreItem* items, int64_t n_items, const float* k, const float* v, int64_t kvw,
                     DType kv_type, cudaStream_t stream);

// One query token of a sequence: its batch row, its cache and the keys [j0, j1] it sees
// (AttentionArgs::key_range, computed on the host).
struct AttentionItem {
  int64_t row;
  const uint8_t* k_cache;
  const uint8_t* v_cache;
  int64_t capacity;
  int64_t j0, j1;
};
constexpr int kMaxHeadDim = 512;
// A warp per (item, head): online softmax over the item's keys, float32 (as the CPU's kernel).
cudaError_t attention(const AttentionItem* items, int64_t n_items, const float* q, float* out, int n_heads,
                      int n_kv_heads, int head_dim, DType kv_type, float scale, float softcap, cudaStream_t stream);

}  // namespace gemma::cuda

// Weight kernels of the CUDA backend: dequantization of every stored type (the CPU's
// dequantize_row, value for value), the one-to-few-token matrix-vector product, the dequantized
// tiles the many-token path hands to cuBLAS, and the embedding lookup.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "kernels/cuda/kernels.h"

namespace gemma::cuda {

namespace {

__device__ __forceinline__ float h2f(const uint8_t* p) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(p[0] | (p[1] << 8))));
}
__device__ __forceinline__ float f32_at(const uint8_t* p) {
  return __uint_as_float(static_cast<unsigned>(p[0]) | (static_cast<unsigned>(p[1]) << 8) |
                         (static_cast<unsigned>(p[2]) << 16) | (static_cast<unsigned>(p[3]) << 24));
}
__device__ __forceinline__ float bf2f(unsigned short h) { return __uint_as_float(static_cast<unsigned>(h) << 16); }

// Products and sums are rounded one at a time (__fmul_rn, __fadd_rn: no FMA contraction), as the
// CPU's reference dequantizers are compiled with -ffp-contract=off.

// The 32 values of group g (elements [32g, 32g + 32)) of a row of block type T.
template <DType T>
__device__ __forceinline__ void dq32(const uint8_t* row, int64_t g, float* v);

template <>
__device__ __forceinline__ void dq32<DType::Q8_0>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + g * 34;
  const float d = h2f(b);
#pragma unroll
  for (int j = 0; j < 32; ++j) v[j] = __fmul_rn(static_cast<float>(static_cast<int8_t>(b[2 + j])), d);
}
template <>
__device__ __forceinline__ void dq32<DType::Q4_0>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + g * 18;
  const float d = h2f(b);
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    v[j] = __fmul_rn(static_cast<float>((b[2 + j] & 0xF) - 8), d);
    v[j + 16] = __fmul_rn(static_cast<float>((b[2 + j] >> 4) - 8), d);
  }
}
template <>
__device__ __forceinline__ void dq32<DType::Q4_0F>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + g * 20;
  const float d = f32_at(b);
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    v[j] = __fmul_rn(static_cast<float>((b[4 + j] & 0xF) - 8), d);
    v[j + 16] = __fmul_rn(static_cast<float>((b[4 + j] >> 4) - 8), d);
  }
}
template <>
__device__ __forceinline__ void dq32<DType::Q4_1>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + g * 20;
  const float d = h2f(b), m = h2f(b + 2);
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    v[j] = __fadd_rn(__fmul_rn(static_cast<float>(b[4 + j] & 0xF), d), m);
    v[j + 16] = __fadd_rn(__fmul_rn(static_cast<float>(b[4 + j] >> 4), d), m);
  }
}
__device__ __forceinline__ uint32_t qh32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
template <>
__device__ __forceinline__ void dq32<DType::Q5_0>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + g * 22;
  const float d = h2f(b);
  const uint32_t qh = qh32(b + 2);
  const uint8_t* qs = b + 6;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10), h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
    v[j] = __fmul_rn(static_cast<float>(((qs[j] & 0xF) | h0) - 16), d);
    v[j + 16] = __fmul_rn(static_cast<float>(((qs[j] >> 4) | h1) - 16), d);
  }
}
template <>
__device__ __forceinline__ void dq32<DType::Q5_1>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + g * 24;
  const float d = h2f(b), m = h2f(b + 2);
  const uint32_t qh = qh32(b + 4);
  const uint8_t* qs = b + 8;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10), h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
    v[j] = __fadd_rn(__fmul_rn(static_cast<float>((qs[j] & 0xF) | h0), d), m);
    v[j + 16] = __fadd_rn(__fmul_rn(static_cast<float>((qs[j] >> 4) | h1), d), m);
  }
}
// The 6-bit (scale, min) pair j of a Q4_K/Q5_K super-block (quant_blocks.h's k_scale_min).
__device__ __forceinline__ void k_scale_min(int j, const uint8_t* s, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}
// Q4_K: {f16 d, dmin; scales[12]; qs[128]}; group sb of a super-block is nibble half sb % 2 of
// qs[32 * (sb / 2) ..], with scale pair sb.
template <>
__device__ __forceinline__ void dq32<DType::Q4_K>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + (g / 8) * 144;
  const int sb = static_cast<int>(g % 8);
  int sc, m;
  k_scale_min(sb, b + 4, sc, m);
  const float d1 = __fmul_rn(h2f(b), static_cast<float>(sc)), m1 = __fmul_rn(h2f(b + 2), static_cast<float>(m));
  const uint8_t* q = b + 16 + 32 * (sb / 2);
  const int shift = (sb % 2) * 4;
#pragma unroll
  for (int l = 0; l < 32; ++l) v[l] = __fsub_rn(__fmul_rn(d1, static_cast<float>((q[l] >> shift) & 0xF)), m1);
}
// Q5_K: {f16 d, dmin; scales[12]; qh[32]; qs[128]}; the fifth bit of group sb is bit sb of qh[l].
template <>
__device__ __forceinline__ void dq32<DType::Q5_K>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + (g / 8) * 176;
  const int sb = static_cast<int>(g % 8);
  int sc, m;
  k_scale_min(sb, b + 4, sc, m);
  const float d1 = __fmul_rn(h2f(b), static_cast<float>(sc)), m1 = __fmul_rn(h2f(b + 2), static_cast<float>(m));
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + 48 + 32 * (sb / 2);
  const int shift = (sb % 2) * 4;
#pragma unroll
  for (int l = 0; l < 32; ++l) {
    const int u = ((q[l] >> shift) & 0xF) + (((qh[l] >> sb) & 1) ? 16 : 0);
    v[l] = __fsub_rn(__fmul_rn(d1, static_cast<float>(u)), m1);
  }
}
// Q6_K: {ql[128]; qh[64]; int8 scales[16]; f16 d}; group sb is half h = sb / 4, quarter k = sb % 4.
template <>
__device__ __forceinline__ void dq32<DType::Q6_K>(const uint8_t* row, int64_t g, float* v) {
  const uint8_t* b = row + (g / 8) * 210;
  const int sb = static_cast<int>(g % 8), h = sb / 4, k = sb % 4;
  const float d = h2f(b + 208);
  const uint8_t* ql = b + 64 * h + (k % 2) * 32;
  const uint8_t* qh = b + 128 + 32 * h;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * h + 2 * k;
  const float s0 = __fmul_rn(d, static_cast<float>(sc[0])), s1 = __fmul_rn(d, static_cast<float>(sc[1]));
  const int shift = k < 2 ? 0 : 4;
#pragma unroll
  for (int l = 0; l < 32; ++l) {
    const int q = (((ql[l] >> shift) & 0xF) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
    v[l] = __fmul_rn(l < 16 ? s0 : s1, static_cast<float>(q));
  }
}
// Plain int8: the raw values (per-row scales are applied to the product).
template <>
__device__ __forceinline__ void dq32<DType::I8>(const uint8_t* row, int64_t g, float* v) {
  const int8_t* q = reinterpret_cast<const int8_t*>(row) + g * 32;
#pragma unroll
  for (int j = 0; j < 32; ++j) v[j] = static_cast<float>(q[j]);
}

// Element c of a row of a plain float type.
template <DType T>
__device__ __forceinline__ float load1(const uint8_t* row, int64_t c) {
  if constexpr (T == DType::F32) return reinterpret_cast<const float*>(row)[c];
  else if constexpr (T == DType::F16) return __half2float(reinterpret_cast<const __half*>(row)[c]);
  else return bf2f(reinterpret_cast<const unsigned short*>(row)[c]);
}
template <DType T>
constexpr bool kPlain = T == DType::F32 || T == DType::F16 || T == DType::BF16;

__device__ __forceinline__ float warp_sum(float s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

constexpr int kMatvecWarps = 8;  // rows per block of 256 threads

// A warp per row: plain types stride over elements (each load instruction reads consecutive
// elements), block types over 32-element groups (a warp reads 32 consecutive blocks).
template <DType T, int NT>
__global__ void matvec_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int64_t rows, int64_t cols,
                              const float* __restrict__ row_scales, const float* __restrict__ x, float* __restrict__ y,
                              int64_t ldy) {
  const int lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kMatvecWarps + threadIdx.x / 32;
  if (r >= rows) return;
  const uint8_t* row = w + static_cast<uint64_t>(r) * row_bytes;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0;
  if constexpr (kPlain<T>) {
    for (int64_t c = lane; c < cols; c += 32) {
      const float wv = load1<T>(row, c);
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[t] = fmaf(wv, x[t * cols + c], acc[t]);
    }
  } else {
    float v[32];
    for (int64_t g = lane; g < cols / 32; g += 32) {
      dq32<T>(row, g, v);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float* xt = x + t * cols + g * 32;
        float s = 0;
#pragma unroll
        for (int j = 0; j < 32; ++j) s = fmaf(v[j], xt[j], s);
        acc[t] += s;
      }
    }
  }
  const float scale = row_scales ? row_scales[r] : 1.0f;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0) y[t * ldy + r] = row_scales ? s * scale : s;
  }
}

template <DType T>
cudaError_t matvec_t(const uint8_t* w, uint64_t rb, int64_t rows, int64_t cols, const float* rs, const float* x,
                     int64_t n, float* y, int64_t ldy, cudaStream_t st) {
  const dim3 grid(static_cast<unsigned>((rows + kMatvecWarps - 1) / kMatvecWarps)), block(32 * kMatvecWarps);
  // Chunks of 4 tokens, then 2, then 1: three instantiations per type keep the build short; a
  // chunk reads the weights once for all its tokens.
  for (int64_t t0 = 0; t0 < n;) {
    const int64_t m = n - t0;
    const float* xt = x + t0 * cols;
    float* yt = y + t0 * ldy;
    if (m >= 4) matvec_kernel<T, 4><<<grid, block, 0, st>>>(w, rb, rows, cols, rs, xt, yt, ldy), t0 += 4;
    else if (m >= 2) matvec_kernel<T, 2><<<grid, block, 0, st>>>(w, rb, rows, cols, rs, xt, yt, ldy), t0 += 2;
    else matvec_kernel<T, 1><<<grid, block, 0, st>>>(w, rb, rows, cols, rs, xt, yt, ldy), t0 += 1;
  }
  return cudaGetLastError();
}

// A thread per (row, 32-element group), or per element for the plain types.
template <DType T, typename Out>
__global__ void dequant_kernel(const uint8_t* __restrict__ w, uint64_t row_bytes, int64_t r0, int64_t n_rows,
                               int64_t cols, Out* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  auto put = [&](int64_t k, float f) {
    if constexpr (sizeof(Out) == 4) out[k] = f;
    else out[k] = __float2half_rn(f);
  };
  if constexpr (kPlain<T>) {
    if (i >= n_rows * cols) return;
    const int64_t r = i / cols, c = i % cols;
    put(i, load1<T>(w + static_cast<uint64_t>(r0 + r) * row_bytes, c));
  } else {
    const int64_t groups = cols / 32;
    if (i >= n_rows * groups) return;
    const int64_t r = i / groups, g = i % groups;
    float v[32];
    dq32<T>(w + static_cast<uint64_t>(r0 + r) * row_bytes, g, v);
#pragma unroll
    for (int j = 0; j < 32; ++j) put(r * cols + g * 32 + j, v[j]);
  }
}

template <DType T>
cudaError_t dequant_t(const uint8_t* w, uint64_t rb, int64_t r0, int64_t n_rows, int64_t cols, void* out, bool half,
                      cudaStream_t st) {
  const int64_t work = kPlain<T> ? n_rows * cols : n_rows * (cols / 32);
  if (work == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>((work + 255) / 256);
  if (half) dequant_kernel<T, __half><<<blocks, 256, 0, st>>>(w, rb, r0, n_rows, cols, static_cast<__half*>(out));
  else dequant_kernel<T, float><<<blocks, 256, 0, st>>>(w, rb, r0, n_rows, cols, static_cast<float*>(out));
  return cudaGetLastError();
}

// A block per token, threads over the row's groups (or elements).
template <DType T>
__global__ void embed_kernel(const uint8_t* __restrict__ table, uint64_t row_bytes, int64_t cols,
                             const float* __restrict__ row_scales, const int32_t* __restrict__ ids, float scale,
                             float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const uint8_t* row = table + static_cast<uint64_t>(id) * row_bytes;
  float* o = out + t * cols;
  const float rs = row_scales ? row_scales[id] : 1.0f;
  // As the CPU: value * scale, then * the row's scale, each product rounded.
  auto put = [&](int64_t c, float f) {
    const float s = __fmul_rn(f, scale);
    o[c] = row_scales ? __fmul_rn(s, rs) : s;
  };
  if constexpr (kPlain<T>) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) put(c, load1<T>(row, c));
  } else {
    float v[32];
    for (int64_t g = threadIdx.x; g < cols / 32; g += blockDim.x) {
      dq32<T>(row, g, v);
      for (int j = 0; j < 32; ++j) put(g * 32 + j, v[j]);
    }
  }
}

template <DType T>
cudaError_t embed_t(const uint8_t* table, uint64_t rb, int64_t cols, const float* rs, const int32_t* ids, int64_t n,
                    float scale, float* out, cudaStream_t st) {
  if (n == 0) return cudaSuccess;
  embed_kernel<T><<<static_cast<unsigned>(n), 256, 0, st>>>(table, rb, cols, rs, ids, scale, out);
  return cudaGetLastError();
}

__global__ void to_half_kernel(const float* __restrict__ x, int64_t n, void* __restrict__ out, bool bf16) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (bf16) static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(x[i]);
  else static_cast<__half*>(out)[i] = __float2half_rn(x[i]);
}

__global__ void scale_rows_kernel(float* __restrict__ y, const float* __restrict__ s, int64_t total, int64_t rows) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < total) y[i] *= s[i % rows];
}

}  // namespace

// Calls fn(std::integral_constant<DType, T>) for the stored type T: one switch for every launcher.
template <typename Fn>
cudaError_t dispatch(DType type, Fn&& fn) {
  switch (type) {
    case DType::F32: return fn(std::integral_constant<DType, DType::F32>{});
    case DType::F16: return fn(std::integral_constant<DType, DType::F16>{});
    case DType::BF16: return fn(std::integral_constant<DType, DType::BF16>{});
    case DType::Q8_0: return fn(std::integral_constant<DType, DType::Q8_0>{});
    case DType::Q4_0: return fn(std::integral_constant<DType, DType::Q4_0>{});
    case DType::Q4_1: return fn(std::integral_constant<DType, DType::Q4_1>{});
    case DType::Q5_0: return fn(std::integral_constant<DType, DType::Q5_0>{});
    case DType::Q5_1: return fn(std::integral_constant<DType, DType::Q5_1>{});
    case DType::Q4_K: return fn(std::integral_constant<DType, DType::Q4_K>{});
    case DType::Q5_K: return fn(std::integral_constant<DType, DType::Q5_K>{});
    case DType::Q6_K: return fn(std::integral_constant<DType, DType::Q6_K>{});
    case DType::Q4_0F: return fn(std::integral_constant<DType, DType::Q4_0F>{});
    case DType::I8: return fn(std::integral_constant<DType, DType::I8>{});
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t matvec(DType type, const uint8_t* w, uint64_t row_bytes, int64_t rows, int64_t cols,
                   const float* row_scales, const float* x, int64_t n, float* y, int64_t ldy, cudaStream_t stream) {
  if (rows == 0 || n == 0) return cudaSuccess;
  if (n > kMatvecMaxTokens) return cudaErrorInvalidValue;
  return dispatch(type, [&](auto t) {
    return matvec_t<decltype(t)::value>(w, row_bytes, rows, cols, row_scales, x, n, y, ldy, stream);
  });
}

cudaError_t dequantize_rows(DType type, const uint8_t* w, uint64_t row_bytes, int64_t r0, int64_t n_rows, int64_t cols,
                            void* out, bool half, cudaStream_t stream) {
  return dispatch(
      type, [&](auto t) { return dequant_t<decltype(t)::value>(w, row_bytes, r0, n_rows, cols, out, half, stream); });
}

cudaError_t embed(DType type, const uint8_t* table, uint64_t row_bytes, int64_t cols, const float* row_scales,
                  const int32_t* ids, int64_t n, float scale, float* out, cudaStream_t stream) {
  return dispatch(type, [&](auto t) {
    return embed_t<decltype(t)::value>(table, row_bytes, cols, row_scales, ids, n, scale, out, stream);
  });
}

cudaError_t to_half(const float* x, int64_t n, void* out, bool bf16, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  to_half_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(x, n, out, bf16);
  return cudaGetLastError();
}

cudaError_t scale_rows(float* y, const float* s, int64_t n, int64_t rows, cudaStream_t stream) {
  const int64_t total = n * rows;
  if (total == 0) return cudaSuccess;
  scale_rows_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(y, s, total, rows);
  return cudaGetLastError();
}

}  // namespace gemma::cuda

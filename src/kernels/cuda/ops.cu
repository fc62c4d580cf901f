// The small ops of the CUDA backend: norms, GeGLU, softcap, QK-norm + RoPE, KV-cache stores and
// attention. Each follows the CPU backend's arithmetic (kernels/cpu/cpu_backend.cpp) operation for
// operation; only the order of long sums differs (tree reductions here, sequential there).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/kernels.h"

namespace gemma::cuda {

namespace {

__device__ __forceinline__ float warp_sum(float s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

// Sum over a block of up to 1024 threads; every thread gets the total.
__device__ float block_sum(float s) {
  __shared__ float part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = (blockDim.x + 31) / 32;
  s = warp_sum(s);
  __syncthreads();  // part[] may still be read by an earlier call
  if (lane == 0) part[warp] = s;
  __syncthreads();
  float t = lane < n_warps ? part[lane] : 0.0f;
  return warp_sum(t);
}

// 1 / rms(x[0..dim)) as the CPU computes it: 1 / sqrt(mean square + eps), correctly rounded.
__device__ float block_inv_rms(const float* x, int64_t dim, float eps) {
  float ss = 0;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) ss = __fadd_rn(ss, __fmul_rn(x[c], x[c]));
  ss = block_sum(ss);
  return 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
}

__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, int64_t dim, float eps,
                                float* __restrict__ out) {
  const float* xt = x + blockIdx.x * dim;
  float* ot = out + blockIdx.x * dim;
  const float r = block_inv_rms(xt, dim, eps);
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) ot[c] = __fmul_rn(__fmul_rn(xt[c], r), w[c]);
}

__global__ void add_norm_kernel(float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ w,
                                int64_t dim, float eps) {
  float* xt = x + blockIdx.x * dim;
  const float* yt = y + blockIdx.x * dim;
  if (!w) {
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) xt[c] = __fadd_rn(xt[c], yt[c]);
    return;
  }
  const float r = block_inv_rms(yt, dim, eps);
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x)
    xt[c] = __fadd_rn(xt[c], __fmul_rn(__fmul_rn(yt[c], r), w[c]));
}

__global__ void gelu_mul_kernel(float* __restrict__ g, const float* __restrict__ u, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  const float z = g[i];
  g[i] = 0.5f * z * (1.0f + tanhf(kC * (z + 0.044715f * z * z * z))) * u[i];
}

__global__ void softcap_kernel(float* __restrict__ x, int64_t n, float cap) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

// A warp per (token, head): optional RMSNorm over the head, then split-half rotation; the angle is
// the float32 product position * inv_freq, its cosine and sine taken in double (as the CPU).
__global__ void norm_rope_kernel(float* __restrict__ x, int64_t n_units, int n_heads, int head_dim,
                                 const float* __restrict__ norm_w, float eps, const int32_t* __restrict__ positions,
                                 const float* __restrict__ inv_freq) {
  const int64_t u = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (u >= n_units) return;
  const int lane = threadIdx.x % 32;
  float* v = x + u * head_dim;
  if (norm_w) {
    float ss = 0;
    for (int c = lane; c < head_dim; c += 32) ss = __fadd_rn(ss, __fmul_rn(v[c], v[c]));
    ss = warp_sum(ss);
    const float r = 1.0f / sqrtf(ss / static_cast<float>(head_dim) + eps);
    for (int c = lane; c < head_dim; c += 32) v[c] = __fmul_rn(__fmul_rn(v[c], r), norm_w[c]);
    __syncwarp();  // the rotation below reads elements other lanes normalized
  }
  const float p = static_cast<float>(positions[u / n_heads]);
  const int half = head_dim / 2;
  for (int k = lane; k < half; k += 32) {
    const float angle = __fmul_rn(p, inv_freq[k]);
    const float c = static_cast<float>(cos(static_cast<double>(angle)));
    const float s = static_cast<float>(sin(static_cast<double>(angle)));
    const float x1 = v[k], x2 = v[k + half];
    v[k] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    v[k + half] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
  }
}

// A block per item: K and V rows converted to the cache type. Q8_0 as the CPU's quantize_row:
// d = max|x| / 127 (stored as f16), q = round(x / d) with the float32 d's inverse.
__global__ void store_kv_kernel(const KvStoreItem* __restrict__ items, const float* __restrict__ k,
                                const float* __restrict__ v, int64_t kvw, DType type) {
  const KvStoreItem it = items[blockIdx.x];
  for (int pass = 0; pass < 2; ++pass) {
    const float* src = (pass == 0 ? k : v) + it.row * kvw;
    uint8_t* dst = pass == 0 ? it.k_dst : it.v_dst;
    if (type == DType::Q8_0) {
      for (int64_t b = threadIdx.x; b < kvw / 32; b += blockDim.x) {
        const float* xb = src + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        uint8_t* ob = dst + b * 34;
        const unsigned short dh = __half_as_ushort(__float2half_rn(d));
        ob[0] = static_cast<uint8_t>(dh & 0xFF);
        ob[1] = static_cast<uint8_t>(dh >> 8);
        for (int j = 0; j < 32; ++j)
          ob[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(roundf(__fmul_rn(xb[j], id))));
      }
      continue;
    }
    for (int64_t c = threadIdx.x; c < kvw; c += blockDim.x) {
      if (type == DType::F16) reinterpret_cast<__half*>(dst)[c] = __float2half_rn(src[c]);
      else if (type == DType::BF16) reinterpret_cast<__nv_bfloat16*>(dst)[c] = __float2bfloat16_rn(src[c]);
      else reinterpret_cast<float*>(dst)[c] = src[c];
    }
  }
}

// Element i of a cache's row array (attention_generic.cpp's load()).
__device__ __forceinline__ float kv_load(const uint8_t* base, DType type, int64_t i) {
  switch (type) {
    case DType::F16: return __half2float(reinterpret_cast<const __half*>(base)[i]);
    case DType::BF16:
      return __uint_as_float(static_cast<unsigned>(reinterpret_cast<const unsigned short*>(base)[i]) << 16);
    case DType::Q8_0: {
      const uint8_t* b = base + (i / 32) * 34;
      const float d = __half2float(__ushort_as_half(static_cast<unsigned short>(b[0] | (b[1] << 8))));
      return __fmul_rn(d, static_cast<float>(static_cast<int8_t>(b[2 + i % 32])));
    }
    default: return reinterpret_cast<const float*>(base)[i];
  }
}

constexpr int kPerLane = kMaxHeadDim / 32;

// A warp per (item, head); lane l holds elements l, l + 32, ... of the query and the accumulator.
// The online softmax is the CPU kernel's: on a new maximum the running sums are rescaled.
__global__ void attention_kernel(const AttentionItem* __restrict__ items, int64_t n_units, const float* q, float* out,
                                 int n_heads, int n_kv_heads, int hd, DType type, float scale, float softcap) {
  const int64_t u = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (u >= n_units) return;
  const int lane = threadIdx.x % 32;
  const AttentionItem it = items[u / n_heads];
  const int h = static_cast<int>(u % n_heads), g = h / (n_heads / n_kv_heads);
  const int64_t kv_stride = static_cast<int64_t>(n_kv_heads) * hd;
  const float* qh = q + (it.row * n_heads + h) * hd;
  float qv[kPerLane], acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int c = lane + 32 * i;
    qv[i] = c < hd ? qh[c] : 0.0f;
    acc[i] = 0;
  }
  float m = -INFINITY, l = 0;
  for (int64_t j = it.j0; j <= it.j1; ++j) {
    const int64_t base = (j % it.capacity) * kv_stride + static_cast<int64_t>(g) * hd;
    float dot = 0;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int c = lane + 32 * i;
      if (c < hd) dot = fmaf(qv[i], kv_load(it.k_cache, type, base + c), dot);
    }
    float s = warp_sum(dot) * scale;
    if (softcap > 0) s = softcap * tanhf(s / softcap);
    if (s > m) {
      const float corr = expf(m - s);
      l *= corr;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) acc[i] *= corr;
      m = s;
    }
    const float p = expf(s - m);
    l += p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int c = lane + 32 * i;
      if (c < hd) acc[i] = fmaf(p, kv_load(it.v_cache, type, base + c), acc[i]);
    }
  }
  // out may be q: this warp alone reads and writes this (row, head).
  float* oh = out + (it.row * n_heads + h) * hd;
  const float inv = 1.0f / l;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int c = lane + 32 * i;
    if (c < hd) oh[c] = acc[i] * inv;
  }
}

unsigned blocks_for(int64_t n, int per_block) { return static_cast<unsigned>((n + per_block - 1) / per_block); }

}  // namespace

cudaError_t rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* out,
                     cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned>(n_rows), 256, 0, stream>>>(x, w, dim, eps, out);
  return cudaGetLastError();
}

cudaError_t add_norm(float* x, const float* y, const float* w, int64_t n_rows, int64_t dim, float eps,
                     cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  add_norm_kernel<<<static_cast<unsigned>(n_rows), 256, 0, stream>>>(x, y, w, dim, eps);
  return cudaGetLastError();
}

cudaError_t gelu_mul(float* g, const float* u, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  gelu_mul_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(g, u, n);
  return cudaGetLastError();
}

cudaError_t softcap(float* x, int64_t n, float cap, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  softcap_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(x, n, cap);
  return cudaGetLastError();
}

cudaError_t norm_rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const float* norm_w, float eps,
                      const int32_t* positions, const float* inv_freq, cudaStream_t stream) {
  const int64_t units = n_tokens * n_heads;
  if (units == 0) return cudaSuccess;
  norm_rope_kernel<<<blocks_for(units, 4), 128, 0, stream>>>(x, units, n_heads, head_dim, norm_w, eps, positions,
                                                             inv_freq);
  return cudaGetLastError();
}

cudaError_t store_kv(const KvStoreItem* items, int64_t n_items, const float* k, const float* v, int64_t kvw,
                     DType kv_type, cudaStream_t stream) {
  if (n_items == 0) return cudaSuccess;
  store_kv_kernel<<<static_cast<unsigned>(n_items), 128, 0, stream>>>(items, k, v, kvw, kv_type);
  return cudaGetLastError();
}

cudaError_t attention(const AttentionItem* items, int64_t n_items, const float* q, float* out, int n_heads,
                      int n_kv_heads, int head_dim, DType kv_type, float scale, float softcap, cudaStream_t stream) {
  const int64_t units = n_items * n_heads;
  if (units == 0) return cudaSuccess;
  if (head_dim > kMaxHeadDim || n_kv_heads <= 0 || n_heads % n_kv_heads != 0) return cudaErrorInvalidValue;
  attention_kernel<<<blocks_for(units, 4), 128, 0, stream>>>(items, units, q, out, n_heads, n_kv_heads, head_dim,
                                                             kv_type, scale, softcap);
  return cudaGetLastError();
}

}  // namespace gemma::cuda

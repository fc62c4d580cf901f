// AVX2 attention over a KV cache: the online softmax of attention_generic.cpp, reorganised so each
// key and value row is loaded (and widened from float16) once for all heads of its KV group, and
// the softmax bookkeeping happens once per block of keys instead of once per key:
//   1. scores of a block of up to kBlock keys for every head of the group (8-wide FMAs);
//   2. per head: the block maximum, one rescale of the running sums if it grew, p = exp(s - m)
//      (vectorised exp);
//   3. acc[h] += Σ_j p[h][j] v_j, a slice of the head dimension at a time with the slices of all
//      heads held in registers while the block's values stream past.
#include <immintrin.h>

#include <math.h>

#include <cstring>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/isa.h"

namespace gemma::cpu {

namespace {

using avx2::hsum;

constexpr int kBlock = 32;

// Elements i .. i+7 of a cache row array of type kKv, widened to float32. For Q8_0 the 8 lie in
// one block (i is a multiple of 8 and rows are whole blocks).
template <DType kKv>
inline __m256 load8(const void* base, int64_t i) {
  if constexpr (kKv == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i)));
  } else if constexpr (kKv == DType::BF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else if constexpr (kKv == DType::Q8_0) {
    const auto* b = static_cast<const uint8_t*>(base) + (i / 32) * 34;  // {f16 d; int8 qs[32]}
    uint16_t d;
    std::memcpy(&d, b, 2);
    const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + i % 32));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), _mm256_set1_ps(_cvtsh_ss(d)));
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  }
}

// e^x for x <= 0 (softmax weights): x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor polynomial to
// r^7 (relative error < 2e-7, about the float32 rounding), times 2^n through the exponent bits.
// Below -87 the result would be subnormal; it is flushed to e^-87 (~1.6e-38), which no sum notices.
inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);  // ln2 split in two parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// G heads share a KV group; kW vectors of 8 per head per slice of the head dimension in step 3.
template <DType kKv, int G>
void run(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l, float* acc) {
  constexpr int kW = G <= 2 ? 4 : (G == 4 ? 2 : 1);
  const int hd = a.head_dim;  // a multiple of 8 (checked by the caller)
  const int64_t kv_stride = static_cast<int64_t>(a.n_kv_heads) * hd;
  const float* q = a.q + (t * a.n_heads + g * G) * hd;
#pragma GCC unroll 8
  for (int h = 0; h < G; ++h) m[h] = -INFINITY, l[h] = 0;
  for (int64_t i = 0; i < int64_t{G} * hd; ++i) acc[i] = 0.0f;
  alignas(32) float s[G][kBlock];
  int64_t base[kBlock];
  for (int64_t jb = j0; jb <= j1; jb += kBlock) {
    const int nj = static_cast<int>(avx2::min64(kBlock, j1 - jb + 1));
    // 1. Scores.
    for (int jj = 0; jj < nj; ++jj) {
      base[jj] = ((jb + jj) % a.capacity) * kv_stride + g * hd;
      __m256 d[G];
#pragma GCC unroll 8
      for (int h = 0; h < G; ++h) d[h] = _mm256_setzero_ps();
      for (int c = 0; c < hd; c += 8) {
        const __m256 k = load8<kKv>(a.k_cache, base[jj] + c);
#pragma GCC unroll 8
        for (int h = 0; h < G; ++h) d[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * hd + c), k, d[h]);
      }
#pragma GCC unroll 8
      for (int h = 0; h < G; ++h) {
        float v = hsum(d[h]) * a.scale;
        if (a.softcap > 0) v = a.softcap * tanhf(v / a.softcap);
        s[h][jj] = v;
      }
    }
    // 2. Softmax weights relative to the running maximum.
#pragma GCC unroll 8
    for (int h = 0; h < G; ++h) {
      for (int jj = nj; jj < kBlock; ++jj) s[h][jj] = -INFINITY;
      float bm = s[h][0];
      for (int j = 1; j < nj; ++j) bm = s[h][j] > bm ? s[h][j] : bm;
      if (bm > m[h]) {
        const float corr = expf(m[h] - bm);  // 0 on the first block (m = -inf)
        l[h] *= corr;
        const __m256 cv = _mm256_set1_ps(corr);
        for (int c = 0; c < hd; c += 8)
          _mm256_storeu_ps(acc + h * hd + c, _mm256_mul_ps(_mm256_loadu_ps(acc + h * hd + c), cv));
        m[h] = bm;
      }
      const __m256 mv = _mm256_set1_ps(m[h]);
      __m256 sum = _mm256_setzero_ps();
      for (int jj = 0; jj < kBlock; jj += 8) {
        __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(s[h] + jj), mv));
        if (jj + 8 > nj)  // keys past the end of the range weigh nothing
          p = _mm256_and_ps(p, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nj - jj),
                                                                      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
        _mm256_store_ps(s[h] + jj, p);
        sum = _mm256_add_ps(sum, p);
      }
      l[h] += hsum(sum);
    }
    // 3. Weighted values.
    for (int c = 0; c < hd; c += 8 * kW) {
      const int w_here = static_cast<int>(avx2::min64(kW, (hd - c) / 8));
      __m256 o[G][kW];
#pragma GCC unroll 8
      for (int h = 0; h < G; ++h)
#pragma GCC unroll 8
        for (int w = 0; w < kW; ++w)
          o[h][w] = w < w_here ? _mm256_loadu_ps(acc + h * hd + c + 8 * w) : _mm256_setzero_ps();
      for (int jj = 0; jj < nj; ++jj) {
        __m256 v[kW];
#pragma GCC unroll 8
        for (int w = 0; w < kW; ++w)
          v[w] = w < w_here ? load8<kKv>(a.v_cache, base[jj] + c + 8 * w) : _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int h = 0; h < G; ++h) {
          const __m256 p = _mm256_broadcast_ss(&s[h][jj]);
#pragma GCC unroll 8
          for (int w = 0; w < kW; ++w) o[h][w] = _mm256_fmadd_ps(p, v[w], o[h][w]);
        }
      }
#pragma GCC unroll 8
      for (int h = 0; h < G; ++h)
#pragma GCC unroll 8
        for (int w = 0; w < w_here; ++w) _mm256_storeu_ps(acc + h * hd + c + 8 * w, o[h][w]);
    }
  }
}

template <DType kKv>
void dispatch(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l, float* acc) {
  switch (a.n_heads / a.n_kv_heads) {
    case 1: return run<kKv, 1>(a, t, g, j0, j1, m, l, acc);
    case 2: return run<kKv, 2>(a, t, g, j0, j1, m, l, acc);
    case 4: return run<kKv, 4>(a, t, g, j0, j1, m, l, acc);
    case 8: return run<kKv, 8>(a, t, g, j0, j1, m, l, acc);
    default: return attention_generic(a, t, g, j0, j1, m, l, acc);  // no Gemma has another group size
  }
}

}  // namespace

void attention_avx2(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l, float* acc) {
  switch (a.kv_type) {
    case DType::F16: return dispatch<DType::F16>(a, t, g, j0, j1, m, l, acc);
    case DType::BF16: return dispatch<DType::BF16>(a, t, g, j0, j1, m, l, acc);
    case DType::Q8_0: return dispatch<DType::Q8_0>(a, t, g, j0, j1, m, l, acc);
    default: return dispatch<DType::F32>(a, t, g, j0, j1, m, l, acc);
  }
}

}  // namespace gemma::cpu

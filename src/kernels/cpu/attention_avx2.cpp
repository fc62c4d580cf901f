// AVX2 attention over a KV cache: the same online softmax as attention_generic.cpp, with the
// q·k dot products and the v accumulation in 8-wide FMAs and float16 keys/values converted by F16C.
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/isa.h"

namespace gemma::cpu {

namespace {

using avx2::hsum;

template <bool kHalf>
inline __m256 load8(const void* base, int64_t i) {
  if constexpr (kHalf)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i)));
  else
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
}

template <bool kHalf>
void run(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l, float* acc) {
  const int group = a.n_heads / a.n_kv_heads;
  const int hd = a.head_dim;  // a multiple of 8 (checked by the caller)
  const int64_t kv_stride = static_cast<int64_t>(a.n_kv_heads) * hd;
  const float* q0 = a.q + (t * a.n_heads + g * group) * hd;
  for (int h = 0; h < group; ++h) m[h] = -INFINITY, l[h] = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(group) * hd; ++i) acc[i] = 0;
  for (int64_t j = j0; j <= j1; ++j) {
    const int64_t base = (j % a.capacity) * kv_stride + g * hd;
    for (int h = 0; h < group; ++h) {
      const float* q = q0 + h * hd;
      __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
      int c = 0;
      for (; c + 16 <= hd; c += 16) {
        d0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8<kHalf>(a.k_cache, base + c), d0);
        d1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), load8<kHalf>(a.k_cache, base + c + 8), d1);
      }
      for (; c < hd; c += 8) d0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8<kHalf>(a.k_cache, base + c), d0);
      float s = hsum(_mm256_add_ps(d0, d1)) * a.scale;
      if (a.softcap > 0) s = a.softcap * std::tanh(s / a.softcap);
      float* o = acc + h * hd;
      if (s > m[h]) {
        const float corr = std::exp(m[h] - s);
        l[h] *= corr;
        const __m256 cv = _mm256_set1_ps(corr);
        for (int k = 0; k < hd; k += 8) _mm256_storeu_ps(o + k, _mm256_mul_ps(_mm256_loadu_ps(o + k), cv));
        m[h] = s;
      }
      const float p = std::exp(s - m[h]);
      l[h] += p;
      const __m256 pv = _mm256_set1_ps(p);
      for (int k = 0; k < hd; k += 8)
        _mm256_storeu_ps(o + k, _mm256_fmadd_ps(pv, load8<kHalf>(a.v_cache, base + k), _mm256_loadu_ps(o + k)));
    }
  }
}

}  // namespace

void attention_avx2(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l, float* acc) {
  if (a.kv_type == DType::F16) run<true>(a, t, g, j0, j1, m, l, acc);
  else run<false>(a, t, g, j0, j1, m, l, acc);
}

}  // namespace gemma::cpu

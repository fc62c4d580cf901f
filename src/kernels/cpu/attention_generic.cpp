// Portable attention over a KV cache (the reference for the AVX2 kernel): online softmax over the
// keys of one query token and one KV group, float32 or float16 cache.
#include <cmath>

#include "kernels/cpu/isa.h"
#include "util/half.h"

namespace gemma::cpu {

namespace {

inline float load(const void* base, DType type, int64_t i) {
  return type == DType::F16 ? f16_to_f32(static_cast<const uint16_t*>(base)[i]) : static_cast<const float*>(base)[i];
}

}  // namespace

void attention_generic(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l,
                       float* acc) {
  const int group = a.n_heads / a.n_kv_heads;
  const int hd = a.head_dim;
  const int64_t kv_stride = static_cast<int64_t>(a.n_kv_heads) * hd;
  const float* q0 = a.q + (t * a.n_heads + g * group) * hd;
  for (int h = 0; h < group; ++h) m[h] = -INFINITY, l[h] = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(group) * hd; ++i) acc[i] = 0;
  for (int64_t j = j0; j <= j1; ++j) {
    const int64_t base = (j % a.capacity) * kv_stride + g * hd;
    for (int h = 0; h < group; ++h) {
      const float* q = q0 + h * hd;
      float dot = 0;
      for (int c = 0; c < hd; ++c) dot += q[c] * load(a.k_cache, a.kv_type, base + c);
      float s = dot * a.scale;
      if (a.softcap > 0) s = a.softcap * std::tanh(s / a.softcap);
      float* o = acc + h * hd;
      if (s > m[h]) {  // a new maximum: rescale what has been summed so far
        const float corr = std::exp(m[h] - s);
        l[h] *= corr;
        for (int c = 0; c < hd; ++c) o[c] *= corr;
        m[h] = s;
      }
      const float p = std::exp(s - m[h]);
      l[h] += p;
      for (int c = 0; c < hd; ++c) o[c] += p * load(a.v_cache, a.kv_type, base + c);
    }
  }
}

}  // namespace gemma::cpu

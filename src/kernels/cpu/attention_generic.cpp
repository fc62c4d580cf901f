// Portable attention over a KV cache (the reference for the AVX2 kernel): online softmax over the
// keys of one query token and one KV group, float32, float16, bfloat16 or Q8_0 cache.
#include <cmath>
#include <cstring>

#include "kernels/cpu/isa.h"
#include "util/half.h"

namespace gemma::cpu {

namespace {

// Element i of a cache row array: F32, F16, BF16, or Q8_0 blocks ({f16 d; int8 qs[32]}).
inline float load(const void* base, DType type, int64_t i) {
  switch (type) {
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::Q8_0: {
      const auto* b = static_cast<const uint8_t*>(base) + (i / 32) * 34;
      uint16_t d;
      std::memcpy(&d, b, 2);
      return f16_to_f32(d) * static_cast<float>(static_cast<int8_t>(b[2 + i % 32]));
    }
    default: return static_cast<const float*>(base)[i];
  }
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

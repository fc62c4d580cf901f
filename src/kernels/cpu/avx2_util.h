// Small helpers shared by the AVX2 kernel files (each compiled with -mavx2 -mfma -mf16c).
//
// The ODR rule of matmul_avx512.cpp holds for these files too: an inline function or template
// instance with external linkage that another file also defines (one built without -mavx2) may be
// replaced by this file's AVX2 copy at link time, which faults on CPUs without AVX2. So the AVX2
// files keep every helper in an anonymous namespace and use no standard-library templates or
// inline library functions (std::vector, std::min, std::tanh(float), ...): the helpers below, and
// the C library's functions (tanhf, expf), which are not inline.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>

#include "kernels/backend.h"

// Kernel pieces that must inline into their loops even where the compiler's heuristics would not.
#define GE_ALWAYS_INLINE inline __attribute__((always_inline))

namespace gemma::cpu::avx2 {
namespace {

// Row r of w (WeightMatrix::row, restated: an inline member compiled here would be an AVX2 copy).
inline const uint8_t* row_ptr(const WeightMatrix& w, int64_t r) {
  return w.data + static_cast<uint64_t>(r) * w.row_bytes;
}

constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
constexpr int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// A per-thread scratch buffer that grows as needed (64-byte aligned).
struct ScratchBuffer {
  void* p = nullptr;
  size_t cap = 0;
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(p); }
  template <typename T>
  T* get(size_t count) {
    size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
    if (bytes > cap) {
      std::free(p);
      p = std::aligned_alloc(64, bytes);
      if (!p) std::abort();
      cap = bytes;
    }
    return static_cast<T*>(p);
  }
};

// Sum of the 8 lanes.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// In-register 8x8 transpose: v[i] lane j -> v[j] lane i.
inline void transpose8(__m256 v[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

}  // namespace
}  // namespace gemma::cpu::avx2

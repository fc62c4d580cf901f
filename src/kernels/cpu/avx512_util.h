// Helpers shared by the translation units compiled for AVX-512 (matmul_avx512.cpp, gemm_amx.cpp).
// Include only from such files: everything here is in an anonymous namespace, so each file gets
// its own copy and no AVX-512 code can stand in for another file's (the ODR note in
// matmul_avx512.cpp). No standard-library templates for the same reason.
#pragma once

// GCC 12's AVX-512 headers make "undefined" vectors by self-assignment, which its own
// -Wmaybe-uninitialized then reports in every intrinsic that takes one (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "kernels/backend.h"

namespace gemma::cpu {
namespace {

#define GE512_INLINE inline __attribute__((always_inline))

// A per-thread buffer that grows as needed.
struct ActivationBuffer {
  uint8_t* p = nullptr;
  size_t cap = 0;
  ~ActivationBuffer() { std::free(p); }
  uint8_t* get(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (bytes > cap) {
      std::free(p);
      p = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
      if (!p) std::abort();
      cap = bytes;
    }
    return p;
  }
};

GE512_INLINE const uint8_t* row_ptr(const WeightMatrix& w, int64_t r) {
  return w.data + static_cast<uint64_t>(r) * w.row_bytes;
}

// A 16x16 dword transpose (unpack 32- and 64-bit, then two 128-bit shuffles): out[k] lane i =
// a[i] lane k. a is overwritten.
GE512_INLINE void transpose16x16(__m512i a[16], __m512i out[16]) {
  __m512i t[16];
#pragma GCC unroll 16
  for (int j = 0; j < 8; ++j) {
    t[2 * j] = _mm512_unpacklo_epi32(a[2 * j], a[2 * j + 1]);
    t[2 * j + 1] = _mm512_unpackhi_epi32(a[2 * j], a[2 * j + 1]);
  }
#pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {  // a[4j + m], 128-bit lane L: column 4L + m of rows 4j..4j+3
    a[4 * j + 0] = _mm512_unpacklo_epi64(t[4 * j], t[4 * j + 2]);
    a[4 * j + 1] = _mm512_unpackhi_epi64(t[4 * j], t[4 * j + 2]);
    a[4 * j + 2] = _mm512_unpacklo_epi64(t[4 * j + 1], t[4 * j + 3]);
    a[4 * j + 3] = _mm512_unpackhi_epi64(t[4 * j + 1], t[4 * j + 3]);
  }
#pragma GCC unroll 16
  for (int m = 0; m < 4; ++m) {
    const __m512i v0 = _mm512_shuffle_i32x4(a[m], a[4 + m], 0x88), v1 = _mm512_shuffle_i32x4(a[m], a[4 + m], 0xDD);
    const __m512i w0 = _mm512_shuffle_i32x4(a[8 + m], a[12 + m], 0x88),
                  w1 = _mm512_shuffle_i32x4(a[8 + m], a[12 + m], 0xDD);
    out[m] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    out[8 + m] = _mm512_shuffle_i32x4(v0, w0, 0xDD);
    out[4 + m] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    out[12 + m] = _mm512_shuffle_i32x4(v1, w1, 0xDD);
  }
}

// BF16 rows r..r+15, columns c..c+31 (16 column pairs) into out[16 * k + i] = pair k of row i: a
// 16x16 dword transpose. This is the layout vdpbf16ps broadcasts against and the B operand of
// AMX's tdpbf16ps (16 pairs x 16 rows).
GE512_INLINE void pack16x16(const WeightMatrix& w, int64_t r, int64_t c, uint32_t* out) {
  __m512i a[16], o[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_loadu_si512(row_ptr(w, r + i) + 2 * c);
  transpose16x16(a, o);
  for (int k = 0; k < 16; ++k) _mm512_storeu_si512(out + 16 * k, o[k]);
}

// BF16 rows r..r+16*rv-1, columns [c0, c0 + kc) (kc a multiple of 32) packed by pack16x16: row
// group v at packed + v * stride dwords. The layout of both BF16 prefill GEMMs.
GE512_INLINE void pack_row_groups(const WeightMatrix& w, int64_t r, int rv, int64_t c0, int64_t kc, uint32_t* packed,
                                  int64_t stride) {
  for (int v = 0; v < rv; ++v)
    for (int64_t k = 0; k < kc / 2; k += 16) pack16x16(w, r + 16 * v, c0 + 2 * k, packed + v * stride + 16 * k);
}

// Share g of `groups` of the BF16 bytes of rows [r, r + rows), columns [c0, c0 + kc), prefetched
// into L2: while one row group computes (a share per token group), the next one's rows arrive.
// Packing from DRAM 16 rows apart otherwise stalled on every line (a large share of BF16 prefill;
// docs/benchmarks.md, "Measurements cited from kernel comments").
GE512_INLINE void prefetch_rows_share(const WeightMatrix& w, int64_t r, int64_t rows, int64_t c0, int64_t kc, int64_t g,
                                      int64_t groups) {
  const int64_t lines = kc * 2 / 64;
  for (int64_t q = rows * lines * g / groups; q < rows * lines * (g + 1) / groups; ++q)
    _mm_prefetch(reinterpret_cast<const char*>(row_ptr(w, r + q / lines) + 2 * c0 + 64 * (q % lines)), _MM_HINT_T1);
}

// Tokens [0, n) of x (float, row stride ldx), columns [c0, c0 + kc) (kc a multiple of 32), rounded
// to bfloat16 (round to nearest even) into out (row stride kc bfloat16s).
GE512_INLINE void round_to_bf16(const float* x, int64_t ldx, int64_t n, int64_t c0, int64_t kc, uint16_t* out) {
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < kc; c += 32) {
      const float* src = x + t * ldx + c0 + c;
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src));
      _mm512_storeu_si512(out + t * kc + c, (__m512i)v);
    }
}

}  // namespace
}  // namespace gemma::cpu

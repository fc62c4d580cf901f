// Decode kernels that take one weight row at a time against 1-7 tokens (AVX2): Q8_0 and the
// K-quants. Included only by matmul_avx2.cpp (compiled with -mavx2 -mfma -mf16c).
//
// Why not the 8-row pair tiles of matmul_avx2.cpp. K-quants: a super-block carries 8 or 16
// sub-block scales, and spreading them over the lanes of an 8-row tile (unpack, transpose, hadd
// trees) cost more than the dot products, so those tiles ran below the memory's read bandwidth
// even from cache. Here each row's 32-byte code vectors come from
// full-width loads (the four sub-blocks of a Q6_K half share their high bits, two Q4_K sub-blocks
// share their bytes), each sub-block's integer sum is scaled in int32 by its sub-block scale, and
// the float work is one convert and one FMA per sub-block. Q8_0: the pair tile is faster from
// cache, but decode reads Q8_0 (the tied output projection) from DRAM, and one row at a time reads
// the tile's contiguous rows in order instead of as 8 interleaved streams, which DRAM serves
// faster (measurements: docs/benchmarks.md, "Measurements cited from kernel comments").
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/backend.h"
#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/block_traits_avx2.h"
#include "kernels/cpu/q8a.h"
#include "kernels/quant_blocks.h"

namespace gemma::cpu::avx2 {

// Decode streams each weight once from DRAM, and the hardware prefetchers alone keep too few
// lines in flight (the 262144-row output projection ran at ~1/3 of the read bandwidth). So while
// a tile reads its rows, it asks for the same bytes of the next tile's rows (nullptr when the rows
// are cached already, i.e. for every token group of a tile after the first).
GE_ALWAYS_INLINE void prefetch_bytes(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}

// Q6_K: code q in 0..63, weight d * scales[e / 16] * (q - 32). maddubs takes the unsigned codes,
// and 32 * Σx is taken off the int16 pair sums (|q - 32| * 127 * 2 fits in int16); madd with the
// sub-block's [scales[2s] x 8 | scales[2s+1] x 8] then gives both halves' scaled int32 sums.
struct RowQ6K {
  static constexpr float BlockQ8A::*kContiguous = nullptr;
  template <int RN>
  GE_ALWAYS_INLINE static void row(const uint8_t* p, int64_t cols, const BlockQ8A* const* xs, const float* const*,
                                   const uint8_t* next, __m256* out) {
    const auto* blocks = reinterpret_cast<const BlockQ6_K*>(p);
    const int64_t nb = cols / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30), c32 = _mm256_set1_epi8(32);
    // Byte pairs 0,1 (lane 0) and 2,3 (lane 1) of each 32-bit lane: scales[2s], scales[2s+1].
    const __m256i split = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,  //
                                           2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    __m256 acc[RN];
    for (int j = 0; j < RN; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& blk = blocks[b];
      if (next) prefetch_bytes(next + b * int64_t{sizeof(BlockQ6_K)}, sizeof(BlockQ6_K));
      const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
      __m256 part[RN][2];
      for (int j = 0; j < RN; ++j) part[j][0] = part[j][1] = _mm256_setzero_ps();
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          const int s = 4 * h + k;
          const __m256i s16 = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc, _mm256_set1_epi32(s)), split);
          for (int j = 0; j < RN; ++j) {
            const BlockQ8A& xb = xs[j][b * 8 + s];
            const __m256i xq = load_x(xb);
            const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], xq), _mm256_maddubs_epi16(c32, xq));
            part[j][k & 1] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p16, s16)), _mm256_set1_ps(xb.d), part[j][k & 1]);
          }
        }
      }
      const __m256 d = _mm256_set1_ps(h2f(blk.d));
      for (int j = 0; j < RN; ++j) acc[j] = _mm256_fmadd_ps(_mm256_add_ps(part[j][0], part[j][1]), d, acc[j]);
    }
    for (int j = 0; j < RN; ++j) out[j] = acc[j];
  }
};

// Q4_K / Q5_K: weight d * sc[s] * q - dmin * m[s] for sub-block s (32 elements), 6-bit sc and m.
// The codes are unsigned (0..15, or 0..31 with Q5_K's fifth bit), so maddubs takes them directly;
// madd with sc[s] broadcast scales the sums; the mins meet the activation sums as one 8-lane
// product per super-block (sums: the 8 sub-blocks' d_x * Σq_x, made contiguous by the caller).
template <typename Block, bool kFive>
struct RowK45 {
  static constexpr float BlockQ8A::*kContiguous = &BlockQ8A::s;
  template <int RN>
  GE_ALWAYS_INLINE static void row(const uint8_t* p, int64_t cols, const BlockQ8A* const* xs, const float* const* sums,
                                   const uint8_t* next, __m256* out) {
    const auto* blocks = reinterpret_cast<const Block*>(p);
    const int64_t nb = cols / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m10 = _mm256_set1_epi8(0x10);
    __m256 acc[RN];
    for (int j = 0; j < RN; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const Block& blk = blocks[b];
      if (next) prefetch_bytes(next + b * int64_t{sizeof(Block)}, sizeof(Block));
      // The twelve 6-bit-packed bytes -> u[0], u[1]: the 8 scales; u[2], u[3]: the 8 mins.
      uint32_t u[4];
      std::memcpy(u, blk.scales, 12);
      constexpr uint32_t kM1 = 0x3f3f3f3f, kM2 = 0x0f0f0f0f, kM3 = 0x03030303;
      u[3] = ((u[2] >> 4) & kM2) | (((u[1] >> 6) & kM3) << 4);
      const uint32_t mins_lo = u[1] & kM1;
      u[1] = (u[2] & kM2) | (((u[0] >> 6) & kM3) << 4);
      u[0] &= kM1;
      u[2] = mins_lo;
      const __m256i sc = _mm256_broadcastsi128_si256(
          _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(u[1]), static_cast<int>(u[0]))));
      const __m256 mins =
          _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, static_cast<int>(u[3]), static_cast<int>(u[2]))));
      __m256i qh;
      if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
      __m256 part[RN][2];
      for (int j = 0; j < RN; ++j) part[j][0] = part[j][1] = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * (s / 2)));
        __m256i q = _mm256_and_si256(s % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
        if constexpr (kFive) {  // bit s of each qh byte -> 0x10
          const __m256i hb = s < 4 ? _mm256_slli_epi16(qh, 4 - s) : _mm256_srli_epi16(qh, s - 4);
          q = _mm256_or_si256(q, _mm256_and_si256(hb, m10));
        }
        const __m256i s16 = _mm256_shuffle_epi8(sc, _mm256_set1_epi16(static_cast<int16_t>((2 * s + 1) << 8 | 2 * s)));
        for (int j = 0; j < RN; ++j) {
          const BlockQ8A& xb = xs[j][b * 8 + s];
          const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(q, load_x(xb)), s16);
          part[j][s & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(xb.d), part[j][s & 1]);
        }
      }
      const __m256 d = _mm256_set1_ps(h2f(blk.d)), dmin = _mm256_set1_ps(h2f(blk.dmin));
      for (int j = 0; j < RN; ++j) {
        acc[j] = _mm256_fmadd_ps(_mm256_add_ps(part[j][0], part[j][1]), d, acc[j]);
        acc[j] = _mm256_fnmadd_ps(_mm256_mul_ps(mins, _mm256_loadu_ps(sums[j] + b * 8)), dmin, acc[j]);
      }
    }
    for (int j = 0; j < RN; ++j) out[j] = acc[j];
  }
};

// Q8_0: sign trick (|w| unsigned, x takes w's sign), maddubs + madd to int32 lanes per block.
// One token (decode proper): eight blocks' lane sums are reduced to one vector (lane k = block k)
// by a hadd tree, then one convert and one FMA take all eight d_w * d_x at once (the activation
// scales contiguous, the weights' eight f16 scales converted together) instead of a scalar
// convert, multiply and broadcast per block, which is faster both from L2 and from DRAM
// (measurements: docs/benchmarks.md, "Measurements cited from kernel comments"). 2-7 tokens:
// one FMA per block and token, blocks in pairs with two named accumulator sets (one indexed by
// b & 1 at run time lived on the stack).
struct RowQ8_0 {
  static constexpr float BlockQ8A::*kContiguous = &BlockQ8A::d;
  GE_ALWAYS_INLINE static __m256i block_dot(const BlockQ8_0& blk, const BlockQ8A& xb) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(load_x(xb), q)),
                             _mm256_set1_epi16(1));
  }
  template <int RN>
  GE_ALWAYS_INLINE static void step(const BlockQ8_0& blk, const BlockQ8A* const* xs, int64_t b, __m256* acc) {
    const float d = h2f(blk.d);
#pragma GCC unroll 4
    for (int j = 0; j < RN; ++j)
      acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot(blk, xs[j][b])), _mm256_set1_ps(d * xs[j][b].d), acc[j]);
  }
  template <int RN>
  GE_ALWAYS_INLINE static void row(const uint8_t* p, int64_t cols, const BlockQ8A* const* xs, const float* const* xd,
                                   const uint8_t* next, __m256* out) {
    const auto* blocks = reinterpret_cast<const BlockQ8_0*>(p);
    const int64_t nb = cols / 32;
    __m256 acc0[RN], acc1[RN];
#pragma GCC unroll 4
    for (int j = 0; j < RN; ++j) acc0[j] = acc1[j] = _mm256_setzero_ps();
    int64_t b = 0;
    if constexpr (RN == 1) {
      for (; b + 8 <= nb; b += 8) {
        if (next) prefetch_bytes(next + b * int64_t{sizeof(BlockQ8_0)}, 8 * int64_t{sizeof(BlockQ8_0)});
        const BlockQ8_0* k = blocks + b;
        const BlockQ8A* x = xs[0] + b;
        const __m256i h01 = _mm256_hadd_epi32(block_dot(k[0], x[0]), block_dot(k[1], x[1]));
        const __m256i h23 = _mm256_hadd_epi32(block_dot(k[2], x[2]), block_dot(k[3], x[3]));
        const __m256i h45 = _mm256_hadd_epi32(block_dot(k[4], x[4]), block_dot(k[5], x[5]));
        const __m256i h67 = _mm256_hadd_epi32(block_dot(k[6], x[6]), block_dot(k[7], x[7]));
        const __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);
        // Lanes [b0..b3 of elements 0-15 | b0..b3 of 16-31] and the same for b4..b7.
        const __m256i dots = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                              _mm256_permute2x128_si256(h0123, h4567, 0x31));
        const __m128i dh =
            _mm_setr_epi16(static_cast<int16_t>(k[0].d), static_cast<int16_t>(k[1].d), static_cast<int16_t>(k[2].d),
                           static_cast<int16_t>(k[3].d), static_cast<int16_t>(k[4].d), static_cast<int16_t>(k[5].d),
                           static_cast<int16_t>(k[6].d), static_cast<int16_t>(k[7].d));
        const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(dh), _mm256_loadu_ps(xd[0] + b));
        acc0[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), scale, acc0[0]);
      }
    }
    for (; b + 2 <= nb; b += 2) {
      if (next) _mm_prefetch(reinterpret_cast<const char*>(next + b * int64_t{sizeof(BlockQ8_0)} + 64), _MM_HINT_T0);
      step<RN>(blocks[b], xs, b, acc0);
      step<RN>(blocks[b + 1], xs, b + 1, acc1);
    }
    if (b < nb) step<RN>(blocks[b], xs, b, acc0);
#pragma GCC unroll 4
    for (int j = 0; j < RN; ++j) out[j] = _mm256_add_ps(acc0[j], acc1[j]);
  }
};

// out lane i = the sum of v[i]'s 8 lanes.
GE_ALWAYS_INLINE __m256 sum8(const __m256 v[8]) {
  const __m256 h0123 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 h4567 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  // [rows 0-3, lanes 0-3 | rows 0-3, lanes 4-7] and the same for rows 4-7.
  return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

// Rows r..r+7 x tokens t..t+RN-1, one row at a time (the rows of a tile are contiguous, so this
// streams memory in order); pf: the next tile's first row, prefetched as the same bytes of this
// tile are read (nullptr when there is none or it is cached already). fields: R::kContiguous of
// the tokens' activation blocks, one row of x_stride floats per token (nullptr if R has none).
template <typename R, int RN>
inline void tile8_by_rows(const WeightMatrix& w, int64_t r, const BlockQ8A* x, int64_t x_stride, int64_t t, float* y,
                          int64_t ldy, const uint8_t* pf, const float* fields) {
  const BlockQ8A* xs[RN];
  const float* fs[RN];
  for (int j = 0; j < RN; ++j) xs[j] = x + (t + j) * x_stride, fs[j] = fields ? fields + j * x_stride : nullptr;
  // Each row leaves its 8-lane partial sums per token; one hadd tree per token turns the 8 rows'
  // vectors into the 8 outputs, stored together, instead of a horizontal sum and a scalar store
  // per row and token (a 640-column Q8_0 row is only 20 blocks, so those showed in the profile).
  __m256 acc[RN][8];
  for (int i = 0; i < 8; ++i) {
    __m256 out[RN];
    R::template row<RN>(w.row(r + i), w.cols, xs, fs, pf ? pf + i * w.row_bytes : nullptr, out);
    for (int j = 0; j < RN; ++j) acc[j][i] = out[j];
  }
  for (int j = 0; j < RN; ++j) _mm256_storeu_ps(y + (t + j) * ldy + r, sum8(acc[j]));
}

}  // namespace gemma::cpu::avx2

// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; selected at run time).
// Quantized weights: unpack each 32-element block to bytes, multiply with the int8 activations
// by _mm256_maddubs_epi16 (u8 x s8 -> s16 pairs), widen with _mm256_madd_epi16, reduce to each
// row's exact integer dot, and accumulate in float with the block sum of block_traits_avx2.h:
// the same operations in the same order on every path, so a token's outputs are bit-identical
// whatever else is in the batch. Weight types with a zero point (Q4_0 −8, Q5_0 −16) or a min
// (Q4_1, Q5_1, Q4_K, Q5_K) keep the unsigned codes and correct with the activation block sum s;
// signed types (Q8_0, int8, Q6_K) use the sign trick. Which kernel runs: prefill (8+ tokens) the
// packed GEMM of gemm_avx2.cpp; decode the 8-row pair tiles below for the 32-element types, the
// 8-row sub-block tile for the K-quants and for rows left over from whole tiles.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/block_traits_avx2.h"
#include "kernels/cpu/gemm_avx2.h"
#include "kernels/cpu/isa.h"
#include "kernels/dequant.h"
#include "kernels/quant_blocks.h"

namespace gemma::cpu {

using namespace quant;

namespace {

using namespace avx2;

// Decode streams each weight once from DRAM, and the hardware prefetchers alone keep too few
// lines in flight. So while a tile reads its rows, it asks for the same bytes of the next tile's
// rows (nullptr when the rows are cached already, i.e. for every token group of a tile after the
// first).
GE_ALWAYS_INLINE void prefetch_bytes(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}

// Stores an 8-row tile's sums (lane i = row r + i) for its first `valid` rows.
GE_ALWAYS_INLINE void store_rows(float* y, __m256 v, int valid) {
  if (valid == 8) {
    _mm256_storeu_ps(y, v);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  for (int i = 0; i < valid; ++i) y[i] = tmp[i];
}

// --- The sub-block tile: 8 rows x RN tokens for every block type, from the sub-block traits. ----
// Each row's sub-block gives 8 int32 partial sums per token (maddubs + madd); a hadd tree turns
// the 8 rows' vectors into one vector of the 8 rows' exact integer dots, and the block sum's two
// FMAs (block_traits_avx2.h) run on all 8 rows at once. Rows past `valid` repeat the last valid
// row and are not stored, so leftover rows take the same arithmetic as whole tiles.
template <typename T, int RN>
void tile8_subblocks(const WeightMatrix& w, int64_t r, int valid, const BlockQ8A* x, int64_t x_stride, int64_t t,
                     float* y, int64_t ldy, const uint8_t* pf) {
  using Block = typename T::Block;
  const int64_t n_blocks = w.cols / (32 * T::kSub);
  const Block* rows[8];
  for (int i = 0; i < 8; ++i) rows[i] = reinterpret_cast<const Block*>(row_ptr(w, r + (i < valid ? i : valid - 1)));
  const BlockQ8A* xs[RN];
  for (int j = 0; j < RN; ++j) xs[j] = x + (t + j) * x_stride;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[RN];
  for (int j = 0; j < RN; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (pf) prefetch_bytes(pf + b * 8 * int64_t{sizeof(Block)}, 8 * int64_t{sizeof(Block)});
    for (int s = 0; s < T::kSub; ++s) {
      SubBlock sub[8];
      for (int i = 0; i < 8; ++i) T::load(rows[i][b], s, sub[i]);
      const __m256 d = _mm256_setr_ps(sub[0].d, sub[1].d, sub[2].d, sub[3].d, sub[4].d, sub[5].d, sub[6].d, sub[7].d);
      __m256 corr = _mm256_setzero_ps(), sc_lo = corr, sc_hi = corr;
      if constexpr (!T::kSigned)
        corr = _mm256_setr_ps(sub[0].corr, sub[1].corr, sub[2].corr, sub[3].corr, sub[4].corr, sub[5].corr, sub[6].corr,
                              sub[7].corr);
      if constexpr (T::kTwoScales) {
        sc_lo = _mm256_cvtepi32_ps(_mm256_setr_epi32(sub[0].sc_lo, sub[1].sc_lo, sub[2].sc_lo, sub[3].sc_lo,
                                                     sub[4].sc_lo, sub[5].sc_lo, sub[6].sc_lo, sub[7].sc_lo));
        sc_hi = _mm256_cvtepi32_ps(_mm256_setr_epi32(sub[0].sc_hi, sub[1].sc_hi, sub[2].sc_hi, sub[3].sc_hi,
                                                     sub[4].sc_hi, sub[5].sc_hi, sub[6].sc_hi, sub[7].sc_hi));
      }
      const int64_t xb = b * T::kSub + s;
      for (int j = 0; j < RN; ++j) {
        const __m256i xq = load_x(xs[j][xb]);
        __m256i p[8];
        for (int i = 0; i < 8; ++i) {
          const __m256i aq = T::kSigned ? _mm256_sign_epi8(sub[i].q, sub[i].q) : sub[i].q;
          const __m256i xv = T::kSigned ? _mm256_sign_epi8(xq, sub[i].q) : xq;
          p[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, xv), ones);
        }
        // Lanes [rows 0-3, elements 0-15 | rows 0-3, elements 16-31] and the same for rows 4-7.
        const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
        const __m256i lo = _mm256_permute2x128_si256(h0123, h4567, 0x20);
        const __m256i hi = _mm256_permute2x128_si256(h0123, h4567, 0x31);
        const __m256 dx = _mm256_set1_ps(xs[j][xb].d);
        __m256 dot;
        if constexpr (T::kTwoScales)  // exact: sc_lo * I_lo + sc_hi * I_hi < 2^24
          dot = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), sc_lo, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), sc_hi));
        else dot = _mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi));
        acc[j] = _mm256_fmadd_ps(dot, _mm256_mul_ps(d, dx), acc[j]);
        if constexpr (!T::kSigned) acc[j] = _mm256_fmadd_ps(corr, _mm256_set1_ps(xs[j][xb].s), acc[j]);
      }
    }
  }
  for (int j = 0; j < RN; ++j) store_rows(y + (t + j) * ldy + r, acc[j], valid);
}

// --- 8-row pair tile for the 32-element block types. ---------------------------------------------
// Two rows share one 256-bit register: lo = [row a elements 0-15 | row b elements 0-15], hi = the
// elements 16-31, multiplied with the activation halves broadcast to both lanes. Each pair gives 8
// int32 partial sums (4 per row); a hadd tree reduces four pairs to one vector holding the 8 rows'
// exact integer dots in lane order r0 r2 r4 r6 r1 r3 r5 r7, then the block sum's FMAs run on all
// 8 rows. About 7 instructions per row and block instead of the sub-block tile's 18, which makes
// decode memory-bound. Pair traits: load_pair(a, b, lo, hi); d8/corr8: the 8 rows' factors d and
// corr (as in SubBlock), in lane order; kSigned: codes are signed and wide (|w| up to 128), so the
// two maddubs halves are widened separately (their int16 sum could overflow), the sign trick
// applies and there is no corr term.

// The f16 field at `offset` of 8 blocks, in lane order r0 r2 r4 r6 r1 r3 r5 r7, as floats.
template <typename Block>
GE_ALWAYS_INLINE __m256 gather8_f16(const Block* const* rows, int64_t b, size_t offset) {
  auto h = [&](int i) {
    uint16_t v;
    std::memcpy(&v, reinterpret_cast<const uint8_t*>(&rows[i][b]) + offset, 2);
    return static_cast<int>(v);
  };
  __m128i v = _mm_cvtsi32_si128(h(0));
  v = _mm_insert_epi16(v, h(2), 1);
  v = _mm_insert_epi16(v, h(4), 2);
  v = _mm_insert_epi16(v, h(6), 3);
  v = _mm_insert_epi16(v, h(1), 4);
  v = _mm_insert_epi16(v, h(3), 5);
  v = _mm_insert_epi16(v, h(5), 6);
  v = _mm_insert_epi16(v, h(7), 7);
  return _mm256_cvtph_ps(v);
}

// Q8_0 and int8: 32 signed bytes per block; Q8_0's f16 d, or ScaleType::kNone (int8: the backend
// applies the row scale after the dot).
template <typename B, ScaleType kScale>
struct RowPairSigned {
  using Block = B;
  static constexpr bool kSigned = true;
  GE_ALWAYS_INLINE static void load_pair(const Block& a, const Block& b, __m256i& lo, __m256i& hi) {
    lo = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)),
                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs)));
    hi = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16)),
                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs + 16)));
  }
  GE_ALWAYS_INLINE static __m256 d8(const Block* const* rows, int64_t b) {
    if constexpr (kScale == ScaleType::kF16) return gather8_f16(rows, b, offsetof(Block, d));
    else return _mm256_set1_ps(1.0f);
  }
  GE_ALWAYS_INLINE static __m256 corr8(const Block* const*, int64_t, __m256) { return _mm256_setzero_ps(); }
};
using RowPairQ8_0 = RowPairSigned<BlockQ8_0, ScaleType::kF16>;
using RowPairI8 = RowPairSigned<SubBlockI8::Block, ScaleType::kNone>;

// Nibble types: Q4_0 (offset 8), Q4_1 (min), Q5_0 (offset 16), Q5_1 (min), Q4_0F (offset 8, f32 d).
template <typename B, CodeBits kBits, ZeroPoint kZero, ScaleType kScale = ScaleType::kF16>
struct RowPairNibbles {
  using Block = B;
  static constexpr bool kFive = kBits == CodeBits::k5;
  static constexpr bool kSigned = false;
  GE_ALWAYS_INLINE static void load_pair(const Block& a, const Block& b, __m256i& lo, __m256i& hi) {
    const __m256i v = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)),
                                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs)));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    lo = _mm256_and_si256(v, m4);
    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if constexpr (kFive) {  // fifth bits: lo takes bytes 0-1 of a's and b's qh, hi bytes 2-3
      uint32_t ha, hb;
      std::memcpy(&ha, a.qh, 4);
      std::memcpy(&hb, b.qh, 4);
      const __m256i both = _mm256_set1_epi64x(static_cast<int64_t>(ha | uint64_t{hb} << 32));
      const __m256i pick_lo =
          _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0404040404040404, 0x0505050505050505);
      const __m256i pick_hi =
          _mm256_setr_epi64x(0x0202020202020202, 0x0303030303030303, 0x0606060606060606, 0x0707070707070707);
      const __m256i mask = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
      auto to_0x10 = [&](__m256i bytes) {
        return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask), _mm256_set1_epi8(0x10));
      };
      lo = _mm256_or_si256(lo, to_0x10(_mm256_shuffle_epi8(both, pick_lo)));
      hi = _mm256_or_si256(hi, to_0x10(_mm256_shuffle_epi8(both, pick_hi)));
    }
  }
  GE_ALWAYS_INLINE static __m256 d8(const Block* const* rows, int64_t b) {
    if constexpr (kScale == ScaleType::kF32)
      return _mm256_setr_ps(rows[0][b].d, rows[2][b].d, rows[4][b].d, rows[6][b].d, rows[1][b].d, rows[3][b].d,
                            rows[5][b].d, rows[7][b].d);
    else return gather8_f16(rows, b, offsetof(Block, d));
  }
  GE_ALWAYS_INLINE static __m256 corr8(const Block* const* rows, int64_t b, __m256 dv) {
    if constexpr (kZero == ZeroPoint::kMin) return gather8_f16(rows, b, offsetof(Block, m));
    else return _mm256_mul_ps(dv, _mm256_set1_ps(kFive ? -16.0f : -8.0f));
  }
};
using RowPairQ4_0 = RowPairNibbles<BlockQ4_0, CodeBits::k4, ZeroPoint::kOffset>;
using RowPairQ4_1 = RowPairNibbles<BlockQ4_1, CodeBits::k4, ZeroPoint::kMin>;
using RowPairQ5_0 = RowPairNibbles<BlockQ5_0, CodeBits::k5, ZeroPoint::kOffset>;
using RowPairQ5_1 = RowPairNibbles<BlockQ5_1, CodeBits::k5, ZeroPoint::kMin>;
using RowPairQ4_0F = RowPairNibbles<BlockQ4_0F, CodeBits::k4, ZeroPoint::kOffset, ScaleType::kF32>;

// 8 int32 sums of one row pair against one token: [a partials x4 | b partials x4].
template <typename P>
inline __m256i pair_dot(__m256i lo, __m256i hi, __m256i xl, __m256i xh) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (P::kSigned) {
    const __m256i pl = _mm256_maddubs_epi16(_mm256_sign_epi8(lo, lo), _mm256_sign_epi8(xl, lo));
    const __m256i ph = _mm256_maddubs_epi16(_mm256_sign_epi8(hi, hi), _mm256_sign_epi8(xh, hi));
    return _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones));
  } else {
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh)), ones);
  }
}

// Rows r..r+7 x tokens t..t+RN-1.
template <typename P, int RN>
void tile8_pairs(const WeightMatrix& w, int64_t r, const BlockQ8A* x, int64_t x_stride, int64_t t, float* y,
                 int64_t ldy, const uint8_t* pf) {
  using Block = typename P::Block;
  const int64_t nb = w.cols / 32;
  const Block* rows[8];
  for (int i = 0; i < 8; ++i) rows[i] = reinterpret_cast<const Block*>(row_ptr(w, r + i));
  const BlockQ8A* xs[RN];
  for (int j = 0; j < RN; ++j) xs[j] = x + (t + j) * x_stride;
  __m256 acc[RN];
  for (int j = 0; j < RN; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    if (pf) prefetch_bytes(pf + b * 8 * int64_t{sizeof(Block)}, 8 * int64_t{sizeof(Block)});
    __m256i h01[RN];
    __m256i lo0, hi0, lo1, hi1;
    P::load_pair(rows[0][b], rows[1][b], lo0, hi0);
    P::load_pair(rows[2][b], rows[3][b], lo1, hi1);
    for (int j = 0; j < RN; ++j) {
      const __m256i xq = load_x(xs[j][b]);
      const __m256i xl = _mm256_permute4x64_epi64(xq, 0x44), xh = _mm256_permute4x64_epi64(xq, 0xEE);
      h01[j] = _mm256_hadd_epi32(pair_dot<P>(lo0, hi0, xl, xh), pair_dot<P>(lo1, hi1, xl, xh));
    }
    P::load_pair(rows[4][b], rows[5][b], lo0, hi0);
    P::load_pair(rows[6][b], rows[7][b], lo1, hi1);
    const __m256 dv = P::d8(rows, b), cv = P::corr8(rows, b, dv);
    for (int j = 0; j < RN; ++j) {
      const __m256i xq = load_x(xs[j][b]);
      const __m256i xl = _mm256_permute4x64_epi64(xq, 0x44), xh = _mm256_permute4x64_epi64(xq, 0xEE);
      const __m256i h23 = _mm256_hadd_epi32(pair_dot<P>(lo0, hi0, xl, xh), pair_dot<P>(lo1, hi1, xl, xh));
      const __m256 sums = _mm256_cvtepi32_ps(_mm256_hadd_epi32(h01[j], h23));
      acc[j] = _mm256_fmadd_ps(sums, _mm256_mul_ps(dv, _mm256_set1_ps(xs[j][b].d)), acc[j]);
      if constexpr (!P::kSigned) acc[j] = _mm256_fmadd_ps(cv, _mm256_set1_ps(xs[j][b].s), acc[j]);
    }
  }
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int j = 0; j < RN; ++j) _mm256_storeu_ps(y + (t + j) * ldy + r, _mm256_permutevar8x32_ps(acc[j], order));
}

// The decode tiles in one form for rows_blocks: Tile::run<RN>(w, r, x, x_stride, t, y, ldy, pf).
template <typename P>
struct PairTile {
  template <int RN>
  static void run(const WeightMatrix& w, int64_t r, const BlockQ8A* x, int64_t s, int64_t t, float* y, int64_t l,
                  const uint8_t* pf) {
    tile8_pairs<P, RN>(w, r, x, s, t, y, l, pf);
  }
};
template <typename T>
struct SubBlockTile {
  template <int RN>
  static void run(const WeightMatrix& w, int64_t r, const BlockQ8A* x, int64_t s, int64_t t, float* y, int64_t l,
                  const uint8_t* pf) {
    tile8_subblocks<T, RN>(w, r, 8, x, s, t, y, l, pf);
  }
};

// Rows [r0, r1) x tokens of a block type with sub-block traits T: prefill (kGemmMinTokens+ tokens)
// in the packed GEMM, decode in Tile's 8-row tiles, leftover rows in the sub-block tile. Every
// path sums in the order of block_traits_avx2.h, so a token's outputs do not depend on n.
template <typename T, typename Tile>
void rows_blocks(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  const auto* x = static_cast<const BlockQ8A*>(xv);
  const int64_t x_stride = w.cols / 32;
  const int64_t r8 = r0 + (r1 - r0) / 8 * 8;
  if (n >= kGemmMinTokens) {
    gemm_packed(w, r0, r8, xv, n, y, ldy);
  } else {
    // Tokens in chunks whose activations stay in L2 while every row tile passes over them.
    const int64_t chunk = max64(4, (256 << 10) / (x_stride * static_cast<int64_t>(sizeof(BlockQ8A))));
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
      const int64_t t1 = min64(n, t0 + chunk);
      for (int64_t r = r0; r < r8; r += 8) {
        const uint8_t* next = r + 16 <= r8 ? row_ptr(w, r + 8) : nullptr;
        int64_t t = t0;
        for (; t + 4 <= t1; t += 4, next = nullptr) Tile::template run<4>(w, r, x, x_stride, t, y, ldy, next);
        switch (t1 - t) {
          case 3: Tile::template run<3>(w, r, x, x_stride, t, y, ldy, next); break;
          case 2: Tile::template run<2>(w, r, x, x_stride, t, y, ldy, next); break;
          case 1: Tile::template run<1>(w, r, x, x_stride, t, y, ldy, next); break;
          default: break;
        }
      }
    }
  }
  if (r8 == r1) return;
  const int valid = static_cast<int>(r1 - r8);
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) tile8_subblocks<T, 4>(w, r8, valid, x, x_stride, t, y, ldy, nullptr);
  for (; t < n; ++t) tile8_subblocks<T, 1>(w, r8, valid, x, x_stride, t, y, ldy, nullptr);
}

inline __m256 load8_f32(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
inline __m256 load8_f16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8_bf16(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// Float rows (F32/F16/BF16) against float activations, RM rows x RN tokens per tile: every
// weight vector loaded (and widened) once serves RN tokens, every activation vector RM rows, so
// prefill does 8 FMAs per 6 loads instead of one per two. pf: the next tile's rows (decode), as
// for the block kernels.
template <int kBytes, __m256 (*load8)(const uint8_t*), int RM, int RN>
GE_ALWAYS_INLINE void float_tile(const WeightMatrix& w, int64_t r, const float* x, int64_t t, float* y, int64_t ldy,
                                 const uint8_t* pf) {
  const uint8_t* rows[RM];
  for (int i = 0; i < RM; ++i) rows[i] = row_ptr(w, r + i);
  const float* xs[RN];
  for (int j = 0; j < RN; ++j) xs[j] = x + (t + j) * w.cols;
  __m256 acc[RM][RN];
#pragma GCC unroll 4
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < RN; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t c = 0; c < w.cols; c += 8) {
    if (pf && (c * kBytes) % 64 == 0)
      for (int i = 0; i < RM; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(pf + i * w.row_bytes + c * kBytes), _MM_HINT_T0);
    __m256 wv[RM];
#pragma GCC unroll 4
    for (int i = 0; i < RM; ++i) wv[i] = load8(rows[i] + kBytes * c);
#pragma GCC unroll 4
    for (int j = 0; j < RN; ++j) {
      const __m256 xv = _mm256_loadu_ps(xs[j] + c);
#pragma GCC unroll 4
      for (int i = 0; i < RM; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < RM; ++i)
    for (int j = 0; j < RN; ++j) y[(t + j) * ldy + r + i] = hsum(acc[i][j]);
}

template <int kBytes, __m256 (*load8)(const uint8_t*), float (*load1)(const uint8_t*)>
void rows_float(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  const auto* x = static_cast<const float*>(xv);
  if (w.cols % 8 == 0 && n >= kGemmMinTokens) {  // prefill: the float GEMM takes the 8-row tiles
    const int64_t r8 = r0 + (r1 - r0) / 8 * 8;
    gemm_float(w, r0, r8, x, n, y, ldy);
    for (int64_t r = r8; r < r1; ++r)
      for (int64_t t = 0; t < n; ++t) float_tile<kBytes, load8, 1, 1>(w, r, x, t, y, ldy, nullptr);
    return;
  }
  if (w.cols % 8 == 0) {
    // Tokens in chunks whose activations stay in L2 while the row tiles pass over them.
    const int64_t chunk = max64(2, (256 << 10) / (w.cols * 4));
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
      const int64_t t1 = min64(n, t0 + chunk);
      int64_t r = r0;
      for (; r + 4 <= r1; r += 4) {
        const uint8_t* next = r + 8 <= r1 ? row_ptr(w, r + 4) : nullptr;
        int64_t t = t0;
        for (; t + 2 <= t1; t += 2, next = nullptr) float_tile<kBytes, load8, 4, 2>(w, r, x, t, y, ldy, next);
        if (t < t1) float_tile<kBytes, load8, 4, 1>(w, r, x, t, y, ldy, next);
      }
      for (; r < r1; ++r)
        for (int64_t t = t0; t < t1; ++t) float_tile<kBytes, load8, 1, 1>(w, r, x, t, y, ldy, nullptr);
    }
    return;
  }
  const int64_t c8 = w.cols / 8 * 8;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = row_ptr(w, r);
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      __m256 a0 = _mm256_setzero_ps();
      int64_t c = 0;
      for (; c < c8; c += 8) a0 = _mm256_fmadd_ps(load8(row + kBytes * c), _mm256_loadu_ps(xt + c), a0);
      float s = hsum(a0);
      for (; c < w.cols; ++c) s += load1(row + kBytes * c) * xt[c];
      y[t * ldy + r] = s;
    }
  }
}

float load1_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
float load1_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
float load1_bf16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void quantize_q8a(const float* x, BlockQ8A* y, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.0f;
    const __m256 inv = _mm256_set1_ps(d > 0 ? 1.0f / d : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] =
          _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i sum32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    // Pack 32 int32 -> 32 int8 in order (packs interleave 128-bit lanes; permute restores order).
    __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
    __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), p);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum32), _mm256_extracti128_si256(sum32, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    y[b].d = d;
    y[b].s = d * static_cast<float>(_mm_cvtsi128_si32(s));
  }
}

void rows_dequantized(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  const auto* x = static_cast<const float*>(xv);
  thread_local ScratchBuffer row_buf;
  float* row = row_buf.get<float>(static_cast<size_t>(w.cols));
  const int64_t c8 = w.cols / 8 * 8;
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_row(w.type, row_ptr(w, r), row, w.cols);
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      __m256 acc = _mm256_setzero_ps();
      int64_t c = 0;
      for (; c < c8; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(row + c), _mm256_loadu_ps(xt + c), acc);
      float s = hsum(acc);
      for (; c < w.cols; ++c) s += row[c] * xt[c];
      y[t * ldy + r] = s;
    }
  }
}

IsaKernels make_avx2() {
  IsaKernels k{};
  k.name = "avx2";
  k.rows[static_cast<int>(DType::F32)] = rows_float<4, load8_f32, load1_f32>;
  k.rows[static_cast<int>(DType::F16)] = rows_float<2, load8_f16, load1_f16>;
  k.rows[static_cast<int>(DType::BF16)] = rows_float<2, load8_bf16, load1_bf16>;
  k.rows[static_cast<int>(DType::Q8_0)] = rows_blocks<SubBlockQ8_0, PairTile<RowPairQ8_0>>;
  k.rows[static_cast<int>(DType::Q4_0)] = rows_blocks<SubBlockQ4_0, PairTile<RowPairQ4_0>>;
  k.rows[static_cast<int>(DType::Q4_1)] = rows_blocks<SubBlockQ4_1, PairTile<RowPairQ4_1>>;
  k.rows[static_cast<int>(DType::Q4_0F)] = rows_blocks<SubBlockQ4_0F, PairTile<RowPairQ4_0F>>;
  k.rows[static_cast<int>(DType::I8)] = rows_blocks<SubBlockI8, PairTile<RowPairI8>>;
  k.rows[static_cast<int>(DType::Q5_0)] = rows_blocks<SubBlockQ5_0, PairTile<RowPairQ5_0>>;
  k.rows[static_cast<int>(DType::Q5_1)] = rows_blocks<SubBlockQ5_1, PairTile<RowPairQ5_1>>;
  k.rows[static_cast<int>(DType::Q4_K)] = rows_blocks<SubBlockQ4_K, SubBlockTile<SubBlockQ4_K>>;
  k.rows[static_cast<int>(DType::Q5_K)] = rows_blocks<SubBlockQ5_K, SubBlockTile<SubBlockQ5_K>>;
  k.rows[static_cast<int>(DType::Q6_K)] = rows_blocks<SubBlockQ6_K, SubBlockTile<SubBlockQ6_K>>;
  k.quantize_q8a = quantize_q8a;
  k.rows_dequantized = rows_dequantized;
  k.attention = attention_avx2;
  k.gelu_mul = gelu_mul_avx2;
  k.gelu = gelu_avx2;
  k.exp_max_sum = exp_max_sum_avx2;
  return k;
}

}  // namespace

const IsaKernels* isa_avx2() {
  static const IsaKernels k = make_avx2();
  return &k;
}

}  // namespace gemma::cpu

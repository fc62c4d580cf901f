// AVX-512 (F, BW, VL, DQ, VNNI; BF16 where present) kernels: compiled with those flags and chosen
// at run time on CPUs that have them (Intel Ice Lake and later, AMD Zen 4 and later). The table
// starts as the AVX2 one; this file replaces
//   - decode (one token): every block type (the 32-element types and the K-quants) 16 rows per
//     vector, in the AVX2 kernels' summation order (block_traits_avx2.h), and the float types one
//     row at a time; both with the next tile prefetched;
//   - prefill (kGemmMinTokens+ tokens): a VNNI GEMM for the block types (rows packed 16 at a time
//     by the AVX2 side) and, on AVX512_BF16 CPUs, a vdpbf16ps GEMM for BF16;
// and hands 2-7 tokens (small batches) back to the AVX2 kernels.
//
// Why it is faster than the AVX2 kernels. vpdpbusd multiplies 64 unsigned bytes by 64 signed
// bytes and adds each group of four products into an int32 lane: one instruction for two blocks
// where AVX2 needs maddubs + madd per block (plus two sign instructions for Q8_0). Every code is
// made unsigned: Q8_0 and int8 by flipping the top bit (w + 128), whose offset comes off the
// integer dot exactly; Q4_0/Q5_0 are stored with an offset already (w = q - 8, q - 16), which
// returns once per block as the corr term of the block sum.
//
// One ODR rule matters here: this file is built with AVX-512 enabled, so it must not define any
// inline function or template instance with external linkage that other files also instantiate
// (the linker keeps one copy, which could then be this file's AVX-512 one on an AVX2-only CPU).
// Everything below is in an anonymous namespace and uses no standard-library templates.
// GCC 12's AVX-512 headers make "undefined" vectors by self-assignment, which its own
// -Wmaybe-uninitialized then reports in every intrinsic that takes one (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/avx512_util.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/gemm_avx2.h"
#include "kernels/cpu/isa.h"
#include "kernels/quant_blocks.h"

namespace gemma::cpu {

using namespace quant;

namespace {

// Decode prefetches the next tile's weights into L2 (T1), not L1 (T0): T0 holds a line-fill
// buffer per line until it comes from DRAM, and their number caps one core's stream; the L1
// prefetcher then brings each line from L2 in time (measurements: docs/benchmarks.md,
// "Measurements cited from kernel comments").
#define GE512_PREFETCH_HINT _MM_HINT_T1

// --- The batch-invariant block sum (block_traits_avx2.h), 16 rows per vector. ----------------
// Every block kernel here computes, per row and per 32-element sub-block, the exact integer dot
// I and then acc = fma(float(I), d * d_x, acc) (+ fma(corr, s_x, acc) for unsigned codes), with
// one lane per weight row: the AVX2 kernels' operations on the same exact inputs, so the
// one-token kernel, the VNNI GEMM and the AVX2 kernels that take 2-7 tokens and leftover rows
// all give a token bit-identical outputs. Codes go to vpdpbusd unsigned: Q8_0 and int8 biased by
// 128 and Q6_K stored as q + 32, whose offsets come off the integer dot exactly (128 or 32 times
// the activation codes' sum, code_offsets below).

// Per activation block b, the sums of its int8 codes over elements 0-15 (lo) and 16-31 (hi).
GE512_INLINE void code_sums(const BlockQ8A* x, int64_t nb, int32_t* lo, int32_t* hi) {
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sl = 0, sh = 0;
    for (int e = 0; e < 16; ++e) sl += x[b].qs[e], sh += x[b].qs[16 + e];
    lo[b] = sl;
    hi[b] = sh;
  }
}

// How the codes given to vpdpbusd relate to the weights (the VNNI GEMM's VnniBlock16 and the
// one-token kernels' traits).
enum class PackedCodes {
  kUnsigned,   // the codes themselves, with a corr term
  kBiased128,  // Q8_0, int8: w + 128
  kQ6K,        // Q6_K: q + 32, two integer scales per block
};

// What the biased codes' dots take off, per activation block: kBiased128: 128 * Σ q_x in lo;
// kQ6K: 32 * Σ q_x over elements 0-15 in lo, over 16-31 in hi.
template <PackedCodes kCodes>
void code_offsets(const BlockQ8A* x, int64_t nb, int32_t* lo, int32_t* hi) {
  code_sums(x, nb, lo, hi);
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (kCodes == PackedCodes::kBiased128) {
      lo[b] = 128 * (lo[b] + hi[b]);
    } else {
      lo[b] *= 32;
      hi[b] *= 32;
    }
  }
}

// v[i]: row i's 16 int32 partial sums of a 64-element pair (128-bit quarter L: 4 partials of
// elements 16L..16L+15). q[L] lane i = row i's sum over quarter L.
GE512_INLINE void reduce_quarters(const __m512i v[16], __m512i q[4]) {
  __m512i t[8], u[4];
#pragma GCC unroll 16
  for (int k = 0; k < 8; ++k)
    t[k] =
        _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
#pragma GCC unroll 16
  for (int k = 0; k < 4; ++k)  // quarter L of u[k]: rows 4k..4k+3
    u[k] =
        _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * k], t[2 * k + 1]), _mm512_unpackhi_epi64(t[2 * k], t[2 * k + 1]));
  const __m512i a_lo = _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512i a_hi = _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2));
  const __m512i b_lo = _mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512i b_hi = _mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2));
  q[0] = _mm512_shuffle_i32x4(a_lo, b_lo, _MM_SHUFFLE(2, 0, 2, 0));
  q[1] = _mm512_shuffle_i32x4(a_lo, b_lo, _MM_SHUFFLE(3, 1, 3, 1));
  q[2] = _mm512_shuffle_i32x4(a_hi, b_hi, _MM_SHUFFLE(2, 0, 2, 0));
  q[3] = _mm512_shuffle_i32x4(a_hi, b_hi, _MM_SHUFFLE(3, 1, 3, 1));
}

// The same reduced to halves: a lane i = row i's sum over elements 0-31, b over 32-63.
GE512_INLINE void reduce_halves(const __m512i v[16], __m512i& a, __m512i& b) {
  __m512i t[8], u[4];
#pragma GCC unroll 16
  for (int k = 0; k < 8; ++k)
    t[k] =
        _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
#pragma GCC unroll 16
  for (int k = 0; k < 4; ++k)
    u[k] =
        _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * k], t[2 * k + 1]), _mm512_unpackhi_epi64(t[2 * k], t[2 * k + 1]));
  // [u0 first half, u0 second half, u1 first, u1 second] and the same for u2, u3.
  const __m512i w01 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_i32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i w23 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_i32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
  a = _mm512_shuffle_i32x4(w01, w23, _MM_SHUFFLE(2, 0, 2, 0));
  b = _mm512_shuffle_i32x4(w01, w23, _MM_SHUFFLE(3, 1, 3, 1));
}

// The f16 at byte p + idx[i] as lane i (gather_f16_high: the f16 at p + 2 + idx[i], read as
// the high half of the dword at p + idx[i], for an f16 at the end of a block).
GE512_INLINE __m512 gather_f16(const uint8_t* p, __m512i idx) {
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(idx, p, 1)));
}
GE512_INLINE __m512 gather_f16_high(const uint8_t* p, __m512i idx) {
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_i32gather_epi32(idx, p, 1), 16)));
}

// Rows r..r+15 of w, rows past `valid` repeating the last valid one: their addresses and, per
// lane, their byte offsets from the first (the gathers' indexes).
template <typename Block>
GE512_INLINE __m512i tile_rows(const WeightMatrix& w, int64_t r, int valid, const Block* rows[16]) {
  alignas(64) int32_t off[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    const int ri = i < valid ? i : valid - 1;
    rows[i] = reinterpret_cast<const Block*>(row_ptr(w, r + ri));
    off[i] = static_cast<int32_t>(ri * static_cast<int64_t>(w.row_bytes));
  }
  return _mm512_load_si512(off);
}

GE512_INLINE void store_rows16(float* y, __m512 v, int valid) {
  _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << valid) - 1), v);
}

GE512_INLINE void prefetch_l2(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), GE512_PREFETCH_HINT);
}

// --- Block-pair traits (32-element block types): two blocks' codes as 64 unsigned bytes. ------
// codes2(b): blocks b[0] (bytes 0-31) and b[1] (32-63), element order; codes1: one block in the
// low half, zeros above. kBiased: the codes are the signed weights + 128. d16 / corr16: the
// block's factors of the block sum for 16 rows (p: the block in the first row, idx: tile_rows).

// Q8_0 (ScaleType::kF16 d) and int8 rows (ScaleType::kNone: the backend applies the row scale
// after the dot).
template <typename B, ScaleType kScale>
struct BlockPairSigned {
  using Block = B;
  static constexpr bool kBiased = true;
  static constexpr bool kCorr = false;
  GE512_INLINE static __m512i codes2(const Block* b) {
    const __m512i q =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
    return _mm512_xor_si512(q, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  GE512_INLINE static __m512i codes1(const Block* b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    return _mm512_zextsi256_si512(_mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))));
  }
  GE512_INLINE static __m512 d16(const uint8_t* p, __m512i idx) {
    if constexpr (kScale == ScaleType::kF16) return gather_f16(p + offsetof(Block, d), idx);
    else return _mm512_set1_ps(1.0f);
  }
  GE512_INLINE static __m512 corr16(const uint8_t*, __m512i, __m512) { return _mm512_setzero_ps(); }
};
struct BlockI8 {
  int8_t qs[32];
};
using BlockPairQ8_0 = BlockPairSigned<BlockQ8_0, ScaleType::kF16>;
using BlockPairI8 = BlockPairSigned<BlockI8, ScaleType::kNone>;

// Nibble types: 16 bytes of packed codes per block, element e < 16 in the low nibble of byte e,
// element e + 16 in its high nibble; Q5 types add a fifth bit per element from qh.
template <typename B, CodeBits kBits, ZeroPoint kZero, ScaleType kScale = ScaleType::kF16>
struct BlockPairNibbles {
  using Block = B;
  static constexpr bool kFive = kBits == CodeBits::k5;
  static constexpr bool kBiased = false;
  static constexpr bool kCorr = true;
  // 128-bit lanes [a.qs, a.qs, b.qs, b.qs], the odd lanes shifted down by 4, masked to nibbles.
  GE512_INLINE static __m512i spread(__m512i ab) {
    const __m512i v = _mm512_shuffle_i64x2(ab, ab, _MM_SHUFFLE(1, 1, 0, 0));
    const __m512i sh = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(sh, _mm512_set1_epi8(0x0F));
  }
  GE512_INLINE static __m512i codes2(const Block* b) {
    const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    const __m128i qb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs));
    __m512i q = spread(_mm512_castsi256_si512(_mm256_set_m128i(qb, qa)));
    if constexpr (kFive) {
      uint32_t ha, hb;
      std::memcpy(&ha, b[0].qh, 4);
      std::memcpy(&hb, b[1].qh, 4);
      q = _mm512_mask_add_epi8(q, _cvtu64_mask64(ha | uint64_t{hb} << 32), q, _mm512_set1_epi8(0x10));
    }
    return q;
  }
  GE512_INLINE static __m512i codes1(const Block* b) {
    const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    __m512i q = spread(_mm512_castsi128_si512(qa));
    q = _mm512_maskz_mov_epi8(0xFFFFFFFFull, q);  // zero the second block's half
    if constexpr (kFive) {
      uint32_t ha;
      std::memcpy(&ha, b[0].qh, 4);
      q = _mm512_mask_add_epi8(q, _cvtu64_mask64(ha), q, _mm512_set1_epi8(0x10));
    }
    return q;
  }
  GE512_INLINE static __m512 d16(const uint8_t* p, __m512i idx) {
    if constexpr (kScale == ScaleType::kF32) return _mm512_i32gather_ps(idx, p + offsetof(Block, d), 1);
    else return gather_f16(p + offsetof(Block, d), idx);
  }
  GE512_INLINE static __m512 corr16(const uint8_t* p, __m512i idx, __m512 d) {
    if constexpr (kZero == ZeroPoint::kMin) return gather_f16(p + offsetof(Block, m), idx);
    else return _mm512_mul_ps(d, _mm512_set1_ps(kFive ? -16.0f : -8.0f));
  }
};
using BlockPairQ4_0 = BlockPairNibbles<BlockQ4_0, CodeBits::k4, ZeroPoint::kOffset>;
using BlockPairQ4_1 = BlockPairNibbles<BlockQ4_1, CodeBits::k4, ZeroPoint::kMin>;
using BlockPairQ5_0 = BlockPairNibbles<BlockQ5_0, CodeBits::k5, ZeroPoint::kOffset>;
using BlockPairQ5_1 = BlockPairNibbles<BlockQ5_1, CodeBits::k5, ZeroPoint::kMin>;
using BlockPairQ4_0F = BlockPairNibbles<BlockQ4_0F, CodeBits::k4, ZeroPoint::kOffset, ScaleType::kF32>;

// Block b's integer dots of 16 rows (lanes) into the block sum.
template <typename P>
GE512_INLINE __m512 block_sum_step(__m512i dot, const uint8_t* p, __m512i idx, const BlockQ8A& xb, int32_t xsum,
                                   __m512 acc) {
  if constexpr (P::kBiased) dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(xsum));
  const __m512 d = P::d16(p, idx);
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc);
  if constexpr (P::kCorr) acc = _mm512_fmadd_ps(P::corr16(p, idx, d), _mm512_set1_ps(xb.s), acc);
  return acc;
}

// Rows r..r+15 (the first `valid`) against one token, two blocks per step: each row's pair
// through one vpdpbusd, the 16 rows' results reduced to one vector per block (reduce_halves),
// then the block sum on all 16 rows. pf: the next tile's rows (contiguous, 16 rows), prefetched
// in order a share per step (decode streams weights from DRAM and the hardware prefetchers alone
// keep too few lines in flight).
template <typename P>
void tile16_pairs(const WeightMatrix& w, int64_t r, int valid, const BlockQ8A* x, const int32_t* xsum, float* y,
                  const uint8_t* pf) {
  using Block = typename P::Block;
  const int64_t nb = w.cols / 32;
  const Block* rows[16];
  const __m512i idx = tile_rows(w, r, valid, rows);
  const auto* base = reinterpret_cast<const uint8_t*>(rows[0]);
  constexpr int64_t kStepBytes = 16 * 2 * int64_t{sizeof(Block)};
  __m512 acc = _mm512_setzero_ps();
  __m512i v[16];
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    if (pf) prefetch_l2(pf + b / 2 * kStepBytes, kStepBytes);
    const __m512i xq =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs))),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b + 1].qs)), 1);
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), P::codes2(rows[i] + b), xq);
    __m512i d0, d1;
    reduce_halves(v, d0, d1);
    const uint8_t* p = base + b * int64_t{sizeof(Block)};
    acc = block_sum_step<P>(d0, p, idx, x[b], xsum[b], acc);
    acc = block_sum_step<P>(d1, p + sizeof(Block), idx, x[b + 1], xsum[b + 1], acc);
  }
  if (b < nb) {
    if (pf) prefetch_l2(pf + b / 2 * kStepBytes, kStepBytes / 2);
    const __m512i xq = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs)));
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), P::codes1(rows[i] + b), xq);
    __m512i d0, d1;
    reduce_halves(v, d0, d1);
    acc = block_sum_step<P>(d0, base + b * int64_t{sizeof(Block)}, idx, x[b], xsum[b], acc);
  }
  store_rows16(y + r, acc, valid);
}

// --- K-quants: super-blocks of 256 elements, four pairs of 32-element sub-blocks each. ---------
// Pair p of a super-block is elements 64p..64p+63: one vpdpbusd per row against the activation
// pair, reduced over the 16 rows as for the block pairs. The sub-block scales (and Q4_K/Q5_K's
// mins) of the 16 rows are transposed once per super-block, so lane i holds row i's.

// Q4_K / Q5_K: weight d * sc[s] * q - dmin * m[s] per sub-block s (6-bit sc and m).
template <typename B, CodeBits kBits>
struct SuperBlockKQuant45 {
  using Block = B;
  static constexpr bool kFive = kBits == CodeBits::k5;
  static constexpr bool kTwoScales = false;
  // The twelve 6-bit-packed bytes -> 16 int32 lanes: the 8 scales, then the 8 mins. The same
  // steps as the scalar unpacking (quant::k_scale_min), four sub-blocks per 32-bit operation.
  GE512_INLINE static __m512i scale_ints(const Block& b) {
    uint32_t u[4];
    std::memcpy(u, b.scales, 12);
    constexpr uint32_t kM1 = 0x3f3f3f3f, kM2 = 0x0f0f0f0f, kM3 = 0x03030303;
    u[3] = ((u[2] >> 4) & kM2) | (((u[1] >> 6) & kM3) << 4);
    const uint32_t mins_lo = u[1] & kM1;
    u[1] = (u[2] & kM2) | (((u[0] >> 6) & kM3) << 4);
    u[0] &= kM1;
    u[2] = mins_lo;
    return _mm512_cvtepu8_epi32(
        _mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]), static_cast<int>(u[1]), static_cast<int>(u[0])));
  }
  template <int p>
  GE512_INLINE static __m512i codes(const Block& b) {
    const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * p)));
    __m512i q =
        _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)), _mm512_set1_epi8(0x0F));
    if constexpr (kFive) {  // bit 2p (low half) or 2p + 1 (high half) of each qh byte -> 0x10
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh)));
      constexpr long long lo = (64 + 4 - 2 * p) % 64, hi = (64 + 4 - 2 * p - 1) % 64;
      const __m512i bit = _mm512_rolv_epi64(qh, _mm512_setr_epi64(lo, lo, lo, lo, hi, hi, hi, hi));
      q = _mm512_or_si512(q, _mm512_and_si512(bit, _mm512_set1_epi8(0x10)));
    }
    return q;
  }
};
using SuperBlockQ4_K = SuperBlockKQuant45<BlockQ4_K, CodeBits::k4>;
using SuperBlockQ5_K = SuperBlockKQuant45<BlockQ5_K, CodeBits::k5>;

// Q6_K: code q in 0..63, weight d * scales[e / 16] * (q - 32); the 32 comes off the integer dot.
struct SuperBlockQ6_K {
  using Block = BlockQ6_K;
  static constexpr bool kTwoScales = true;
  GE512_INLINE static __m512i scale_ints(const Block& b) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  }
  // Pair p: half h = p / 2 (128 elements: ql[64h..], qh[32h..]); p even: codes 0-63 of the half
  // (ql low nibbles, qh bits 0-1 and 2-3), p odd: 64-127 (ql high nibbles, qh bits 4-5 and 6-7).
  template <int p>
  GE512_INLINE static __m512i codes(const Block& b) {
    constexpr int h = p / 2;
    const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    if constexpr (p % 2 == 0) {
      const __m512i hi = _mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2));
      return _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(hi, m30));
    } else {
      const __m512i hi = _mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2));
      return _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi64(ql, 4), m4), _mm512_and_si512(hi, m30));
    }
  }
};

// Pair p of super-block b of 16 rows into the block sum. sc[k]: lane i = row i's k-th scale
// value as a float (Q4_K/Q5_K: 8 scales, then 8 mins; Q6_K: 16 scales); d, dmin: the rows'.
template <typename K, int p>
GE512_INLINE __m512 k_pair(const typename K::Block* const* rows, int64_t b, const BlockQ8A* x, const int32_t* xlo,
                           const int32_t* xhi, const __m512* sc, __m512 d, __m512 dmin, __m512 acc) {
  const int64_t xb = 8 * b + 2 * p;
  const __m512i xq =
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[xb].qs))),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[xb + 1].qs)), 1);
  __m512i v[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), K::template codes<p>(rows[i][b]), xq);
  if constexpr (K::kTwoScales) {
    __m512i q[4];
    reduce_quarters(v, q);
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const int s = 2 * p + h;
      const __m512i lo = _mm512_sub_epi32(q[2 * h], _mm512_set1_epi32(xlo[xb + h]));
      const __m512i hi = _mm512_sub_epi32(q[2 * h + 1], _mm512_set1_epi32(xhi[xb + h]));
      const __m512 dot =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), sc[2 * s], _mm512_mul_ps(_mm512_cvtepi32_ps(hi), sc[2 * s + 1]));
      acc = _mm512_fmadd_ps(dot, _mm512_mul_ps(d, _mm512_set1_ps(x[xb + h].d)), acc);
    }
  } else {
    __m512i dots[2];
    reduce_halves(v, dots[0], dots[1]);
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const int s = 2 * p + h;
      const __m512 ds = _mm512_mul_ps(d, sc[s]),
                   corr = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin, sc[8 + s]));
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[h]), _mm512_mul_ps(ds, _mm512_set1_ps(x[xb + h].d)), acc);
      acc = _mm512_fmadd_ps(corr, _mm512_set1_ps(x[xb + h].s), acc);
    }
  }
  return acc;
}

template <typename K>
void tile16_kquant(const WeightMatrix& w, int64_t r, int valid, const BlockQ8A* x, const int32_t* xlo,
                   const int32_t* xhi, float* y, const uint8_t* pf) {
  using Block = typename K::Block;
  const Block* rows[16];
  const __m512i idx = tile_rows(w, r, valid, rows);
  const auto* base = reinterpret_cast<const uint8_t*>(rows[0]);
  constexpr int64_t kStepBytes = 16 * int64_t{sizeof(Block)};
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.cols / 256; ++b) {
    if (pf) prefetch_l2(pf + b * kStepBytes, kStepBytes);
    __m512i raw[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) raw[i] = K::scale_ints(rows[i][b]);
    transpose16x16(raw, t);
    __m512 sc[16];
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) sc[k] = _mm512_cvtepi32_ps(t[k]);
    const uint8_t* p = base + b * int64_t{sizeof(Block)};
    __m512 d, dmin = _mm512_setzero_ps();
    if constexpr (K::kTwoScales) {
      d = gather_f16_high(p + offsetof(Block, d) - 2, idx);  // the dword ending with d, inside the block
    } else {
      d = gather_f16(p + offsetof(Block, d), idx);  // d, then dmin
      dmin = gather_f16_high(p + offsetof(Block, d), idx);
    }
    acc = k_pair<K, 0>(rows, b, x, xlo, xhi, sc, d, dmin, acc);
    acc = k_pair<K, 1>(rows, b, x, xlo, xhi, sc, d, dmin, acc);
    acc = k_pair<K, 2>(rows, b, x, xlo, xhi, sc, d, dmin, acc);
    acc = k_pair<K, 3>(rows, b, x, xlo, xhi, sc, d, dmin, acc);
  }
  store_rows16(y + r, acc, valid);
}

// Rows [r0, r1) x one token in 16-row tiles (the last one partial), each prefetching the next.
// tile(r, valid, pf).
template <typename Tile>
GE512_INLINE void rows_by_tiles16(const WeightMatrix& w, int64_t r0, int64_t r1, const Tile& tile) {
  for (int64_t r = r0; r < r1; r += 16) {
    const int valid = r1 - r < 16 ? static_cast<int>(r1 - r) : 16;
    tile(r, valid, r + 16 < r1 ? row_ptr(w, r + 16) : nullptr);
  }
}

// One token: the activation codes' per-block sums (for the biased codes), then the tiles.
template <typename P>
void rows_one_token_pairs(const WeightMatrix& w, int64_t r0, int64_t r1, const BlockQ8A* x, float* y) {
  const int64_t nb = w.cols / 32;
  thread_local ActivationBuffer buf;
  auto* lo = reinterpret_cast<int32_t*>(buf.get(static_cast<size_t>(2 * nb) * sizeof(int32_t)));
  int32_t* sum = lo + nb;
  if constexpr (P::kBiased) code_offsets<PackedCodes::kBiased128>(x, nb, sum, lo);
  rows_by_tiles16(w, r0, r1,
                  [&](int64_t r, int valid, const uint8_t* pf) { tile16_pairs<P>(w, r, valid, x, sum, y, pf); });
}

template <typename K>
void rows_one_token_kquant(const WeightMatrix& w, int64_t r0, int64_t r1, const BlockQ8A* x, float* y) {
  const int64_t nb = w.cols / 32;
  thread_local ActivationBuffer buf;
  auto* lo = reinterpret_cast<int32_t*>(buf.get(static_cast<size_t>(2 * nb) * sizeof(int32_t)));
  int32_t* hi = lo + nb;
  if constexpr (K::kTwoScales) code_offsets<PackedCodes::kQ6K>(x, nb, lo, hi);
  rows_by_tiles16(w, r0, r1,
                  [&](int64_t r, int valid, const uint8_t* pf) { tile16_kquant<K>(w, r, valid, x, lo, hi, y, pf); });
}

// The 8 rows' totals from their 16-lane partial sums, in row order (the float one-token kernel).
GE512_INLINE __m256 sum8x16(const __m512 v[8]) {
  __m512 t[4];
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i)  // 128-bit quarters [v2i q0+q2, v2i q1+q3, v2i+1 q0+q2, v2i+1 q1+q3]
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Quarters: one row each, rows 0-3 in u0 and 4-7 in u1.
  const __m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 u1 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(3, 1, 3, 1)));
  // Within each quarter q: lane 0 = row q's total, lane 1 = row 4 + q's.
  const __m512 a = _mm512_add_ps(_mm512_unpacklo_ps(u0, u1), _mm512_unpackhi_ps(u0, u1));
  const __m512 s = _mm512_add_ps(a, _mm512_shuffle_ps(a, a, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_castps512_ps256(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0), s));
}

// Rows [r0, r1) x one token; rows in tiles of 8, each tile prefetching the next one's bytes.
// dot(row, pf) -> the row's 16 partial sums, prefetching pf's same bytes (nullptr: none).
template <typename Dot>
GE512_INLINE void rows_by_tiles(const WeightMatrix& w, int64_t r0, int64_t r1, float* y, const Dot& dot) {
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    const uint8_t* next = r + 16 <= r1 ? row_ptr(w, r + 8) : nullptr;
    __m512 acc[8];
#pragma GCC unroll 16
    for (int i = 0; i < 8; ++i)
      acc[i] = dot(row_ptr(w, r + i), next ? next + i * static_cast<int64_t>(w.row_bytes) : nullptr);
    _mm256_storeu_ps(y + r, sum8x16(acc));
  }
  for (; r < r1; ++r) y[r] = _mm512_reduce_add_ps(dot(row_ptr(w, r), nullptr));
}

// --- Prefill: the VNNI GEMM for the block types. ------------------------------------------------
// Rows are packed 16 at a time by the AVX2 side (avx2::pack16_vnni): per 32-element block, eight
// registers whose dword lane i holds four codes of row i. A token's four activation bytes are
// broadcast to all lanes, so one vpdpbusd adds four products to each of 16 rows' sums: 8 per
// block and token, with no horizontal reductions (the AVX2 GEMM needs 8 broadcasts, 8 maddubs,
// int16 adds and a madd for 8 rows). 16 rows x 8 tokens keep 8 accumulators and the block's 8
// code registers in the 32 zmm registers. The sums are the block sum of the other kernels.
using avx2::VnniBlock16;

template <PackedCodes kCodes, int RN>
GE512_INLINE void vnni_tile(const VnniBlock16* p, int64_t nb, const BlockQ8A* x, int64_t x_stride, const int32_t* xlo,
                            const int32_t* xhi, float* y, int64_t ldy) {
  __m512 acc[RN];
#pragma GCC unroll 8
  for (int j = 0; j < RN; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const VnniBlock16& pb = p[b];
    __m512i q[8];
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) q[g] = _mm512_loadu_si512(pb.q[g]);
    const __m512 d = _mm512_loadu_ps(pb.d);
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      const BlockQ8A& xb = x[j * x_stride + b];
      int32_t x4[8];
      std::memcpy(x4, xb.qs, 32);
      __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        lo = _mm512_dpbusd_epi32(lo, q[g], _mm512_set1_epi32(x4[g]));
        hi = _mm512_dpbusd_epi32(hi, q[g + 4], _mm512_set1_epi32(x4[g + 4]));
      }
      const __m512 dx = _mm512_mul_ps(d, _mm512_set1_ps(xb.d));
      if constexpr (kCodes == PackedCodes::kQ6K) {
        lo = _mm512_sub_epi32(lo, _mm512_set1_epi32(xlo[j * nb + b]));
        hi = _mm512_sub_epi32(hi, _mm512_set1_epi32(xhi[j * nb + b]));
        const __m512 dot = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), _mm512_loadu_ps(pb.sc_lo),
                                           _mm512_mul_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(pb.sc_hi)));
        acc[j] = _mm512_fmadd_ps(dot, dx, acc[j]);
      } else if constexpr (kCodes == PackedCodes::kBiased128) {
        const __m512i dot = _mm512_sub_epi32(_mm512_add_epi32(lo, hi), _mm512_set1_epi32(xlo[j * nb + b]));
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), dx, acc[j]);
      } else {
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi)), dx, acc[j]);
        acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(pb.corr), _mm512_set1_ps(xb.s), acc[j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < RN; ++j) _mm512_storeu_ps(y + j * ldy, acc[j]);
}

template <PackedCodes kCodes, int RN>
void vnni_tile_call(const VnniBlock16* p, int64_t nb, const BlockQ8A* x, int64_t x_stride, const int32_t* xlo,
                    const int32_t* xhi, float* y, int64_t ldy) {
  vnni_tile<kCodes, RN>(p, nb, x, x_stride, xlo, xhi, y, ldy);
}

// Rows [r0, r0 + 16k) x tokens [0, n): tokens in chunks whose activations stay in L2 while every
// 16-row tile of the range (packed once per chunk) passes over them. The biased codes need each
// activation block's code offsets (code_offsets), made per chunk.
template <PackedCodes kCodes>
void gemm_vnni(const WeightMatrix& w, int64_t r0, int64_t r1, const BlockQ8A* x, int64_t n, float* y, int64_t ldy) {
  const int64_t nb = w.cols / 32;
  thread_local ActivationBuffer packed_buf, sums_buf;
  auto* packed = reinterpret_cast<VnniBlock16*>(packed_buf.get(static_cast<size_t>(nb) * sizeof(VnniBlock16)));
  const int64_t chunk = nb * 40 > (384 << 10) / 16 ? 16 : (384 << 10) / (nb * 40);
  using Tile =
      void (*)(const VnniBlock16*, int64_t, const BlockQ8A*, int64_t, const int32_t*, const int32_t*, float*, int64_t);
  static constexpr Tile kTiles[8] = {vnni_tile_call<kCodes, 1>, vnni_tile_call<kCodes, 2>, vnni_tile_call<kCodes, 3>,
                                     vnni_tile_call<kCodes, 4>, vnni_tile_call<kCodes, 5>, vnni_tile_call<kCodes, 6>,
                                     vnni_tile_call<kCodes, 7>, vnni_tile_call<kCodes, 8>};
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int64_t t1 = t0 + chunk < n ? t0 + chunk : n;
    int32_t *xlo = nullptr, *xhi = nullptr;
    if constexpr (kCodes != PackedCodes::kUnsigned) {
      xlo = reinterpret_cast<int32_t*>(sums_buf.get(static_cast<size_t>(2 * (t1 - t0) * nb) * sizeof(int32_t)));
      xhi = xlo + (t1 - t0) * nb;
      for (int64_t t = t0; t < t1; ++t) code_offsets<kCodes>(x + t * nb, nb, xlo + (t - t0) * nb, xhi + (t - t0) * nb);
    }
    for (int64_t r = r0; r + 16 <= r1; r += 16) {
      avx2::pack16_vnni(w, r, packed);
      for (int64_t t = t0; t < t1; t += 8) {
        const int64_t rn = t1 - t < 8 ? t1 - t : 8;
        const int64_t o = (t - t0) * nb;
        kTiles[rn - 1](packed, nb, x + t * nb, nb, xlo ? xlo + o : nullptr, xhi ? xhi + o : nullptr, y + t * ldy + r,
                       ldy);
      }
    }
  }
}

// --- Float weights (F32, F16, BF16) against one float token. ----------------------------------
// 32 elements per step, widened to float32 (BF16: zero-extend and shift; F16: vcvtph2ps) and
// multiplied exactly in float32, as the AVX2 kernel does; one row at a time with the next tile's
// bytes prefetched, as for the block types.
template <DType kType>
GE512_INLINE void load32(const uint8_t* p, __m512& lo, __m512& hi) {
  if constexpr (kType == DType::BF16) {
    lo = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
    hi = _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))), 16));
  } else if constexpr (kType == DType::F16) {
    lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
  } else {
    lo = _mm512_loadu_ps(p);
    hi = _mm512_loadu_ps(p + 64);
  }
}

template <DType kType>
GE512_INLINE __m512 row_dot_float(const uint8_t* p, int64_t cols, const float* x, const uint8_t* pf) {
  constexpr int64_t kBytes = kType == DType::F32 ? 4 : 2;  // per element
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    if (pf)
      for (int64_t o = 0; o < 64 * kBytes; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + c * kBytes + o), GE512_PREFETCH_HINT);
    __m512 w0, w1, w2, w3;
    load32<kType>(p + c * kBytes, w0, w1);
    load32<kType>(p + (c + 32) * kBytes, w2, w3);
    acc0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + c), acc0);
    acc1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + c + 16), acc1);
    acc2 = _mm512_fmadd_ps(w2, _mm512_loadu_ps(x + c + 32), acc2);
    acc3 = _mm512_fmadd_ps(w3, _mm512_loadu_ps(x + c + 48), acc3);
  }
  if (c < cols) {  // cols is a multiple of 32
    if (pf)
      for (int64_t o = 0; o < 32 * kBytes; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + c * kBytes + o), GE512_PREFETCH_HINT);
    __m512 w0, w1;
    load32<kType>(p + c * kBytes, w0, w1);
    acc0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + c), acc0);
    acc1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + c + 16), acc1);
  }
  return _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
}

// --- Prefill for float weights in float32: FMA tiles. -------------------------------------------
// Rows are packed 32 at a time, widened to float32 and stored column-major (panel[k * 32 + i] =
// W[r + i][c0 + k]); a token's column value is broadcast. A 32-row x RN-token tile keeps 2 * RN
// accumulators (RN = 12: 24 of the 32 zmm registers) and issues 2 weight loads and RN broadcasts
// per 2 * RN FMAs. Products and sums stay float32, so the result equals the reference's up to
// summation order: this is both the fast and the precise path for F32 and F16 weights (and the
// precise one for BF16). It replaced the AVX2 8-wide tiles for the vision tower, whose matrices
// see 4096 patch tokens (measurements: docs/benchmarks.md, "Vision encoder").
template <int RN>
GE512_INLINE void f32_tile(const float* p, int64_t kc, const float* x, int64_t ldx, float* y, int64_t ldy, __mmask16 m0,
                           __mmask16 m1, bool accumulate) {
  __m512 acc[RN][2];
#pragma GCC unroll 12
  for (int j = 0; j < RN; ++j) {
    acc[j][0] = accumulate ? _mm512_maskz_loadu_ps(m0, y + j * ldy) : _mm512_setzero_ps();
    acc[j][1] = accumulate ? _mm512_maskz_loadu_ps(m1, y + j * ldy + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 w0 = _mm512_load_ps(p + 32 * k), w1 = _mm512_load_ps(p + 32 * k + 16);
#pragma GCC unroll 12
    for (int j = 0; j < RN; ++j) {
      const __m512 xv = _mm512_set1_ps(x[j * ldx + k]);
      acc[j][0] = _mm512_fmadd_ps(w0, xv, acc[j][0]);
      acc[j][1] = _mm512_fmadd_ps(w1, xv, acc[j][1]);
    }
  }
#pragma GCC unroll 12
  for (int j = 0; j < RN; ++j) {
    _mm512_mask_storeu_ps(y + j * ldy, m0, acc[j][0]);
    _mm512_mask_storeu_ps(y + j * ldy + 16, m1, acc[j][1]);
  }
}

template <int RN>
void f32_tile_call(const float* p, int64_t kc, const float* x, int64_t ldx, float* y, int64_t ldy, __mmask16 m0,
                   __mmask16 m1, bool accumulate) {
  f32_tile<RN>(p, kc, x, ldx, y, ldy, m0, m1, accumulate);
}

// The first m elements (m <= 16) of a row widened to float32, the rest zero.
template <DType kType>
GE512_INLINE __m512 load16_f32(const uint8_t* p, int m) {
  const __mmask16 k = m >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << m) - 1);
  if constexpr (kType == DType::BF16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
  else if constexpr (kType == DType::F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
  else return _mm512_maskz_loadu_ps(k, p);
}

// Rows [r, r + valid) (valid <= 32; missing rows are zero), columns [c0, c0 + kc) into the
// column-major panel by 16x16 transposes of widened rows (the last columns by masked loads).
template <DType kType>
GE512_INLINE void pack_f32_panel(const WeightMatrix& w, int64_t r, int valid, int64_t c0, int64_t kc, float* panel) {
  constexpr int64_t kBytes = kType == DType::F32 ? 4 : 2;
  for (int64_t k = 0; k < kc; k += 16) {
    const int m = kc - k < 16 ? static_cast<int>(kc - k) : 16;
    for (int v = 0; v < 2; ++v) {
      __m512i a[16], o[16];
      for (int i = 0; i < 16; ++i)
        a[i] = 16 * v + i < valid
                   ? _mm512_castps_si512(load16_f32<kType>(row_ptr(w, r + 16 * v + i) + (c0 + k) * kBytes, m))
                   : _mm512_setzero_si512();
      transpose16x16(a, o);
      for (int kk = 0; kk < m; ++kk) _mm512_store_si512(panel + 32 * (k + kk) + 16 * v, o[kk]);
    }
  }
}

// Rows [r0, r1) x tokens [0, n), any shape. Columns in blocks of kKc (a 32-row panel, 32 KiB, in
// L1) and tokens in chunks of kTokens (their activations for one column block, 256 KiB, in L2);
// every column block after the first adds to y.
template <DType kType>
void gemm_f32(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n, float* y, int64_t ldy) {
  constexpr int64_t kKc = 256, kTokens = 256, kRn = 12;
  thread_local ActivationBuffer panel_buf;
  auto* panel = reinterpret_cast<float*>(panel_buf.get(32 * kKc * sizeof(float)));
  using Tile = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, __mmask16, __mmask16, bool);
  static constexpr Tile kTiles[kRn] = {f32_tile_call<1>, f32_tile_call<2>,  f32_tile_call<3>,  f32_tile_call<4>,
                                       f32_tile_call<5>, f32_tile_call<6>,  f32_tile_call<7>,  f32_tile_call<8>,
                                       f32_tile_call<9>, f32_tile_call<10>, f32_tile_call<11>, f32_tile_call<12>};
  for (int64_t t0 = 0; t0 < n; t0 += kTokens) {
    const int64_t nt = n - t0 < kTokens ? n - t0 : kTokens;
    for (int64_t c0 = 0; c0 < w.cols; c0 += kKc) {
      const int64_t kc = w.cols - c0 < kKc ? w.cols - c0 : kKc;
      for (int64_t r = r0; r < r1; r += 32) {
        const int valid = r1 - r < 32 ? static_cast<int>(r1 - r) : 32;
        const __mmask16 m0 = valid >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << valid) - 1);
        const __mmask16 m1 = valid >= 32 ? 0xFFFF : valid <= 16 ? 0 : static_cast<__mmask16>((1u << (valid - 16)) - 1);
        pack_f32_panel<kType>(w, r, valid, c0, kc, panel);
        for (int64_t t = 0; t < nt; t += kRn) {
          const int64_t rn = nt - t < kRn ? nt - t : kRn;
          kTiles[rn - 1](panel, kc, x + (t0 + t) * w.cols + c0, w.cols, y + (t0 + t) * ldy + r, ldy, m0, m1, c0 > 0);
        }
      }
    }
  }
}

template <DType kType>
void rows_float_avx512(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y,
                       int64_t ldy) {
  if (n >= avx2::kGemmMinTokens) return gemm_f32<kType>(w, r0, r1, static_cast<const float*>(xv), n, y, ldy);
  if (n != 1 || w.cols % 32 != 0) return isa_avx2()->rows[static_cast<int>(kType)](w, r0, r1, xv, n, y, ldy);
  const auto* x = static_cast<const float*>(xv);
  rows_by_tiles(w, r0, r1, y,
                [&](const uint8_t* row, const uint8_t* pf) { return row_dot_float<kType>(row, w.cols, x, pf); });
}

// --- Prefill for BF16 weights: vdpbf16ps (AVX512_BF16). ---------------------------------------
// The activations are rounded to bfloat16 (as llama.cpp does for BF16 weights; the quantized types
// round them much further, to int8) and each vdpbf16ps adds two products per lane in float32:
// 32 multiply-adds per instruction, twice the float32 FMA's. Rows are packed 16 at a time, column
// pairs as dwords (lane i = row i); a token's column pair is broadcast. The decode kernel above
// and the precise path (CpuOptions::precise, `--precise`) stay exact in float32.
// RV x 16 rows (packed buffers p, p + pstride) x RN tokens: per column pair, RV weight loads and
// RN broadcasts feed RV * RN vdpbf16ps. 32 rows x 6 tokens needs 8 loads per 12 instructions where
// 16 x 12 needs 13, which bound the loop on Zen 5's load ports.
template <int RV, int RN>
GE512_INLINE void bf16_tile(const uint32_t* p, int64_t pstride, int64_t kp, const uint32_t* x, int64_t ldx, float* y,
                            int64_t ldy, bool accumulate) {
  __m512 acc[RN][RV];
#pragma GCC unroll 12
  for (int j = 0; j < RN; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < RV; ++v) acc[j][v] = accumulate ? _mm512_loadu_ps(y + j * ldy + 16 * v) : _mm512_setzero_ps();
  for (int64_t k = 0; k < kp; ++k) {
    __m512bh wv[RV];
#pragma GCC unroll 2
    for (int v = 0; v < RV; ++v) wv[v] = (__m512bh)_mm512_loadu_si512(p + v * pstride + 16 * k);
#pragma GCC unroll 12
    for (int j = 0; j < RN; ++j) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[j * ldx + k]));
#pragma GCC unroll 2
      for (int v = 0; v < RV; ++v) acc[j][v] = _mm512_dpbf16_ps(acc[j][v], wv[v], xv);
    }
  }
#pragma GCC unroll 12
  for (int j = 0; j < RN; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < RV; ++v) _mm512_storeu_ps(y + j * ldy + 16 * v, acc[j][v]);
}

template <int RV, int RN>
void bf16_tile_call(const uint32_t* p, int64_t pstride, int64_t kp, const uint32_t* x, int64_t ldx, float* y,
                    int64_t ldy, bool accumulate) {
  bf16_tile<RV, RN>(p, pstride, kp, x, ldx, y, ldy, accumulate);
}

// Rows [r0, r0 + 16k) x tokens [0, n), w.cols a multiple of 32. Columns in blocks of kKc (a packed
// 32-row tile, 32 KiB, stays in L1) and tokens in chunks of kTokens (their bfloat16 activations
// for one column block, 256 KiB, in L2); every column block after the first adds to y. Rows go
// 32 at a time (6-token tiles), a last 16 with 12-token tiles.
void gemm_bf16(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n, float* y, int64_t ldy) {
  constexpr int64_t kKc = 512, kTokens = 256, kStride = 16 * kKc / 2;
  thread_local ActivationBuffer packed_buf, x_buf;
  auto* packed = reinterpret_cast<uint32_t*>(packed_buf.get(2 * kStride * 4));
  auto* xb = reinterpret_cast<uint32_t*>(x_buf.get(kTokens * kKc * 2));
  using Tile = void (*)(const uint32_t*, int64_t, int64_t, const uint32_t*, int64_t, float*, int64_t, bool);
  static constexpr Tile kTiles32[6] = {bf16_tile_call<2, 1>, bf16_tile_call<2, 2>, bf16_tile_call<2, 3>,
                                       bf16_tile_call<2, 4>, bf16_tile_call<2, 5>, bf16_tile_call<2, 6>};
  static constexpr Tile kTiles16[12] = {bf16_tile_call<1, 1>,  bf16_tile_call<1, 2>,  bf16_tile_call<1, 3>,
                                        bf16_tile_call<1, 4>,  bf16_tile_call<1, 5>,  bf16_tile_call<1, 6>,
                                        bf16_tile_call<1, 7>,  bf16_tile_call<1, 8>,  bf16_tile_call<1, 9>,
                                        bf16_tile_call<1, 10>, bf16_tile_call<1, 11>, bf16_tile_call<1, 12>};
  for (int64_t t0 = 0; t0 < n; t0 += kTokens) {
    const int64_t nt = n - t0 < kTokens ? n - t0 : kTokens;
    for (int64_t c0 = 0; c0 < w.cols; c0 += kKc) {
      const int64_t kc = w.cols - c0 < kKc ? w.cols - c0 : kKc;  // a multiple of 32
      round_to_bf16(x + t0 * w.cols, w.cols, nt, c0, kc, reinterpret_cast<uint16_t*>(xb));
      for (int64_t r = r0; r + 16 <= r1;) {
        const int rv = r + 32 <= r1 ? 2 : 1;
        pack_row_groups(w, r, rv, c0, kc, packed, kStride);
        const int64_t next_rows = r1 - (r + 16 * rv) < 32 ? (r1 - (r + 16 * rv)) / 16 * 16 : 32;
        const int64_t rn_max = rv == 2 ? 6 : 12;
        const int64_t groups = (nt + rn_max - 1) / rn_max;
        for (int64_t t = 0, g = 0; t < nt; t += rn_max, ++g) {
          prefetch_rows_share(w, r + 16 * rv, next_rows, c0, kc, g, groups);
          const int64_t rn = nt - t < rn_max ? nt - t : rn_max;
          (rv == 2 ? kTiles32 : kTiles16)[rn - 1](packed, kStride, kc / 2, xb + t * (kc / 2), kc / 2,
                                                  y + (t0 + t) * ldy + r, ldy, c0 > 0);
        }
        r += 16 * rv;
      }
    }
  }
}

// BF16 for the table: prefill (kGemmMinTokens+ tokens) in kGemm on the 16-row tiles, the AVX2
// kernel for leftover rows; fewer tokens in the exact one-token / AVX2 kernels. kGemm: gemm_bf16
// (vdpbf16ps) or, in isa_avx512_amx, gemm_bf16_amx (AMX tiles, gemm_amx.cpp).
using Bf16Gemm = void (*)(const WeightMatrix&, int64_t, int64_t, const float*, int64_t, float*, int64_t);
template <Bf16Gemm kGemm>
void rows_bf16(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  if (n >= avx2::kGemmMinTokens && w.cols % 32 == 0) {
    const int64_t r16 = r0 + (r1 - r0) / 16 * 16;
    kGemm(w, r0, r16, static_cast<const float*>(xv), n, y, ldy);
    if (r16 < r1) isa_avx2()->rows[static_cast<int>(DType::BF16)](w, r16, r1, xv, n, y, ldy);
    return;
  }
  rows_float_avx512<DType::BF16>(w, r0, r1, xv, n, y, ldy);
}

// The table's entry for a block type: one token and prefill here, 2 to kGemmMinTokens - 1 tokens
// (and the rows past the GEMM's 16-row tiles) the AVX2 kernels, which sum in the same order.
// OneToken: rows_one_token_pairs<P> or rows_one_token_kquant<K>.
using OneTokenKernel = void (*)(const WeightMatrix&, int64_t, int64_t, const BlockQ8A*, float*);
template <OneTokenKernel kOneToken, DType kType>
void rows_avx512(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y, int64_t ldy) {
  const RowsKernel avx2 = isa_avx2()->rows[static_cast<int>(kType)];
  if (n >= avx2::kGemmMinTokens) {
    constexpr PackedCodes kCodes = kType == DType::Q6_K                         ? PackedCodes::kQ6K
                                   : kType == DType::Q8_0 || kType == DType::I8 ? PackedCodes::kBiased128
                                                                                : PackedCodes::kUnsigned;
    const int64_t r16 = r0 + (r1 - r0) / 16 * 16;
    gemm_vnni<kCodes>(w, r0, r16, static_cast<const BlockQ8A*>(x), n, y, ldy);
    if (r16 < r1) avx2(w, r16, r1, x, n, y, ldy);  // the last 8-row tile and leftover rows
    return;
  }
  if (n != 1) return avx2(w, r0, r1, x, n, y, ldy);
  kOneToken(w, r0, r1, static_cast<const BlockQ8A*>(x), y);
}

IsaKernels make_avx512() {
  IsaKernels k = *isa_avx2();
  k.name = "avx512";
  k.rows[static_cast<int>(DType::F32)] = rows_float_avx512<DType::F32>;
  k.rows[static_cast<int>(DType::F16)] = rows_float_avx512<DType::F16>;
  k.rows[static_cast<int>(DType::BF16)] = rows_float_avx512<DType::BF16>;
  if (cpu_has_avx512_bf16()) {
    k.rows_exact[static_cast<int>(DType::BF16)] = k.rows[static_cast<int>(DType::BF16)];
    k.rows[static_cast<int>(DType::BF16)] = rows_bf16<gemm_bf16>;
  }
  k.rows[static_cast<int>(DType::Q8_0)] = rows_avx512<rows_one_token_pairs<BlockPairQ8_0>, DType::Q8_0>;
  k.rows[static_cast<int>(DType::I8)] = rows_avx512<rows_one_token_pairs<BlockPairI8>, DType::I8>;
  k.rows[static_cast<int>(DType::Q4_0)] = rows_avx512<rows_one_token_pairs<BlockPairQ4_0>, DType::Q4_0>;
  k.rows[static_cast<int>(DType::Q4_1)] = rows_avx512<rows_one_token_pairs<BlockPairQ4_1>, DType::Q4_1>;
  k.rows[static_cast<int>(DType::Q5_0)] = rows_avx512<rows_one_token_pairs<BlockPairQ5_0>, DType::Q5_0>;
  k.rows[static_cast<int>(DType::Q5_1)] = rows_avx512<rows_one_token_pairs<BlockPairQ5_1>, DType::Q5_1>;
  k.rows[static_cast<int>(DType::Q4_0F)] = rows_avx512<rows_one_token_pairs<BlockPairQ4_0F>, DType::Q4_0F>;
  k.rows[static_cast<int>(DType::Q4_K)] = rows_avx512<rows_one_token_kquant<SuperBlockQ4_K>, DType::Q4_K>;
  k.rows[static_cast<int>(DType::Q5_K)] = rows_avx512<rows_one_token_kquant<SuperBlockQ5_K>, DType::Q5_K>;
  k.rows[static_cast<int>(DType::Q6_K)] = rows_avx512<rows_one_token_kquant<SuperBlockQ6_K>, DType::Q6_K>;
  return k;
}

}  // namespace

const IsaKernels* isa_avx512() {
  if (!isa_avx2()) return nullptr;
  static const IsaKernels k = make_avx512();
  return &k;
}

const IsaKernels* isa_avx512_amx() {
  if (!isa_avx2()) return nullptr;
  static const IsaKernels k = [] {
    IsaKernels t = make_avx512();
    t.name = "avx512-amx";
    if (!t.rows_exact[static_cast<int>(DType::BF16)])
      t.rows_exact[static_cast<int>(DType::BF16)] = t.rows[static_cast<int>(DType::BF16)];
    t.rows[static_cast<int>(DType::BF16)] = rows_bf16<gemm_bf16_amx>;
    return t;
  }();
  return &k;
}

}  // namespace gemma::cpu

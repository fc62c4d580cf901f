// AVX-512 (F, BW, VL, DQ, VNNI; BF16 where present) kernels: compiled with those flags and chosen
// at run time on CPUs that have them (Intel Ice Lake and later, AMD Zen 4 and later). The table
// starts as the AVX2 one; this file replaces
//   - decode (one token): every block type (the 32-element types and the K-quants) and the float
//     types, one row at a time with the next 8-row tile prefetched;
//   - prefill (kGemmMinTokens+ tokens): a VNNI GEMM for the block types (rows packed 16 at a time
//     by the AVX2 side) and, on AVX512_BF16 CPUs, a vdpbf16ps GEMM for BF16;
// and hands 2-7 tokens (small batches) back to the AVX2 kernels.
//
// Why it is faster than the AVX2 kernels. vpdpbusd multiplies 64 unsigned bytes by 64 signed
// bytes and adds each group of four products into an int32 lane: one instruction for two blocks
// where AVX2 needs maddubs + madd per block (plus two sign instructions for Q8_0). Every code is
// made unsigned: Q8_0 and int8 by flipping the top bit (w + 128), Q4_0/Q5_0 are stored with an
// offset already (w = q - 8, q - 16). The offset returns once per block as offset * d_w * s_x,
// where s_x = d_x * Σ q_x is in the activation block, folded into the FMA that scales the block.
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

// --- One token's activations laid out for the pair loop. -------------------------------------
// qs: the int8 codes of all blocks back to back (two blocks per zmm; zeros after the last block,
// so an odd block count can load a whole pair). Per pair of blocks a, b, 16 floats each:
// d = [d_a x8 | d_b x8]; c = -offset * [s_a / 8 x8 | s_b / 8 x8] (the offset term, spread so the
// 16 lanes sum to it); s = [s_a / 8 x8 | s_b / 8 x8] (for types with a min). Zeros past the last
// block. For the K-quants: sb, each block's s; o32 (Q6_K only), per pair the 16 int32 lanes of
// vpdpbusd(32, x), the offset term of codes stored as q + 32 with one scale per 16 elements.
struct TokenView {
  const int8_t* qs;
  const float* d;
  const float* c;
  const float* s;
  const float* sb;
  const int32_t* o32;
  const float* d16;  // d_x per block, 16-block groups in kGroupOrder (group16_step)
  const float* c16;  // -offset * s_x per block, the same order
};

// The order in which group16_step's reduction leaves a 16-block group's sums.
constexpr int kGroupOrder[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};

template <bool kO32, bool kGroup16>
TokenView make_view(const BlockQ8A* x, int64_t nb, float offset) {
  thread_local ActivationBuffer buf;
  const int64_t np = (nb + 1) / 2;
  const size_t qs_bytes = static_cast<size_t>(np) * 64 + 64;
  const size_t pair_floats = static_cast<size_t>(np) * 16;
  const int64_t ng = kGroup16 ? nb / 16 : 0;
  uint8_t* p = buf.get(qs_bytes + (5 * pair_floats + 16 + 32 * static_cast<size_t>(ng)) * sizeof(float));
  auto* qs = reinterpret_cast<int8_t*>(p);
  auto* d = reinterpret_cast<float*>(p + qs_bytes);
  float* c = d + pair_floats;
  float* s = c + pair_floats;
  float* sb = s + pair_floats;
  auto* o32 = reinterpret_cast<int32_t*>(sb + 2 * np + 16);
  std::memset(qs + 32 * nb, 0, qs_bytes - static_cast<size_t>(32 * nb));
  for (int64_t b = 0; b < 2 * np; ++b) {
    const bool in = b < nb;
    if (in) std::memcpy(qs + 32 * b, x[b].qs, 32);
    const float xd = in ? x[b].d : 0.0f, xs = in ? x[b].s / 8 : 0.0f;
    const __m256 lanes_d = _mm256_set1_ps(xd), lanes_s = _mm256_set1_ps(xs);
    _mm256_storeu_ps(d + 8 * b, lanes_d);
    _mm256_storeu_ps(c + 8 * b, _mm256_mul_ps(lanes_s, _mm256_set1_ps(-offset)));
    _mm256_storeu_ps(s + 8 * b, lanes_s);
    sb[b] = in ? x[b].s : 0.0f;
  }
  if constexpr (kO32)
    for (int64_t k = 0; k < np; ++k)
      _mm512_storeu_si512(o32 + 16 * k, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(32),
                                                            _mm512_loadu_si512(qs + 64 * k)));
  float* d16 = reinterpret_cast<float*>(o32 + pair_floats);
  float* c16 = d16 + 16 * ng;
  for (int64_t g = 0; g < ng; ++g)
    for (int i = 0; i < 16; ++i) {
      const BlockQ8A& xb = x[16 * g + kGroupOrder[i]];
      d16[16 * g + i] = xb.d;
      c16[16 * g + i] = -offset * xb.s;
    }
  return {qs, d, c, s, sb, o32, d16, c16};
}

// --- Block traits: two blocks' codes as 64 unsigned bytes, and their scales. -------------------
// codes2(b): blocks b[0] (bytes 0-31) and b[1] (32-63), element order; codes1: one block in the
// low half, zeros above; d2 / m2: the pair's scales / mins spread over the lanes (pair_scales). kOffset: the stored
// code minus the weight's integer value (so the block's value is d * (code - kOffset), or d * code + m for kMin types).

// The f16 (or f32) field at byte `offset` of blocks b[0] and b[1] as [b[0] x8 | b[1] x8] floats,
// or [b[0] x8 | 0 x8] (kOne). Broadcasts per pair rather than one vector of 16 blocks' scales and
// a permute per pair: the 16 inserts (or a vpgatherdd, slower still on Zen 5) made a long chain.
template <typename Block, bool kF32, bool kOne = false>
GE512_INLINE __m512 pair_scales(const Block* b, size_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(b) + offset;
  if constexpr (kF32) {
    float fa, fb = 0;
    std::memcpy(&fa, p, 4);
    if constexpr (!kOne) std::memcpy(&fb, p + sizeof(Block), 4);
    return _mm512_insertf32x8(_mm512_set1_ps(fa), _mm256_set1_ps(fb), 1);
  } else {
    uint16_t ha, hb = 0;
    std::memcpy(&ha, p, 2);
    if constexpr (!kOne) std::memcpy(&hb, p + sizeof(Block), 2);
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(static_cast<int16_t>(ha))),
                                                   _mm_set1_epi16(static_cast<int16_t>(hb)), 1));
  }
}

struct LQ8_0 {
  using Block = BlockQ8_0;
  static constexpr float kOffset = 128.0f;
  static constexpr bool kMin = false;
  static constexpr bool kO32 = false;
  static constexpr bool kGroup16 = true;
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
  template <bool kOne>
  GE512_INLINE static __m512 d2(const Block* b) {
    return pair_scales<Block, false, kOne>(b, offsetof(Block, d));
  }
  template <bool kOne>
  GE512_INLINE static __m512 m2(const Block*) {
    return _mm512_setzero_ps();
  }
};

struct LI8 {  // plain int8 rows: the per-row scale is applied by the backend after the dot
  struct Block {
    int8_t qs[32];
  };
  static constexpr float kOffset = 128.0f;
  static constexpr bool kMin = false;
  static constexpr bool kO32 = false;
  static constexpr bool kGroup16 = false;
  GE512_INLINE static __m512i codes2(const Block* b) {
    return _mm512_xor_si512(_mm512_loadu_si512(b[0].qs), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  GE512_INLINE static __m512i codes1(const Block* b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    return _mm512_zextsi256_si512(_mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))));
  }
  template <bool kOne>
  GE512_INLINE static __m512 d2(const Block*) {
    return _mm512_set1_ps(1.0f);
  }
  template <bool kOne>
  GE512_INLINE static __m512 m2(const Block*) {
    return _mm512_setzero_ps();
  }
};

// Nibble types: 16 bytes of packed codes per block, element e < 16 in the low nibble of byte e,
// element e + 16 in its high nibble; Q5 types add a fifth bit per element from qh.
template <typename B, bool kFive, bool kMinT, bool kF32Scale = false>
struct LNibble {
  using Block = B;
  static constexpr float kOffset = kMinT ? 0.0f : (kFive ? 16.0f : 8.0f);
  static constexpr bool kMin = kMinT;
  static constexpr bool kO32 = false;
  static constexpr bool kGroup16 = !kMinT && !kF32Scale;
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
  template <bool kOne>
  GE512_INLINE static __m512 d2(const Block* b) {
    return pair_scales<Block, kF32Scale, kOne>(b, offsetof(Block, d));
  }
  template <bool kOne>
  GE512_INLINE static __m512 m2(const Block* b) {
    if constexpr (kMinT) return pair_scales<Block, false, kOne>(b, offsetof(Block, m));
    else return _mm512_setzero_ps();
  }
};
using LQ4_0 = LNibble<BlockQ4_0, false, false>;
using LQ4_1 = LNibble<BlockQ4_1, false, true>;
using LQ5_0 = LNibble<BlockQ5_0, true, false>;
using LQ5_1 = LNibble<BlockQ5_1, true, true>;
using LQ4_0F = LNibble<BlockQ4_0F, false, false, true>;

// One pair of blocks (or the last, single block: kOne) against the token, added to acc:
// d_w * (d_x * dot(codes, x) - offset * s_x) per block (+ m_w * s_x for types with a min), each
// block's 8 int32 lanes scaled by its own factors.
template <typename L, bool kOne>
GE512_INLINE __m512 pair_step(const typename L::Block* blk, const TokenView& x, int64_t k, __m512 acc) {
  const __m512i q = kOne ? L::codes1(blk) : L::codes2(blk);
  const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(x.qs + 64 * k));
  const __m512 t =
      _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(x.d + 16 * k), _mm512_loadu_ps(x.c + 16 * k));
  acc = _mm512_fmadd_ps(t, L::template d2<kOne>(blk), acc);
  if constexpr (L::kMin) acc = _mm512_fmadd_ps(L::template m2<kOne>(blk), _mm512_loadu_ps(x.s + 16 * k), acc);
  return acc;
}

// Sixteen blocks against the token (types with one f16 scale d per block and no min): the eight
// pairs' vpdpbusd lanes are reduced to one int32 per block (three unpack-or-shuffle-and-add
// steps, which leave the blocks in kGroupOrder), then converted, scaled by the 16 blocks' d_w
// (gathered, one vcvtph2ps) and d_x and offset-corrected once, instead of a convert, two FMAs and
// a scale broadcast per pair.
template <typename L>
GE512_INLINE __m512 group16_step(const typename L::Block* blk, const TokenView& x, int64_t g, __m512 acc) {
  using Block = typename L::Block;
  __m512i p[8];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k)
    p[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), L::codes2(blk + 2 * k),
                               _mm512_loadu_si512(x.qs + 64 * (8 * g + k)));
  __m512i t[4];
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k)
    t[k] =
        _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * k], p[2 * k + 1]), _mm512_unpackhi_epi32(p[2 * k], p[2 * k + 1]));
  const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi64(t[0], t[1]), _mm512_unpackhi_epi64(t[0], t[1]));
  const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2], t[3]), _mm512_unpackhi_epi64(t[2], t[3]));
  const __m512i v = _mm512_add_epi32(_mm512_shuffle_i32x4(u0, u1, 0x88), _mm512_shuffle_i32x4(u0, u1, 0xDD));
  constexpr int kS = sizeof(Block);
  const __m512i idx = _mm512_setr_epi32(0, 2 * kS, 4 * kS, 6 * kS, kS, 3 * kS, 5 * kS, 7 * kS, 8 * kS, 10 * kS, 12 * kS,
                                        14 * kS, 9 * kS, 11 * kS, 13 * kS, 15 * kS);
  const __m512i raw = _mm512_i32gather_epi32(idx, reinterpret_cast<const uint8_t*>(blk) + offsetof(Block, d), 1);
  const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
  const __m512 tx =
      _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(x.d16 + 16 * g), _mm512_loadu_ps(x.c16 + 16 * g));
  return _mm512_fmadd_ps(tx, dw, acc);
}

// One row against one token: 16 float partial sums. Pairs of blocks go four at a time into four
// accumulators (an FMA chain per accumulator). pf: the same bytes of the row that the next tile
// will read, prefetched as this row is read (decode streams weights from DRAM and the hardware
// prefetchers alone keep too few lines in flight).
template <typename L>
GE512_INLINE __m512 row_dot(const uint8_t* p, int64_t nb, const TokenView& x, const uint8_t* pf) {
  using Block = typename L::Block;
  constexpr int64_t kGroup = 8 * int64_t{sizeof(Block)};  // bytes of 4 pairs
  const auto* blocks = reinterpret_cast<const Block*>(p);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t b = 0;
  if constexpr (L::kGroup16)
    for (; b + 16 <= nb; b += 16) {
      if (pf)
        for (int64_t o = 0; o < 2 * kGroup; o += 64)
          _mm_prefetch(reinterpret_cast<const char*>(pf + b * int64_t{sizeof(Block)} + o), GE512_PREFETCH_HINT);
      if (b & 16) acc1 = group16_step<L>(blocks + b, x, b / 16, acc1);
      else acc0 = group16_step<L>(blocks + b, x, b / 16, acc0);
    }
  for (; b + 8 <= nb; b += 8) {
    if (pf)
      for (int64_t o = 0; o < kGroup; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + b * int64_t{sizeof(Block)} + o), GE512_PREFETCH_HINT);
    acc0 = pair_step<L, false>(blocks + b, x, b / 2, acc0);
    acc1 = pair_step<L, false>(blocks + b + 2, x, b / 2 + 1, acc1);
    acc2 = pair_step<L, false>(blocks + b + 4, x, b / 2 + 2, acc2);
    acc3 = pair_step<L, false>(blocks + b + 6, x, b / 2 + 3, acc3);
  }
  if (pf && b < nb)
    for (int64_t o = 0; o < (nb - b) * int64_t{sizeof(Block)}; o += 64)
      _mm_prefetch(reinterpret_cast<const char*>(pf + b * int64_t{sizeof(Block)} + o), GE512_PREFETCH_HINT);
  for (; b + 2 <= nb; b += 2) acc0 = pair_step<L, false>(blocks + b, x, b / 2, acc0);
  if (b < nb) acc1 = pair_step<L, true>(blocks + b, x, b / 2, acc1);
  return _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
}

// --- K-quants: super-blocks of 256 elements, four pairs of 32-element sub-blocks each. ---------
// Pair p of a super-block is elements 64p..64p+63: one vpdpbusd against the activation pair, whose
// 16 int32 lanes are scaled by the super-block's sub-block scales (a permute of one 16-float
// vector made per super-block, d folded in) times the activation blocks' d_x.

// Q4_K / Q5_K: weight d * sc[s] * q - dmin * m[s] per sub-block s (6-bit sc and m); the mins meet
// the activation sums as one 8-lane product per super-block.
template <typename B, bool kFive>
struct KQ45 {
  using Block = B;
  static constexpr bool kO32 = false;
  static constexpr bool kGroup16 = false;
  static constexpr float kOffset = 0.0f;
  // The twelve 6-bit-packed bytes -> u[0], u[1]: the 8 scales; u[2], u[3]: the 8 mins. The same
  // steps as RowK45 in decode_rows_avx2.h, written again because that header is AVX2-only (ODR note).
  GE512_INLINE static void unpack(const Block& b, uint32_t u[4]) {
    std::memcpy(u, b.scales, 12);
    constexpr uint32_t kM1 = 0x3f3f3f3f, kM2 = 0x0f0f0f0f, kM3 = 0x03030303;
    u[3] = ((u[2] >> 4) & kM2) | (((u[1] >> 6) & kM3) << 4);
    const uint32_t mins_lo = u[1] & kM1;
    u[1] = (u[2] & kM2) | (((u[0] >> 6) & kM3) << 4);
    u[0] &= kM1;
    u[2] = mins_lo;
  }
  // Lanes 0-7: d * sc[0..7]; and (into corr, 8 lanes) dmin * m[s] * s_x[s].
  GE512_INLINE static __m512 scales(const Block& b, const float* sb, __m256& corr) {
    uint32_t u[4];
    unpack(b, u);
    const __m128i bytes =
        _mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]), static_cast<int>(u[1]), static_cast<int>(u[0]));
    const __m512 all = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));  // 8 scales, then 8 mins
    const __m256 mins = _mm512_extractf32x8_ps(all, 1);
    corr = _mm256_fmadd_ps(_mm256_mul_ps(mins, _mm256_set1_ps(_cvtsh_ss(b.dmin))), _mm256_loadu_ps(sb), corr);
    return _mm512_mul_ps(all, _mm512_set1_ps(_cvtsh_ss(b.d)));
  }
  static constexpr int kLanesPerScale = 8;
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
using KQ4_K = KQ45<BlockQ4_K, false>;
using KQ5_K = KQ45<BlockQ5_K, true>;

// Q6_K: code q in 0..63, weight d * scales[e / 16] * (q - 32); the 32 returns through o32.
struct KQ6_K {
  using Block = BlockQ6_K;
  static constexpr bool kO32 = true;
  static constexpr bool kGroup16 = false;
  static constexpr float kOffset = 0.0f;
  GE512_INLINE static __m512 scales(const Block& b, const float*, __m256&) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), _mm512_set1_ps(_cvtsh_ss(b.d)));
  }
  static constexpr int kLanesPerScale = 4;
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

template <typename K, int p>
GE512_INLINE __m512i scale_index() {
  constexpr int n = K::kLanesPerScale, base = p * 16 / n;
  return _mm512_setr_epi32(base + 0 / n, base + 1 / n, base + 2 / n, base + 3 / n, base + 4 / n, base + 5 / n,
                           base + 6 / n, base + 7 / n, base + 8 / n, base + 9 / n, base + 10 / n, base + 11 / n,
                           base + 12 / n, base + 13 / n, base + 14 / n, base + 15 / n);
}

template <typename K, int p>
GE512_INLINE __m512 k_pair(const typename K::Block& blk, const TokenView& x, int64_t k, __m512 scv, __m512 acc) {
  __m512i dot =
      _mm512_dpbusd_epi32(_mm512_setzero_si512(), K::template codes<p>(blk), _mm512_loadu_si512(x.qs + 64 * k));
  if constexpr (K::kO32) dot = _mm512_sub_epi32(dot, _mm512_loadu_si512(x.o32 + 16 * k));
  const __m512 scale = _mm512_mul_ps(_mm512_permutexvar_ps(scale_index<K, p>(), scv), _mm512_loadu_ps(x.d + 16 * k));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
}

template <typename K>
GE512_INLINE __m512 row_dot_k(const uint8_t* p, int64_t nb, const TokenView& x, const uint8_t* pf) {
  using Block = typename K::Block;
  const auto* blocks = reinterpret_cast<const Block*>(p);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  __m256 corr = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb / 8; ++b) {
    if (pf)
      for (int64_t o = 0; o < int64_t{sizeof(Block)}; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + b * int64_t{sizeof(Block)} + o), GE512_PREFETCH_HINT);
    const Block& blk = blocks[b];
    const __m512 scv = K::scales(blk, x.sb + 8 * b, corr);
    acc0 = k_pair<K, 0>(blk, x, 4 * b, scv, acc0);
    acc1 = k_pair<K, 1>(blk, x, 4 * b + 1, scv, acc1);
    acc2 = k_pair<K, 2>(blk, x, 4 * b + 2, scv, acc2);
    acc3 = k_pair<K, 3>(blk, x, 4 * b + 3, scv, acc3);
  }
  const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
  return _mm512_sub_ps(sum, _mm512_insertf32x8(_mm512_setzero_ps(), corr, 0));
}

// The 8 rows' totals from their 16-lane partial sums, in row order.
GE512_INLINE __m256 sum8x16(const __m512 v[8]) {
  __m512 t[4];
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
    for (int i = 0; i < 8; ++i)
      acc[i] = dot(row_ptr(w, r + i), next ? next + i * static_cast<int64_t>(w.row_bytes) : nullptr);
    _mm256_storeu_ps(y + r, sum8x16(acc));
  }
  for (; r < r1; ++r) y[r] = _mm512_reduce_add_ps(dot(row_ptr(w, r), nullptr));
}

// L: a 32-element block trait (row_dot) or a K-quant (row_dot_k).
template <typename L, bool kK>
void rows_one_token(const WeightMatrix& w, int64_t r0, int64_t r1, const BlockQ8A* x, float* y) {
  const int64_t nb = w.cols / 32;
  const TokenView xv = make_view<L::kO32, L::kGroup16>(x, nb, L::kOffset);
  rows_by_tiles(w, r0, r1, y, [&](const uint8_t* row, const uint8_t* pf) {
    if constexpr (kK) return row_dot_k<L>(row, nb, xv, pf);
    else return row_dot<L>(row, nb, xv, pf);
  });
}

// --- Prefill: the VNNI GEMM for the block types. ------------------------------------------------
// Rows are packed 16 at a time by the AVX2 side (avx2::pack16_vnni): per 32-element block, eight
// registers whose dword lane i holds four codes of row i. A token's four activation bytes are
// broadcast to all lanes, so one vpdpbusd adds four products to each of 16 rows' sums: 8 per
// block and token, with no horizontal reductions (the AVX2 GEMM needs 8 broadcasts, 8 maddubs,
// int16 adds and a madd for 8 rows). 16 rows x 8 tokens keep 8 accumulators and the block's 8
// code registers in the 32 zmm registers.
using avx2::VnniBlock16;

template <bool kHalf, int RN>
GE512_INLINE void vnni_tile(const VnniBlock16* p, int64_t nb, const BlockQ8A* x, int64_t x_stride, const float* xlo,
                            float* y, int64_t ldy) {
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
      if constexpr (kHalf) {
        const __m512 d2 = _mm512_loadu_ps(pb.d2);
        const float xs_lo = xlo[j * nb + b], xs_hi = xb.s - xs_lo;
        const __m512 dot = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), d, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d2));
        acc[j] = _mm512_fmadd_ps(dot, _mm512_set1_ps(xb.d), acc[j]);
        acc[j] = _mm512_fmadd_ps(d, _mm512_set1_ps(-32.0f * xs_lo), acc[j]);
        acc[j] = _mm512_fmadd_ps(d2, _mm512_set1_ps(-32.0f * xs_hi), acc[j]);
      } else {
        const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi));
        acc[j] = _mm512_fmadd_ps(dot, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[j]);
        acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(pb.c), _mm512_set1_ps(xb.s), acc[j]);
      }
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < RN; ++j) _mm512_storeu_ps(y + j * ldy, acc[j]);
}

template <bool kHalf, int RN>
void vnni_tile_call(const VnniBlock16* p, int64_t nb, const BlockQ8A* x, int64_t x_stride, const float* xlo, float* y,
                    int64_t ldy) {
  vnni_tile<kHalf, RN>(p, nb, x, x_stride, xlo, y, ldy);
}

// Rows [r0, r0 + 16k) x tokens [0, n): tokens in chunks whose activations stay in L2 while every
// 16-row tile of the range (packed once per chunk) passes over them. kHalf: Q6_K, whose offset
// needs each activation block's sum over its first 16 elements (xlo, made per chunk).
template <bool kHalf>
void gemm_vnni(const WeightMatrix& w, int64_t r0, int64_t r1, const BlockQ8A* x, int64_t n, float* y, int64_t ldy) {
  const int64_t nb = w.cols / 32;
  thread_local ActivationBuffer packed_buf, xlo_buf;
  auto* packed = reinterpret_cast<VnniBlock16*>(packed_buf.get(static_cast<size_t>(nb) * sizeof(VnniBlock16)));
  const int64_t chunk = nb * 40 > (384 << 10) / 16 ? 16 : (384 << 10) / (nb * 40);
  using Tile = void (*)(const VnniBlock16*, int64_t, const BlockQ8A*, int64_t, const float*, float*, int64_t);
  static constexpr Tile kTiles[8] = {vnni_tile_call<kHalf, 1>, vnni_tile_call<kHalf, 2>, vnni_tile_call<kHalf, 3>,
                                     vnni_tile_call<kHalf, 4>, vnni_tile_call<kHalf, 5>, vnni_tile_call<kHalf, 6>,
                                     vnni_tile_call<kHalf, 7>, vnni_tile_call<kHalf, 8>};
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int64_t t1 = t0 + chunk < n ? t0 + chunk : n;
    float* xlo = nullptr;
    if constexpr (kHalf) {
      xlo = reinterpret_cast<float*>(xlo_buf.get(static_cast<size_t>((t1 - t0) * nb) * sizeof(float)));
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t b = 0; b < nb; ++b) {
          const BlockQ8A& xb = x[t * nb + b];
          int sum = 0;
          for (int e = 0; e < 16; ++e) sum += xb.qs[e];
          xlo[(t - t0) * nb + b] = xb.d * static_cast<float>(sum);
        }
    }
    for (int64_t r = r0; r + 16 <= r1; r += 16) {
      avx2::pack16_vnni(w, r, packed);
      for (int64_t t = t0; t < t1; t += 8) {
        const int64_t rn = t1 - t < 8 ? t1 - t : 8;
        kTiles[rn - 1](packed, nb, x + t * nb, nb, xlo ? xlo + (t - t0) * nb : nullptr, y + t * ldy + r, ldy);
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

template <DType kType>
void rows_float_avx512(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y,
                       int64_t ldy) {
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

// The table's entry: one token and prefill here, 2 to kGemmMinTokens - 1 tokens the AVX2 kernel.
template <typename L, DType kType, bool kK = false>
void rows_avx512(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y, int64_t ldy) {
  const RowsKernel avx2 = isa_avx2()->rows[static_cast<int>(kType)];
  if (n >= avx2::kGemmMinTokens) {
    const int64_t r16 = r0 + (r1 - r0) / 16 * 16;
    gemm_vnni<kType == DType::Q6_K>(w, r0, r16, static_cast<const BlockQ8A*>(x), n, y, ldy);
    if (r16 < r1) avx2(w, r16, r1, x, n, y, ldy);  // the last 8-row tile and leftover rows
    return;
  }
  if (n != 1) return avx2(w, r0, r1, x, n, y, ldy);
  rows_one_token<L, kK>(w, r0, r1, static_cast<const BlockQ8A*>(x), y);
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
  k.rows[static_cast<int>(DType::Q8_0)] = rows_avx512<LQ8_0, DType::Q8_0>;
  k.rows[static_cast<int>(DType::I8)] = rows_avx512<LI8, DType::I8>;
  k.rows[static_cast<int>(DType::Q4_0)] = rows_avx512<LQ4_0, DType::Q4_0>;
  k.rows[static_cast<int>(DType::Q4_1)] = rows_avx512<LQ4_1, DType::Q4_1>;
  k.rows[static_cast<int>(DType::Q5_0)] = rows_avx512<LQ5_0, DType::Q5_0>;
  k.rows[static_cast<int>(DType::Q5_1)] = rows_avx512<LQ5_1, DType::Q5_1>;
  k.rows[static_cast<int>(DType::Q4_0F)] = rows_avx512<LQ4_0F, DType::Q4_0F>;
  k.rows[static_cast<int>(DType::Q4_K)] = rows_avx512<KQ4_K, DType::Q4_K, true>;
  k.rows[static_cast<int>(DType::Q5_K)] = rows_avx512<KQ5_K, DType::Q5_K, true>;
  k.rows[static_cast<int>(DType::Q6_K)] = rows_avx512<KQ6_K, DType::Q6_K, true>;
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

// Per-type views of one 32-element sub-block of a weight row for the AVX2 kernels: its codes as
// 32 bytes plus the factors of the batch-invariant block sum (SubBlock). Shared by the row
// kernels (matmul_avx2.cpp) and the packed prefill GEMM (gemm_avx2.cpp); included only by files
// compiled with -mavx2 -mfma -mf16c, and everything is in an anonymous namespace (the ODR note
// in matmul_avx512.cpp).
//
// The block sum every kernel of every SIMD table computes, in this order (so a token's outputs
// do not depend on the other tokens of the call, nor on which kernel its row lands in): for each
// 32-element sub-block s of the row, I = the exact integer dot of the codes with the activation
// block's int8 values (Q6_K: sc_lo * I_lo + sc_hi * I_hi over its two 16-element halves), then
//   acc = fma(float(I), d * d_x, acc);  acc = fma(corr, s_x, acc)  (the second for unsigned codes)
// with d_x, s_x the activation block's scale and scaled sum (BlockQ8A). Every float input is
// exact (f16 scales times 6-bit integers, |I| < 2^24), so kernels may compute I, d and corr any
// way they like: only the two FMAs per sub-block, in sub-block order, carry rounding.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/q8a.h"
#include "kernels/quant_blocks.h"

namespace gemma::cpu::avx2 {
namespace {

using namespace quant;

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i load_x(const BlockQ8A& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }

// 16 packed nibble bytes -> 32 bytes: low nibbles first, then high nibbles.
inline __m256i unpack_nibbles16(const uint8_t* q) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

// 32 bits -> 32 bytes, byte i = 0x10 if bit i is set (the fifth bit of a Q5 code).
inline __m256i bits_to_0x10(uint32_t bits) {
  const __m256i shuf =
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
  const __m256i mask = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

// --- Sub-block traits: one 32-element sub-block of a weight row as bytes plus its factors. ------
// kSigned: the codes are the signed weight integers (dotted with the sign trick, no corr term);
// else unsigned bytes dotted directly with maddubs, and corr carries the zero point or min.
// kMaxAbs bounds |q| (how many maddubs results an int16 sum can take); kTwoScales: one int8
// scale per 16 elements (Q6_K: sc_lo, sc_hi), else the integer dot is one sum of 32 products.

struct SubBlock {
  __m256i q;
  float d;                   // multiplies the integer dot (per unit of d_x)
  float corr;                // zero point / min: contributes corr * s_x (unsigned codes only)
  int sc_lo = 0, sc_hi = 0;  // kTwoScales: the integer scales of elements 0-15 and 16-31
};

struct SubBlockQ8_0 {
  using Block = BlockQ8_0;
  static constexpr int kSub = 1;
  static constexpr bool kSigned = true;
  static constexpr int kMaxAbs = 128;
  static constexpr bool kTwoScales = false;
  static void load(const Block& b, int, SubBlock& o) {
    o.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    o.d = h2f(b.d);
    o.corr = 0;
  }
};

// Q4_0, Q4_1, Q5_0, Q5_1: nibble codes (plus a fifth bit from qh), an offset or a min.
template <typename B, CodeBits kBits, ZeroPoint kZero>
struct SubBlockNibbles {
  using Block = B;
  static constexpr bool kFive = kBits == CodeBits::k5;
  static constexpr int kSub = 1;
  static constexpr bool kSigned = false;
  static constexpr int kMaxAbs = kFive ? 31 : 15;
  static constexpr bool kTwoScales = false;
  static void load(const Block& b, int, SubBlock& o) {
    o.q = unpack_nibbles16(b.qs);
    if constexpr (kFive) {
      uint32_t qh;
      std::memcpy(&qh, b.qh, 4);
      o.q = _mm256_or_si256(o.q, bits_to_0x10(qh));
    }
    o.d = h2f(b.d);
    if constexpr (kZero == ZeroPoint::kMin) o.corr = h2f(b.m);
    else o.corr = -(kFive ? 16.0f : 8.0f) * o.d;
  }
};

struct SubBlockI8 {  // plain int8 rows (gemma_pytorch int8); the per-row scale is applied after the dot
  struct Block {
    int8_t qs[32];
  };
  static constexpr int kSub = 1;
  static constexpr bool kSigned = true;
  static constexpr int kMaxAbs = 128;
  static constexpr bool kTwoScales = false;
  static void load(const Block& b, int, SubBlock& o) {
    o.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    o.d = 1.0f;
    o.corr = 0;
  }
};

struct SubBlockQ4_0F {  // Q4_0 layout with a float32 scale
  using Block = BlockQ4_0F;
  static constexpr int kSub = 1;
  static constexpr bool kSigned = false;
  static constexpr int kMaxAbs = 15;
  static constexpr bool kTwoScales = false;
  static void load(const Block& b, int, SubBlock& o) {
    o.q = unpack_nibbles16(b.qs);
    o.d = b.d;
    o.corr = -8.0f * b.d;
  }
};
using SubBlockQ4_0 = SubBlockNibbles<BlockQ4_0, CodeBits::k4, ZeroPoint::kOffset>;
using SubBlockQ4_1 = SubBlockNibbles<BlockQ4_1, CodeBits::k4, ZeroPoint::kMin>;
using SubBlockQ5_0 = SubBlockNibbles<BlockQ5_0, CodeBits::k5, ZeroPoint::kOffset>;
using SubBlockQ5_1 = SubBlockNibbles<BlockQ5_1, CodeBits::k5, ZeroPoint::kMin>;

template <typename B, CodeBits kBits>
struct SubBlockKQuant45 {  // Q4_K, Q5_K: value d*sc*q - dmin*m per 32-element sub-block
  using Block = B;
  static constexpr bool kFive = kBits == CodeBits::k5;
  static constexpr int kSub = 8;
  static constexpr bool kSigned = false;
  static constexpr int kMaxAbs = kFive ? 31 : 15;
  static constexpr bool kTwoScales = false;
  static void load(const Block& b, int s, SubBlock& o) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * (s / 2)));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    o.q = (s & 1) ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4);
    if constexpr (kFive) {
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
      const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(qh, s), _mm256_set1_epi8(1));
      o.q = _mm256_or_si256(o.q, _mm256_slli_epi16(bit, 4));
    }
    uint8_t sc, m;
    quant::k_scale_min(s, b.scales, sc, m);
    o.d = h2f(b.d) * sc;
    o.corr = -(h2f(b.dmin) * m);
  }
};
using SubBlockQ4_K = SubBlockKQuant45<BlockQ4_K, CodeBits::k4>;
using SubBlockQ5_K = SubBlockKQuant45<BlockQ5_K, CodeBits::k5>;

struct SubBlockQ6_K {  // value d*sc*(q - 32), one int8 scale per 16 elements
  using Block = BlockQ6_K;
  static constexpr int kSub = 8;
  static constexpr bool kSigned = true;
  static constexpr int kMaxAbs = 32;
  static constexpr bool kTwoScales = true;
  static void load(const Block& b, int s, SubBlock& o) {
    const int h = s / 4, k = s % 4;
    const __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32 * (k & 1)));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    const __m256i lo = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0F));
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(0x03));
    o.q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
    o.d = h2f(b.d);
    o.corr = 0;
    o.sc_lo = b.scales[2 * s];
    o.sc_hi = b.scales[2 * s + 1];
  }
};

}  // namespace
}  // namespace gemma::cpu::avx2

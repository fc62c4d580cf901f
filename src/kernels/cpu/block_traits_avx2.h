// Per-type views of one 32-element sub-block of a weight row for the AVX2 kernels: its codes as
// 32 bytes plus scale and zero point / min (Sub). Shared by the row kernels (matmul_avx2.cpp) and
// the packed prefill GEMM (gemm_avx2.cpp); included only by files compiled with -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/q8a.h"
#include "kernels/quant_blocks.h"

namespace gemma::cpu::avx2 {

using namespace quant;

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// 8 int32 partial sums of u[i] * x[i] (u unsigned 0..127, x signed).
inline __m256i dot_u8_s8(__m256i u, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
}
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

// --- Block traits: one 32-element sub-block of a weight row as bytes plus its scales. -------------
// A sub-block's weights are scale * q (+ corr added once per unit of the activation block's sum),
// with q either unsigned bytes (dotted directly with maddubs) or signed (kSigned: sign trick).
// kMaxAbs bounds |q| (how many maddubs results an int16 sum can take); kHalfScales: scale lanes
// 0-3 and 4-7 differ (one scale per 16 elements, Q6_K), else the scale is one broadcast value.

struct Sub {
  __m256i q;
  __m256 scale;  // per-lane multiplier of the 8 int32 partial sums (lanes 0-3: elements 0-15)
  float corr;    // zero point / min: contributes corr * s (s = d_x * Σ q_x of the activation block)
};

struct TQ8_0 {
  using Block = BlockQ8_0;
  static constexpr int kSub = 1;
  static constexpr bool kSigned = true;
  static constexpr int kMaxAbs = 128;
  static constexpr bool kHalfScales = false;
  static void load(const Block& b, int, Sub& o) {
    o.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    o.scale = _mm256_set1_ps(h2f(b.d));
    o.corr = 0;
  }
};

template <typename B, bool kFive, bool kMin>
struct TLegacy {  // Q4_0, Q4_1, Q5_0, Q5_1
  using Block = B;
  static constexpr int kSub = 1;
  static constexpr bool kSigned = false;
  static constexpr int kMaxAbs = kFive ? 31 : 15;
  static constexpr bool kHalfScales = false;
  static void load(const Block& b, int, Sub& o) {
    o.q = unpack_nibbles16(b.qs);
    if constexpr (kFive) {
      uint32_t qh;
      std::memcpy(&qh, b.qh, 4);
      o.q = _mm256_or_si256(o.q, bits_to_0x10(qh));
    }
    const float d = h2f(b.d);
    o.scale = _mm256_set1_ps(d);
    if constexpr (kMin) o.corr = h2f(b.m);
    else o.corr = -(kFive ? 16.0f : 8.0f) * d;
  }
};
struct TI8 {  // plain int8 rows (gemma_pytorch int8); the per-row scale is applied after the dot
  struct Block {
    int8_t qs[32];
  };
  static constexpr int kSub = 1;
  static constexpr bool kSigned = true;
  static constexpr int kMaxAbs = 128;
  static constexpr bool kHalfScales = false;
  static void load(const Block& b, int, Sub& o) {
    o.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    o.scale = _mm256_set1_ps(1.0f);
    o.corr = 0;
  }
};

struct TQ4_0F {  // Q4_0 layout with a float32 scale
  using Block = BlockQ4_0F;
  static constexpr int kSub = 1;
  static constexpr bool kSigned = false;
  static constexpr int kMaxAbs = 15;
  static constexpr bool kHalfScales = false;
  static void load(const Block& b, int, Sub& o) {
    o.q = unpack_nibbles16(b.qs);
    o.scale = _mm256_set1_ps(b.d);
    o.corr = -8.0f * b.d;
  }
};
using TQ4_0 = TLegacy<BlockQ4_0, false, false>;
using TQ4_1 = TLegacy<BlockQ4_1, false, true>;
using TQ5_0 = TLegacy<BlockQ5_0, true, false>;
using TQ5_1 = TLegacy<BlockQ5_1, true, true>;

template <typename B, bool kFive>
struct TK45 {  // Q4_K, Q5_K: value d*sc*q - dmin*m per 32-element sub-block
  using Block = B;
  static constexpr int kSub = 8;
  static constexpr bool kSigned = false;
  static constexpr int kMaxAbs = kFive ? 31 : 15;
  static constexpr bool kHalfScales = false;
  static void load(const Block& b, int s, Sub& o) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * (s / 2)));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    o.q = (s & 1) ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4);
    if constexpr (kFive) {
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
      const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(qh, s), _mm256_set1_epi8(1));
      o.q = _mm256_or_si256(o.q, _mm256_slli_epi16(bit, 4));
    }
    uint8_t sc, m;
    k_scale_min(s, b.scales, sc, m);
    o.scale = _mm256_set1_ps(h2f(b.d) * sc);
    o.corr = -h2f(b.dmin) * m;
  }
};
using TQ4_K = TK45<BlockQ4_K, false>;
using TQ5_K = TK45<BlockQ5_K, true>;

struct TQ6_K {  // value d*sc*(q - 32), one int8 scale per 16 elements
  using Block = BlockQ6_K;
  static constexpr int kSub = 8;
  static constexpr bool kSigned = true;
  static constexpr int kMaxAbs = 32;
  static constexpr bool kHalfScales = true;
  static void load(const Block& b, int s, Sub& o) {
    const int h = s / 4, k = s % 4;
    const __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32 * (k & 1)));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    const __m256i lo = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0F));
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(0x03));
    o.q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
    const int8_t* sc = b.scales + 8 * h + 2 * k;
    const float d = h2f(b.d);
    o.scale = _mm256_setr_ps(d * sc[0], d * sc[0], d * sc[0], d * sc[0], d * sc[1], d * sc[1], d * sc[1], d * sc[1]);
    o.corr = 0;
  }
};

}  // namespace gemma::cpu::avx2

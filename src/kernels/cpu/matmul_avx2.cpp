// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; selected at run time).
// Quantized weights: unpack each 32-element block to bytes, multiply with the int8 activations
// by _mm256_maddubs_epi16 (u8 x s8 -> s16 pairs), widen with _mm256_madd_epi16, and accumulate
// in float with one fused multiply-add per block. Weight types with a zero point (Q4_0 −8,
// Q5_0 −16) or a min (Q4_1, Q5_1, Q4_K, Q5_K) keep the unsigned codes and correct with the
// activation block sum s; signed types (Q8_0, Q6_K) use the sign trick.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/dequant.h"
#include "kernels/quant_blocks.h"

namespace gemma::cpu {

using namespace quant;

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// 8 int32 partial sums of u[i] * x[i] (u unsigned 0..127, x signed).
inline __m256i dot_u8_s8(__m256i u, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
}
// Same for signed w (sign trick: |w| * sign(x, w)).
inline __m256i dot_s8_s8(__m256i w, __m256i x) {
  return dot_u8_s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
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
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                          0x0303030303030303);
  const __m256i mask = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

float dot_q8_0(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(w);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs));
    const __m256 p = _mm256_cvtepi32_ps(dot_s8_s8(q, load_x(x[i])));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i].d) * x[i].d), p, acc);
  }
  return hsum(acc);
}

// Blocks whose value is d*(u - offset): Σ = d*(dx*isum - offset*s).
template <typename Block, int kOffset, bool kFive>
float dot_offset(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const Block*>(w);
  __m256 acc = _mm256_setzero_ps();
  float corr = 0;
  for (int64_t i = 0; i < nb; ++i) {
    __m256i u = unpack_nibbles16(b[i].qs);
    if constexpr (kFive) {
      uint32_t qh;
      std::memcpy(&qh, b[i].qh, 4);
      u = _mm256_or_si256(u, bits_to_0x10(qh));
    }
    const float d = h2f(b[i].d);
    const __m256 p = _mm256_cvtepi32_ps(dot_u8_s8(u, load_x(x[i])));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d * x[i].d), p, acc);
    corr += d * x[i].s;
  }
  return hsum(acc) - static_cast<float>(kOffset) * corr;
}

// Blocks whose value is d*u + m: Σ = d*dx*isum + m*s.
template <typename Block, bool kFive>
float dot_min(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const Block*>(w);
  __m256 acc = _mm256_setzero_ps();
  float corr = 0;
  for (int64_t i = 0; i < nb; ++i) {
    __m256i u = unpack_nibbles16(b[i].qs);
    if constexpr (kFive) {
      uint32_t qh;
      std::memcpy(&qh, b[i].qh, 4);
      u = _mm256_or_si256(u, bits_to_0x10(qh));
    }
    const __m256 p = _mm256_cvtepi32_ps(dot_u8_s8(u, load_x(x[i])));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i].d) * x[i].d), p, acc);
    corr += h2f(b[i].m) * x[i].s;
  }
  return hsum(acc) + corr;
}

// Q4_K / Q5_K: 8 sub-blocks of 32 per super-block, value d*sc*u - dmin*m.
template <typename Block, bool kFive>
float dot_k45(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const Block*>(w);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float corr = 0;
  for (int64_t i = 0; i < nb / 8; ++i) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) k_scale_min(j, b[i].scales, sc[j], mn[j]);
    __m256i qh;
    if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh));
    const BlockQ8A* xb = x + 8 * i;
    for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * c));
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kFive) {
        const __m256i one = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
      }
      const BlockQ8A& x0 = xb[2 * c];
      const BlockQ8A& x1 = xb[2 * c + 1];
      const __m256 p0 = _mm256_cvtepi32_ps(dot_u8_s8(lo, load_x(x0)));
      const __m256 p1 = _mm256_cvtepi32_ps(dot_u8_s8(hi, load_x(x1)));
      acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * c] * x0.d), p0, acc);
      acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * c + 1] * x1.d), p1, acc);
      corr += dmin * (mn[2 * c] * x0.s + mn[2 * c + 1] * x1.s);
    }
  }
  return hsum(acc) - corr;
}

// Q6_K: value d*sc*(q - 32), q 6-bit, one int8 scale per 16 elements.
float dot_q6_k(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(w);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m2 = _mm256_set1_epi8(0x03);
  const __m256i k32 = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb / 8; ++i) {
    const float d = h2f(b[i].d);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh + 32 * h));
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
      for (int k = 0; k < 4; ++k) {
        const BlockQ8A& xb = x[8 * i + 4 * h + k];
        const int8_t* sc = b[i].scales + 8 * h + 2 * k;
        // Lanes 0-3 of the int32 sums cover elements 0..15, lanes 4-7 elements 16..31.
        const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(d * xb.d),
                                           _mm256_setr_ps(sc[0], sc[0], sc[0], sc[0], sc[1], sc[1], sc[1], sc[1]));
        const __m256i p = dot_s8_s8(_mm256_sub_epi8(q[k], k32), load_x(xb));
        acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc);
      }
    }
  }
  return hsum(acc);
}

using DotQ = float (*)(const uint8_t*, const BlockQ8A*, int64_t);

template <DotQ dot>
void rows_q(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  const auto* x = static_cast<const BlockQ8A*>(xv);
  const int64_t nb = w.cols / 32;
  // Row tiles keep a few weight rows hot in L1 while every token of the batch passes over them.
  constexpr int64_t kTile = 8;
  for (int64_t rt = r0; rt < r1; rt += kTile) {
    const int64_t re = rt + kTile < r1 ? rt + kTile : r1;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = rt; r < re; ++r) y[t * ldy + r] = dot(w.row(r), x + t * nb, nb);
  }
}

inline __m256 load8_f32(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
inline __m256 load8_f16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8_bf16(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <int kBytes, __m256 (*load8)(const uint8_t*), float (*load1)(const uint8_t*)>
void rows_float(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  const auto* x = static_cast<const float*>(xv);
  const int64_t c8 = w.cols / 8 * 8;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
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
      q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
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

void rows_dequantized(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y,
                      int64_t ldy) {
  const auto* x = static_cast<const float*>(xv);
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(w.cols));
  const int64_t c8 = w.cols / 8 * 8;
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_row(w.type, w.row(r), row.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      __m256 acc = _mm256_setzero_ps();
      int64_t c = 0;
      for (; c < c8; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(row.data() + c), _mm256_loadu_ps(xt + c), acc);
      float s = hsum(acc);
      for (; c < w.cols; ++c) s += row[static_cast<size_t>(c)] * xt[c];
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
  k.rows[static_cast<int>(DType::Q8_0)] = rows_q<dot_q8_0>;
  k.rows[static_cast<int>(DType::Q4_0)] = rows_q<dot_offset<BlockQ4_0, 8, false>>;
  k.rows[static_cast<int>(DType::Q5_0)] = rows_q<dot_offset<BlockQ5_0, 16, true>>;
  k.rows[static_cast<int>(DType::Q4_1)] = rows_q<dot_min<BlockQ4_1, false>>;
  k.rows[static_cast<int>(DType::Q5_1)] = rows_q<dot_min<BlockQ5_1, true>>;
  k.rows[static_cast<int>(DType::Q4_K)] = rows_q<dot_k45<BlockQ4_K, false>>;
  k.rows[static_cast<int>(DType::Q5_K)] = rows_q<dot_k45<BlockQ5_K, true>>;
  k.rows[static_cast<int>(DType::Q6_K)] = rows_q<dot_q6_k>;
  k.quantize_q8a = quantize_q8a;
  k.rows_dequantized = rows_dequantized;
  return k;
}

}  // namespace

const IsaKernels* isa_avx2() {
  static const IsaKernels k = make_avx2();
  return &k;
}

}  // namespace gemma::cpu

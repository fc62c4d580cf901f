// The packed prefill GEMM (see gemm_avx2.h). Per block of 32 inputs and 8 rows:
//   q[g]  (g = 0..7): bytes 4g..4g+3 of rows 0..7 (dword lane i = row i); for signed codes
//                     |code| here and the codes themselves in sign[g] (maddubs needs one
//                     unsigned operand: |w| * sign(x, w) = w * x)
//   d[8], c[8]:       per-row factors d and corr of the block sum (block_traits_avx2.h);
//   sc_lo, sc_hi[8]:  Q6_K's integer scales of elements 0-15 and 16-31
// The micro-kernel keeps the 8 rows' sums of RN tokens in RN registers: per token and block,
// 8 broadcasts + 8 maddubs + int16 adds (as many as the code range allows without overflow),
// one madd per group, then one or two FMAs.
#include "kernels/cpu/gemm_avx2.h"

#include <immintrin.h>

#include <cstdlib>

#include "kernels/cpu/avx2_util.h"
#include "kernels/cpu/block_traits_avx2.h"

namespace gemma::cpu::avx2 {

namespace {

template <bool kSigned>
struct PackedBlock {
  __m256i q[8];
  float d[8];
  float c[8];
};
template <>
struct PackedBlock<true> {
  __m256i q[8];
  __m256i sign[8];
  float d[8];
  float c[8];
  float sc_lo[8];
  float sc_hi[8];
};

// Rows r..r+7 of w, every 32-element block, into out[0 .. w.cols / 32).
template <typename T>
void pack8(const WeightMatrix& w, int64_t r, PackedBlock<T::kSigned>* out) {
  using Block = typename T::Block;
  const Block* rows[8];
  for (int i = 0; i < 8; ++i) rows[i] = reinterpret_cast<const Block*>(row_ptr(w, r + i));
  const int64_t nb = w.cols / 32;
  for (int64_t b = 0; b < nb; ++b) {
    PackedBlock<T::kSigned>& o = out[b];
    __m256 v[8];
    for (int i = 0; i < 8; ++i) {
      SubBlock s;
      T::load(rows[i][b / T::kSub], static_cast<int>(b % T::kSub), s);
      v[i] = _mm256_castsi256_ps(s.q);
      o.d[i] = s.d;
      o.c[i] = s.corr;
      if constexpr (T::kTwoScales) {
        o.sc_lo[i] = static_cast<float>(s.sc_lo);
        o.sc_hi[i] = static_cast<float>(s.sc_hi);
      }
    }
    transpose8(v);
    for (int g = 0; g < 8; ++g) {
      const __m256i q = _mm256_castps_si256(v[g]);
      if constexpr (T::kSigned) {
        o.sign[g] = q;
        o.q[g] = _mm256_sign_epi8(q, q);
      } else {
        o.q[g] = q;
      }
    }
  }
}

// 8 rows x RN tokens (t..t+RN-1) over every block of a packed tile.
template <typename T, int RN>
__attribute__((always_inline)) inline void packed_tile(const PackedBlock<T::kSigned>* p, int64_t nb, const BlockQ8A* x,
                                                       int64_t x_stride, int64_t t, float* y, int64_t ldy) {
  // Consecutive maddubs results an int16 lane can hold: each is a sum of 2 products |q| * 127.
  constexpr int kGroup = static_cast<int>(min64(8, 32767 / (2 * 127 * T::kMaxAbs)));
  static_assert(kGroup >= 1 && 8 % kGroup == 0 && (!T::kTwoScales || kGroup == 4));
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[RN];
  for (int j = 0; j < RN; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const PackedBlock<T::kSigned>& pb = p[b];
    const __m256 d8 = _mm256_load_ps(pb.d), c8 = _mm256_load_ps(pb.c);
#pragma GCC unroll 4
    for (int j = 0; j < RN; ++j) {
      const BlockQ8A& xb = x[(t + j) * x_stride + b];
      __m256i part[8 / kGroup];
#pragma GCC unroll 8
      for (int k = 0; k < 8 / kGroup; ++k) {
        __m256i s16 = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = k * kGroup; g < (k + 1) * kGroup; ++g) {
          int32_t x4;
          std::memcpy(&x4, xb.qs + 4 * g, 4);
          __m256i xv = _mm256_set1_epi32(x4);
          if constexpr (T::kSigned) xv = _mm256_sign_epi8(xv, _mm256_load_si256(&pb.sign[g]));
          const __m256i prod = _mm256_maddubs_epi16(_mm256_load_si256(&pb.q[g]), xv);
          s16 = g == k * kGroup ? prod : _mm256_add_epi16(s16, prod);
        }
        part[k] = _mm256_madd_epi16(s16, ones);
      }
      const __m256 dx = _mm256_set1_ps(xb.d);
      if constexpr (T::kTwoScales) {  // exact: sc_lo * I_lo + sc_hi * I_hi < 2^24
        const __m256 lo = _mm256_cvtepi32_ps(part[0]), hi = _mm256_cvtepi32_ps(part[1]);
        const __m256 dot = _mm256_fmadd_ps(lo, _mm256_load_ps(pb.sc_lo), _mm256_mul_ps(hi, _mm256_load_ps(pb.sc_hi)));
        acc[j] = _mm256_fmadd_ps(dot, _mm256_mul_ps(d8, dx), acc[j]);
      } else {
        __m256i sum = part[0];
        for (int k = 1; k < 8 / kGroup; ++k) sum = _mm256_add_epi32(sum, part[k]);
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(d8, dx), acc[j]);
        if constexpr (!T::kSigned) acc[j] = _mm256_fmadd_ps(c8, _mm256_set1_ps(xb.s), acc[j]);
      }
    }
  }
  for (int j = 0; j < RN; ++j) _mm256_storeu_ps(y + (t + j) * ldy, acc[j]);
}

template <typename T>
void gemm_packed_typed(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y,
                       int64_t ldy) {
  const auto* x = static_cast<const BlockQ8A*>(xv);
  const int64_t nb = w.cols / 32;
  thread_local ScratchBuffer packed_buf;
  PackedBlock<T::kSigned>* packed = packed_buf.get<PackedBlock<T::kSigned>>(static_cast<size_t>(nb));
  // Tokens in chunks whose activations stay in L2 (with the packed tile) while every row tile
  // of the range passes over them; each tile is packed once per chunk.
  const int64_t chunk = max64(16, (384 << 10) / (nb * static_cast<int64_t>(sizeof(BlockQ8A))));
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int64_t t1 = min64(n, t0 + chunk);
    for (int64_t r = r0; r < r1; r += 8) {
      pack8<T>(w, r, packed);
      int64_t t = t0;
      for (; t + 4 <= t1; t += 4) packed_tile<T, 4>(packed, nb, x, nb, t, y + r, ldy);
      switch (t1 - t) {
        case 3: packed_tile<T, 3>(packed, nb, x, nb, t, y + r, ldy); break;
        case 2: packed_tile<T, 2>(packed, nb, x, nb, t, y + r, ldy); break;
        case 1: packed_tile<T, 1>(packed, nb, x, nb, t, y + r, ldy); break;
        default: break;
      }
    }
  }
}

// 8 consecutive weights of a float row, as float32.
template <DType kType>
inline __m256 widen8(const uint8_t* row, int64_t c) {
  if constexpr (kType == DType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c));
  if constexpr (kType == DType::F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));  // BF16
}

// Rows r..r+8*NV-1, columns [c0, c0 + kc), into out[(c - c0) * 8 * NV + i] (column-major).
template <DType kType, int NV>
void pack_float(const WeightMatrix& w, int64_t r, int64_t c0, int64_t kc, float* out) {
  for (int v = 0; v < NV; ++v) {
    const uint8_t* rows[8];
    for (int i = 0; i < 8; ++i) rows[i] = row_ptr(w, r + 8 * v + i);
    for (int64_t c = 0; c < kc; c += 8) {
      __m256 t[8];
      for (int i = 0; i < 8; ++i) t[i] = widen8<kType>(rows[i], c0 + c);
      transpose8(t);  // t[k] = column c + k of the 8 rows
      for (int k = 0; k < 8; ++k) _mm256_storeu_ps(out + (c + k) * 8 * NV + 8 * v, t[k]);
    }
  }
}

// RN tokens x 8*NV rows over kc packed columns; y += (accumulate) or y = the sums.
template <int NV, int RN>
__attribute__((always_inline)) inline void float_tile(const float* p, int64_t kc, const float* x, int64_t ldx, float* y,
                                                      int64_t ldy, bool accumulate) {
  __m256 acc[RN][NV];
#pragma GCC unroll 8
  for (int j = 0; j < RN; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[j][v] = accumulate ? _mm256_loadu_ps(y + j * ldy + 8 * v) : _mm256_setzero_ps();
  for (int64_t c = 0; c < kc; ++c) {
    __m256 wv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) wv[v] = _mm256_loadu_ps(p + c * 8 * NV + 8 * v);
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) {
      const __m256 xb = _mm256_broadcast_ss(x + j * ldx + c);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[j][v] = _mm256_fmadd_ps(xb, wv[v], acc[j][v]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < RN; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(y + j * ldy + 8 * v, acc[j][v]);
}

template <int NV>
void float_tokens(const float* p, int64_t kc, const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy,
                  bool accumulate) {
  int64_t t = 0;
  for (; t + 6 <= n; t += 6) float_tile<NV, 6>(p, kc, x + t * ldx, ldx, y + t * ldy, ldy, accumulate);
  switch (n - t) {
    case 5: float_tile<NV, 5>(p, kc, x + t * ldx, ldx, y + t * ldy, ldy, accumulate); break;
    case 4: float_tile<NV, 4>(p, kc, x + t * ldx, ldx, y + t * ldy, ldy, accumulate); break;
    case 3: float_tile<NV, 3>(p, kc, x + t * ldx, ldx, y + t * ldy, ldy, accumulate); break;
    case 2: float_tile<NV, 2>(p, kc, x + t * ldx, ldx, y + t * ldy, ldy, accumulate); break;
    case 1: float_tile<NV, 1>(p, kc, x + t * ldx, ldx, y + t * ldy, ldy, accumulate); break;
    default: break;
  }
}

template <DType kType>
void gemm_float_typed(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n, float* y, int64_t ldy) {
  // Columns in blocks of kKc: a packed 16-row tile (16 KiB) stays in L1 and a chunk's activations
  // (256 KiB) in L2; every block after the first adds to the sums in y. 256 columns x 256 tokens
  // beat wider column blocks with fewer tokens: packing, not the tile, is what larger token chunks
  // save (measurements: docs/benchmarks.md, "Measurements cited from kernel comments").
  constexpr int64_t kKc = 256, kTokens = 256;
  thread_local ScratchBuffer packed_buf;
  float* packed = packed_buf.get<float>(static_cast<size_t>(16 * kKc));
  for (int64_t t0 = 0; t0 < n; t0 += kTokens) {
    const int64_t nt = min64(kTokens, n - t0);
    for (int64_t c0 = 0; c0 < w.cols; c0 += kKc) {
      const int64_t kc = min64(kKc, w.cols - c0);
      const float* xc = x + t0 * w.cols + c0;
      float* yc = y + t0 * ldy;
      int64_t r = r0;
      for (; r + 16 <= r1; r += 16) {
        pack_float<kType, 2>(w, r, c0, kc, packed);
        float_tokens<2>(packed, kc, xc, w.cols, nt, yc + r, ldy, c0 > 0);
      }
      for (; r + 8 <= r1; r += 8) {
        pack_float<kType, 1>(w, r, c0, kc, packed);
        float_tokens<1>(packed, kc, xc, w.cols, nt, yc + r, ldy, c0 > 0);
      }
    }
  }
}

}  // namespace

void gemm_float(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n, float* y, int64_t ldy) {
  switch (w.type) {
    case DType::F32: return gemm_float_typed<DType::F32>(w, r0, r1, x, n, y, ldy);
    case DType::F16: return gemm_float_typed<DType::F16>(w, r0, r1, x, n, y, ldy);
    default: return gemm_float_typed<DType::BF16>(w, r0, r1, x, n, y, ldy);
  }
}

namespace {

template <typename T>
void pack16_vnni_typed(const WeightMatrix& w, int64_t r, VnniBlock16* out) {
  using Block = typename T::Block;
  const int64_t nb = w.cols / 32;
  for (int half = 0; half < 2; ++half) {
    const Block* rows[8];
    for (int i = 0; i < 8; ++i) rows[i] = reinterpret_cast<const Block*>(row_ptr(w, r + 8 * half + i));
    for (int64_t b = 0; b < nb; ++b) {
      VnniBlock16& o = out[b];
      __m256 v[8];
      for (int i = 0; i < 8; ++i) {
        SubBlock s;
        T::load(rows[i][b / T::kSub], static_cast<int>(b % T::kSub), s);
        __m256i q = s.q;
        if constexpr (T::kTwoScales) {  // Q6_K: q - 32 -> q
          q = _mm256_add_epi8(q, _mm256_set1_epi8(32));
        } else if constexpr (T::kSigned) {  // Q8_0, int8: w -> w + 128
          q = _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)));
        }
        v[i] = _mm256_castsi256_ps(q);
        o.d[8 * half + i] = s.d;
        o.corr[8 * half + i] = s.corr;
        o.sc_lo[8 * half + i] = static_cast<float>(s.sc_lo);
        o.sc_hi[8 * half + i] = static_cast<float>(s.sc_hi);
      }
      transpose8(v);  // v[g] lane i = dword g of row i
      for (int g = 0; g < 8; ++g) _mm256_storeu_ps(reinterpret_cast<float*>(&o.q[g][8 * half]), v[g]);
    }
  }
}

// Calls f.template operator()<Traits>() with the sub-block traits of w's type.
template <typename F>
void with_traits(DType type, F&& f) {
  switch (type) {
    case DType::Q8_0: return f.template operator()<SubBlockQ8_0>();
    case DType::Q4_0: return f.template operator()<SubBlockQ4_0>();
    case DType::Q4_1: return f.template operator()<SubBlockQ4_1>();
    case DType::Q5_0: return f.template operator()<SubBlockQ5_0>();
    case DType::Q5_1: return f.template operator()<SubBlockQ5_1>();
    case DType::Q4_0F: return f.template operator()<SubBlockQ4_0F>();
    case DType::I8: return f.template operator()<SubBlockI8>();
    case DType::Q4_K: return f.template operator()<SubBlockQ4_K>();
    case DType::Q5_K: return f.template operator()<SubBlockQ5_K>();
    case DType::Q6_K: return f.template operator()<SubBlockQ6_K>();
    default: std::abort();
  }
}

}  // namespace

void pack16_vnni(const WeightMatrix& w, int64_t r, VnniBlock16* out) {
  with_traits(w.type, [&]<typename T>() { pack16_vnni_typed<T>(w, r, out); });
}

void gemm_packed(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y, int64_t ldy) {
  with_traits(w.type, [&]<typename T>() { gemm_packed_typed<T>(w, r0, r1, x, n, y, ldy); });
}

}  // namespace gemma::cpu::avx2

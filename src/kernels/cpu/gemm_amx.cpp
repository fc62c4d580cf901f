// BF16 prefill on AMX tiles. One tdpbf16ps multiplies a 16 x 32 bfloat16 tile of activations by
// a 32 x 16 tile of weights into 16 x 16 float32 sums: 8192 multiply-adds, where vdpbf16ps does
// 32. The accumulator tiles are rows of y itself (16 tokens x 16 weight rows, row stride ldy), so
// they load and store straight from the output with no epilogue.
//
// Layout. The B tile (weights) is 16 column pairs x 16 rows as dwords, pair k of row i at dword
// 16k + i: exactly what pack16x16 makes for the AVX512_BF16 GEMM. The A tile (activations) is 16
// tokens x 16 column pairs, read from the bfloat16 activations with their row stride. Per step
// of 32 columns, 2 A and 2 B tiles feed 4 accumulators: 32 rows x 32 tokens.
//
// The tiles need the OS's permission (arch_prctl; cpu_has_amx() asks once) and a tile
// configuration loaded in each thread that uses them (configure_tiles(), once per thread). The
// configuration is a constant in read-only memory: a stack copy may be dropped by the compiler
// before ldtilecfg reads it (llama.cpp's AMX path dies with SIGILL that way).
#include "kernels/cpu/gemm_amx.h"

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/avx512_util.h"

namespace gemma::cpu {
namespace {

// Palette 1: 8 tiles of 16 rows x 64 bytes. Tiles 0-3 accumulate (C[j][v] = 2j + v), 4-5 are
// the A tiles of token groups j, 6-7 the B tiles of row groups v.
struct alignas(64) TileConfig {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
constexpr TileConfig kTileConfig = {1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};
static_assert(sizeof(TileConfig) == 64);

void configure_tiles() {
  thread_local bool done = false;
  if (done) return;
  _tile_loadconfig(&kTileConfig);
  done = true;
}

// Adds the first `valid` tokens of a 16 x 16 tile stored in scratch to y (or stores them).
GE512_INLINE void add_partial(const float* scratch, float* y, int64_t ldy, int64_t valid, bool accumulate) {
  for (int64_t t = 0; t < valid; ++t)
    for (int i = 0; i < 16; ++i) y[t * ldy + i] = (accumulate ? y[t * ldy + i] : 0.0f) + scratch[t * 16 + i];
}

// GCC's tile intrinsics paste the tile number into the instruction text, so they take literal
// numbers: macros, not templates. An accumulator tile T over 16 tokens of y starts from y when all
// 16 are there and a column block before this one added to y, else from zero; it ends in y
// directly when all 16 are there, else through scratch.
#define GE_AMX_START(T, full, yp)                            \
  do {                                                       \
    if ((full) && accumulate) _tile_loadd(T, (yp), ldy * 4); \
    else _tile_zero(T);                                      \
  } while (0)
#define GE_AMX_FINISH(T, full, yp, valid)                   \
  do {                                                      \
    if (full) {                                             \
      _tile_stored(T, (yp), ldy * 4);                       \
    } else {                                                \
      _tile_stored(T, scratch, 64);                         \
      add_partial(scratch, (yp), ldy, (valid), accumulate); \
    }                                                       \
  } while (0)

// Rows r..r+16*rv-1 (packed: row group v at packed + v * pstride dwords) x tokens t..t+valid-1
// (valid <= 32; activation rows past `valid` up to the tile are zeros), kp column pairs.
void tile_32x32(const uint32_t* packed, int64_t pstride, int rv, const uint16_t* xa, int64_t kc, int64_t kp,
                int64_t valid, float* y, int64_t ldy, bool accumulate) {
  alignas(64) float scratch[16 * 16];
  const bool j1 = valid > 16, v1 = rv == 2;
  const bool full0 = valid >= 16, full1 = valid >= 32;
  const int64_t valid0 = valid < 16 ? valid : 16, valid1 = valid - 16;
  GE_AMX_START(0, full0, y);
  if (v1) GE_AMX_START(1, full0, y + 16);
  if (j1) GE_AMX_START(2, full1, y + 16 * ldy);
  if (j1 && v1) GE_AMX_START(3, full1, y + 16 * ldy + 16);
  for (int64_t k = 0; k < kp; k += 16) {
    _tile_loadd(4, xa + 2 * k, kc * 2);
    _tile_loadd(6, packed + 16 * k, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (v1) {
      _tile_loadd(7, packed + pstride + 16 * k, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if (j1) {
      _tile_loadd(5, xa + 16 * kc + 2 * k, kc * 2);
      _tile_dpbf16ps(2, 5, 6);
      if (v1) _tile_dpbf16ps(3, 5, 7);
    }
  }
  GE_AMX_FINISH(0, full0, y, valid0);
  if (v1) GE_AMX_FINISH(1, full0, y + 16, valid0);
  if (j1) GE_AMX_FINISH(2, full1, y + 16 * ldy, valid1);
  if (j1 && v1) GE_AMX_FINISH(3, full1, y + 16 * ldy + 16, valid1);
}

#undef GE_AMX_START
#undef GE_AMX_FINISH

}  // namespace

// Columns in blocks of kKc (the packed 32 rows, 64 KiB, stay in L2 with the activations) and
// tokens in chunks of kTokens (their bfloat16 activations for one column block, 512 KiB); every
// column block after the first adds to y. The next row group's weights are prefetched into L2 a
// share per token group, as in the AVX512_BF16 GEMM.
void gemm_bf16_amx(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n, float* y, int64_t ldy) {
  constexpr int64_t kKc = 1024, kTokens = 256, kStride = 16 * kKc / 2;
  configure_tiles();
  thread_local ActivationBuffer packed_buf, x_buf;
  auto* packed = reinterpret_cast<uint32_t*>(packed_buf.get(2 * kStride * 4));
  auto* xb = reinterpret_cast<uint16_t*>(x_buf.get(kTokens * kKc * 2));
  for (int64_t t0 = 0; t0 < n; t0 += kTokens) {
    const int64_t nt = n - t0 < kTokens ? n - t0 : kTokens;
    const int64_t nt_tiles = (nt + 15) / 16 * 16;
    for (int64_t c0 = 0; c0 < w.cols; c0 += kKc) {
      const int64_t kc = w.cols - c0 < kKc ? w.cols - c0 : kKc;  // a multiple of 32
      round_to_bf16(x + t0 * w.cols, w.cols, nt, c0, kc, xb);
      std::memset(xb + nt * kc, 0, static_cast<size_t>((nt_tiles - nt) * kc) * 2);  // the last tile's padding
      for (int64_t r = r0; r < r1;) {
        const int rv = r + 32 <= r1 ? 2 : 1;
        pack_row_groups(w, r, rv, c0, kc, packed, kStride);
        const int64_t next_rows = r1 - (r + 16 * rv) < 32 ? r1 - (r + 16 * rv) : 32;
        const int64_t groups = (nt + 31) / 32;
        for (int64_t t = 0, g = 0; t < nt; t += 32, ++g) {
          prefetch_rows_share(w, r + 16 * rv, next_rows, c0, kc, g, groups);
          tile_32x32(packed, kStride, rv, xb + t * kc, kc, kc / 2, nt - t < 32 ? nt - t : 32, y + (t0 + t) * ldy + r,
                     ldy, c0 > 0);
        }
        r += 16 * rv;
      }
    }
  }
}

}  // namespace gemma::cpu

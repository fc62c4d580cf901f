// Prefill GEMM for block-quantized weights (AVX2): weight rows are repacked, 8 at a time, into a
// layout where one 256-bit register holds 4 consecutive codes of each of the 8 rows. A token's 4
// activation bytes broadcast to all lanes then give, through maddubs + madd, one int32 per row
// with no horizontal reductions, which the decode kernels (matmul_avx2.cpp) need because they
// read the file's layout as is. Packing costs about as much as 2-3 tokens of work, so the row
// kernels switch to this path from kGemmMinTokens tokens on.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace gemma::cpu::avx2 {

inline constexpr int64_t kGemmMinTokens = 8;

// y[t * ldy + r] = W[r] · x_t for rows [r0, r1), tokens [0, n); x: BlockQ8A [n][W.cols / 32], W
// of a block-quantized type. r1 - r0 is a multiple of 8: the row kernels that call this finish
// leftover rows themselves. Sums in the batch-invariant order of block_traits_avx2.h.
void gemm_packed(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y, int64_t ldy);

// The same for float weights (F32, F16, BF16; w.cols a multiple of 8) against float activations:
// 16 rows at a time widened to float32 and stored column-major, so a 6-token x 16-row tile keeps
// 12 accumulators in registers and does 12 FMAs per 2 weight loads and 6 broadcasts.
void gemm_float(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n, float* y, int64_t ldy);

// For the AVX-512 VNNI GEMM (matmul_avx512.cpp, which must not include the AVX2 block traits):
// rows r..r+15, each 32-element block as unsigned codes in vpdpbusd's layout, q[g][i] = bytes
// 4g..4g+3 of row i's codes, and the factors of the block sum (block_traits_avx2.h) per row: d,
// corr (unsigned codes), and for Q6_K the two integer scales. Signed codes are stored biased, so
// the exact integer dot is the stored one minus 128 * Σ x (Q8_0, int8) or 32 * Σ x per
// 16-element half (Q6_K, whose codes are q + 32 = the file's code).
struct VnniBlock16 {
  uint32_t q[8][16];
  float d[16];
  float corr[16];
  float sc_lo[16];
  float sc_hi[16];
};
// Every block of rows r..r+15 of w (a block-quantized type the AVX2 kernels take) into out[0..cols/32).
void pack16_vnni(const WeightMatrix& w, int64_t r, VnniBlock16* out);

}  // namespace gemma::cpu::avx2

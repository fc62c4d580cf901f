// Prefill GEMMs on Intel AMX tiles (Sapphire Rapids and later), in gemm_amx.cpp, built with the
// AMX flags and called only where cpu_has_amx() says the CPU and the OS allow the tiles.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace gemma::cpu {

// y[t * ldy + r] = W[r] · x_t for BF16 rows [r0, r1) (r1 - r0 a multiple of 16, W.cols of 32) and
// float tokens x[t * W.cols], t in [0, n). Activations are rounded to bfloat16, as by the
// AVX512_BF16 GEMM; products are exact and sums float32.
void gemm_bf16_amx(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n, float* y, int64_t ldy);

}  // namespace gemma::cpu

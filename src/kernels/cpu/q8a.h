// Activations quantized for integer dot products with block-quantized weights: blocks of 32
// int8 values with a float scale and the scaled sum (for the zero-point/min terms of Q4_0, Q4_1,
// Q5_*, Q4_K, Q5_K). One format serves every weight type because every ggml sub-block we meet is
// 32 (or 16) elements long and aligned to 32.
#pragma once

#include <cstdint>

namespace gemma::cpu {

struct BlockQ8A {
  float d;  // x[i] ≈ d * qs[i]
  float s;  // d * Σ qs[i]
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8A) == 40);

}  // namespace gemma::cpu

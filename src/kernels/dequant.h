// Reference dequantization of every stored type to float32, bit-exact with ggml's
// dequantize_row_* (compiled with -ffp-contract=off; docs/spec/formats.md §7.4). Used by loaders that must
// convert, by the embedding lookup, and as the truth the fast kernels are tested against.
#pragma once

#include <cstdint>

#include "formats/dtype.h"

namespace gemma {

// Dequantizes n elements (a multiple of the type's block size) starting at a block boundary.
// I8 yields the raw integers (its per-row scales are applied by the caller). Returns false for a
// type that has no float meaning on its own (I32).
bool dequantize_row(DType type, const void* src, float* dst, int64_t n);

}  // namespace gemma

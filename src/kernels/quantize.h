// Reference quantizers for writing checkpoints (`gemma convert --quant`): float32 rows to Q8_0 or
// Q4_0 with ggml's reference rounding, so a file we write quantizes exactly as llama-quantize's
// reference path would; and to F16/BF16 with round-to-nearest-even.
#pragma once

#include <cstdint>

#include "formats/dtype.h"

namespace gemma {

// Quantizes n values (a multiple of the type's block size). False for types we cannot produce.
bool quantize_row(DType type, const float* x, void* out, int64_t n);

}  // namespace gemma

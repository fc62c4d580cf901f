// Random weight rows of every stored type for kernel tests: random code bytes (so every bit of the
// layouts is exercised) with small, sane f16 scales so the values stay finite.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "formats/dtype.h"

namespace gemma::test {

std::vector<uint8_t> random_rows(DType type, int64_t rows, int64_t cols, std::mt19937& rng);

}  // namespace gemma::test

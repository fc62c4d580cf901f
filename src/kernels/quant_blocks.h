// Block layouts of ggml's quantized types (docs/spec/formats.md §5.5), bit-for-bit as stored in GGUF.
// A row of n elements is n / kBlock consecutive blocks. Scales d, dmin, m are IEEE f16 bits.
#pragma once

#include <cstdint>

namespace gemma::quant {

constexpr int kQK = 32;    // block size of the legacy types
constexpr int kQKK = 256;  // super-block size of the K-quants

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
// Not a ggml type: symmetric int4 groups of 32 with an exact float32 scale (QAT / AWQ weights).
struct BlockQ4_0F {
  float d;
  uint8_t qs[16];
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292 && sizeof(BlockQ4_0F) == 20);

// Kernel trait parameters: how a block type's stored codes become weight values.
enum class CodeBits { k4, k5 };              // nibbles, or nibbles plus a fifth bit from qh
enum class ZeroPoint { kOffset, kMin };      // w = d * (q - 8 or 16), or w = d * q + m
enum class ScaleType { kF16, kF32, kNone };  // the block's scale d as stored (kNone: no scale)

// The 6-bit (scale, min) pair j (0..7) of a Q4_K/Q5_K super-block. static: each file gets its
// own copy, so one built for an ISA never stands in for another's (the ODR note in
// kernels/cpu/avx2_util.h).
static inline void k_scale_min(int j, const uint8_t* s, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

}  // namespace gemma::quant

#include "util/half.h"

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

namespace gemma {
namespace {

TEST(Half, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << "f16 bits " << h;
  }
}

TEST(Half, F16RoundsToNearestEven) {
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 1.0f / 2048)), 1.0f);                      // tie -> even
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);        // tie -> even (up)
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);                                              // overflow -> inf
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0);                                  // tie -> even (zero)
}

TEST(Half, BF16MatchesReferenceRounding) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(std::sqrt(640.0f))), 25.25f);  // docs/spec/architecture.md §2.2 table
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(std::sqrt(1152.0f))), 34.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(std::sqrt(3072.0f))), 55.5f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

}  // namespace
}  // namespace gemma

#include "kernels/quantize.h"

#include <cmath>
#include <cstring>

#include "kernels/quant_blocks.h"
#include "util/half.h"

namespace gemma {

namespace {

// Q8_0: d = max|x| / 127, q = round(x / d) (round half away from zero, as roundf).
void q8_0(const float* x, quant::BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

// Q4_0: d = (the value of largest magnitude) / -8, codes min(15, trunc(x/d + 8.5)).
void q4_0(const float* x, quant::BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int a = static_cast<int8_t>(x[j] * id + 8.5f), b = static_cast<int8_t>(x[j + 16] * id + 8.5f);
      y[i].qs[j] = static_cast<uint8_t>((a < 15 ? a : 15) | (b < 15 ? b : 15) << 4);
    }
  }
}

}  // namespace

bool quantize_row(DType type, const float* x, void* out, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(out, x, static_cast<size_t>(n) * 4); return true;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(out)[i] = f32_to_f16(x[i]);
      return true;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(out)[i] = f32_to_bf16(x[i]);
      return true;
    case DType::Q8_0: q8_0(x, static_cast<quant::BlockQ8_0*>(out), n / 32); return true;
    case DType::Q4_0: q4_0(x, static_cast<quant::BlockQ4_0*>(out), n / 32); return true;
    default: return false;
  }
}

}  // namespace gemma

#include "random_blocks.h"

#include <cstring>

#include "kernels/quant_blocks.h"
#include "util/half.h"

namespace gemma::test {

namespace {
void put_f16(uint8_t* p, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
}  // namespace

std::vector<uint8_t> random_rows(DType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  const auto& info = dtype_info(type);
  const int64_t n_blocks = rows * cols / info.block_elems;
  std::vector<uint8_t> out(static_cast<size_t>(n_blocks * info.block_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (auto& b : out) b = static_cast<uint8_t>(byte(rng));
  uint8_t* p = out.data();
  for (int64_t i = 0; i < n_blocks; ++i, p += info.block_bytes) {
    switch (type) {
      case DType::F32: {
        float v = normal(rng);
        std::memcpy(p, &v, 4);
        break;
      }
      case DType::F16: put_f16(p, normal(rng)); break;
      case DType::BF16: {
        uint16_t h = f32_to_bf16(normal(rng));
        std::memcpy(p, &h, 2);
        break;
      }
      case DType::Q8_0:
      case DType::Q4_0:
      case DType::Q5_0: put_f16(p, scale(rng)); break;
      case DType::Q4_0F: {
        float d = scale(rng);
        std::memcpy(p, &d, 4);
        break;
      }
      case DType::Q4_1:
      case DType::Q5_1:
        put_f16(p, scale(rng));
        put_f16(p + 2, -8 * scale(rng));
        break;
      case DType::Q4_K:
      case DType::Q5_K:
        put_f16(p, scale(rng) / 16);
        put_f16(p + 2, scale(rng) / 16);
        break;
      case DType::Q6_K: put_f16(p + 208, scale(rng) / 16); break;
      default: break;
    }
  }
  return out;
}

}  // namespace gemma::test

#include "formats/dtype.h"

#include <array>

namespace gemma {

namespace {
constexpr std::array<DTypeInfo, static_cast<size_t>(DType::kCount)> kInfo = {{
    {"F32", 1, 4, false},
    {"F16", 1, 2, false},
    {"BF16", 1, 2, false},
    {"Q8_0", 32, 34, true},
    {"Q4_0", 32, 18, true},
    {"Q4_1", 32, 20, true},
    {"Q5_0", 32, 22, true},
    {"Q5_1", 32, 24, true},
    {"Q4_K", 256, 144, true},
    {"Q5_K", 256, 176, true},
    {"Q6_K", 256, 210, true},
    {"Q8_K", 256, 292, true},
    {"Q4_0F", 32, 20, true},
    {"I8", 1, 1, false},
    {"I32", 1, 4, false},
    {"F64", 1, 8, false},
}};

struct GgmlId {
  uint32_t id;
  DType type;
};
constexpr GgmlId kGgml[] = {
    {0, DType::F32},   {1, DType::F16},  {2, DType::Q4_0},  {3, DType::Q4_1},  {6, DType::Q5_0},
    {7, DType::Q5_1},  {8, DType::Q8_0}, {12, DType::Q4_K}, {13, DType::Q5_K}, {14, DType::Q6_K},
    {15, DType::Q8_K}, {24, DType::I8},  {26, DType::I32},  {28, DType::F64},  {30, DType::BF16},
};
}  // namespace

const DTypeInfo& dtype_info(DType t) { return kInfo[static_cast<size_t>(t)]; }

std::optional<uint64_t> row_bytes(DType t, uint64_t cols) {
  const DTypeInfo& info = dtype_info(t);
  if (cols % static_cast<uint64_t>(info.block_elems) != 0) return std::nullopt;
  return cols / static_cast<uint64_t>(info.block_elems) * static_cast<uint64_t>(info.block_bytes);
}

std::optional<DType> dtype_from_ggml(uint32_t ggml_type) {
  for (const GgmlId& g : kGgml)
    if (g.id == ggml_type) return g.type;
  return std::nullopt;
}

uint32_t ggml_type_of(DType t) {
  for (const GgmlId& g : kGgml)
    if (g.type == t) return g.id;
  return UINT32_MAX;
}

}  // namespace gemma

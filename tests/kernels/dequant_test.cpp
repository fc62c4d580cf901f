// Our dequantizers against the reference dequantization of llama.cpp's gguf package, bit for bit,
// on tests/fixtures/quant/quant_types.gguf (written by tools/fixtures_quant.py: random blocks of
// every type, each next to its `<name>.ref` float32 dequantization).
#include <cstring>

#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "kernels/dequant.h"
#include "support/test_support.h"

namespace gemma {
namespace {

TEST(Dequant, EmptyRowTouchesNothing) {
  // A zero-row tensor (an empty AWQ scales array) has null data; memcpy(nullptr, ..., 0) is UB.
  EXPECT_TRUE(dequantize_row(DType::F32, nullptr, nullptr, 0));
}

TEST(Dequant, BitExactWithGgufPackageOnEveryType) {
  auto f = GgufFile::open(test::fixture("quant/quant_types.gguf"));
  ASSERT_TRUE(f.ok()) << f.error().message;
  int checked = 0;
  for (const auto& [name, t] : (*f)->tensors().all()) {
    if (name.size() > 4 && name.substr(name.size() - 4) == ".ref") continue;
    const Tensor* ref = (*f)->tensors().find(name + ".ref");
    ASSERT_NE(ref, nullptr) << name;
    ASSERT_EQ(ref->numel(), t.numel());
    std::vector<float> got(static_cast<size_t>(t.numel()));
    ASSERT_TRUE(dequantize_row(t.dtype, t.data, got.data(), t.numel())) << name;
    std::vector<float> want(got.size());
    std::memcpy(want.data(), ref->data, want.size() * sizeof(float));
    for (size_t i = 0; i < got.size(); ++i) {
      uint32_t a, b;
      std::memcpy(&a, &got[i], 4);
      std::memcpy(&b, &want[i], 4);
      ASSERT_EQ(a, b) << name << " element " << i << ": " << got[i] << " vs " << want[i];
    }
    ++checked;
  }
  EXPECT_EQ(checked, 12);  // F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K Q8_K
}

}  // namespace
}  // namespace gemma

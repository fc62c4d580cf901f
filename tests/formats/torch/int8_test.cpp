// Plain int8 weights with per-row scales (gemma_pytorch's --quant checkpoints) through the generic
// kernels: dequantize_row gives the raw integers, the generic I8 x Q8A kernel stays within the
// activation-quantization bound, and the CPU backend applies WeightMatrix::row_scales in both
// modes. (The fast AVX2 int8 kernel is tested with the other kernels when it exists.)
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/isa.h"
#include "kernels/dequant.h"

namespace gemma {
namespace {

TEST(Int8Weights, DequantizeGivesRawIntegers) {
  const int8_t q[5] = {-128, -1, 0, 1, 127};
  float f[5];
  ASSERT_TRUE(dequantize_row(DType::I8, q, f, 5));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f[i], static_cast<float>(q[i]));
}

struct Fixture {
  int64_t rows = 37, cols = 96, n = 5;
  std::vector<int8_t> q;
  std::vector<float> scales, x;
  WeightMatrix w;
  Fixture() {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> qd(-128, 127);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    q.resize(static_cast<size_t>(rows * cols));
    for (auto& v : q) v = static_cast<int8_t>(qd(rng));
    for (int64_t r = 0; r < rows; ++r) scales.push_back(0.001f * static_cast<float>(r + 1));
    x.resize(static_cast<size_t>(n * cols));
    for (auto& v : x) v = nd(rng);
    w = WeightMatrix{DType::I8,    rows, cols, reinterpret_cast<const uint8_t*>(q.data()), static_cast<uint64_t>(cols),
                     scales.data()};
  }
  double ref(int64_t t, int64_t r) const {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c)
      s += static_cast<double>(q[static_cast<size_t>(r * cols + c)]) * x[static_cast<size_t>(t * cols + c)];
    return s * scales[static_cast<size_t>(r)];
  }
};

TEST(Int8Weights, GenericKernelWithinQuantizationBound) {
  Fixture f;
  ASSERT_TRUE(cpu::matmul_supported(DType::I8));
  ASSERT_TRUE(cpu::uses_q8a(DType::I8));
  const cpu::IsaKernels& g = cpu::isa_generic();
  std::vector<cpu::BlockQ8A> xq(static_cast<size_t>(f.n * f.cols / 32));
  for (int64_t t = 0; t < f.n; ++t) g.quantize_q8a(f.x.data() + t * f.cols, xq.data() + t * f.cols / 32, f.cols);
  std::vector<float> y(static_cast<size_t>(f.n * f.rows));
  g.rows[static_cast<int>(DType::I8)](f.w, 0, f.rows, xq.data(), f.n, y.data(), f.rows);
  for (int64_t t = 0; t < f.n; ++t)
    for (int64_t r = 0; r < f.rows; ++r) {
      double exact = 0, bound = 1e-6;
      for (int64_t c = 0; c < f.cols; ++c) {
        exact +=
            static_cast<double>(f.q[static_cast<size_t>(r * f.cols + c)]) * f.x[static_cast<size_t>(t * f.cols + c)];
        bound +=
            std::fabs(f.q[static_cast<size_t>(r * f.cols + c)]) * xq[static_cast<size_t>((t * f.cols + c) / 32)].d / 2;
      }
      EXPECT_NEAR(y[static_cast<size_t>(t * f.rows + r)], exact, bound)
          << t << " " << r;  // unscaled: the kernel's part
    }
}

TEST(Int8Weights, BackendAppliesRowScalesInBothModes) {
  Fixture f;
  for (bool precise : {true, false}) {
    CpuBackend be(2, CpuOptions{precise});
    std::vector<float> y(static_cast<size_t>(f.n * f.rows));
    ASSERT_TRUE(be.matmul(f.w, f.x.data(), f.n, y.data()).ok());
    for (int64_t t = 0; t < f.n; ++t)
      for (int64_t r = 0; r < f.rows; ++r) {
        const double exact = f.ref(t, r);
        // Fast mode: each activation moves by at most half its block's step (amax / 127 / 2).
        double amax = 0, qabs = 0;
        for (int64_t c = 0; c < f.cols; ++c) {
          amax = std::max(amax, static_cast<double>(std::fabs(f.x[static_cast<size_t>(t * f.cols + c)])));
          qabs += std::fabs(f.q[static_cast<size_t>(r * f.cols + c)]);
        }
        const double tol =
            1e-5 * (1 + std::fabs(exact)) + (precise ? 0.0 : qabs * amax / 127 / 2 * f.scales[static_cast<size_t>(r)]);
        EXPECT_NEAR(y[static_cast<size_t>(t * f.rows + r)], exact, tol)
            << (precise ? "precise " : "fast ") << t << " " << r;
      }
    // Embedding rows are scaled too.
    std::vector<float> e(static_cast<size_t>(2 * f.cols));
    const int32_t ids[2] = {3, 36};
    ASSERT_TRUE(be.embed(f.w, ids, 2.0f, e.data()).ok());
    for (int k = 0; k < 2; ++k)
      for (int64_t c = 0; c < f.cols; ++c)
        EXPECT_FLOAT_EQ(e[static_cast<size_t>(k * f.cols + c)],
                        static_cast<float>(f.q[static_cast<size_t>(ids[k] * f.cols + c)]) * 2.0f *
                            f.scales[static_cast<size_t>(ids[k])]);
  }
}

}  // namespace
}  // namespace gemma

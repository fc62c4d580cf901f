// The Backend's encoder ops (vision tower) against double-precision references of their
// definitions (torch's LayerNorm, tanh GELU, softmax attention, AvgPool2d), on shapes that cut the
// thread split and the attention's query blocks unevenly.
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"

namespace gemma {
namespace {

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1, float offset = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (float& x : v) x = offset + scale * d(rng);
  return v;
}

double max_rel(const std::vector<float>& got, const std::vector<double>& want) {
  double scale = 0, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    err = std::max(err, std::fabs(got[i] - want[i]));
  }
  return err / scale;
}

class EncoderOps : public ::testing::TestWithParam<int> {};  // thread count

TEST_P(EncoderOps, LayerNormWithBias) {
  CpuBackend be(GetParam());
  const int64_t rows = 37, dim = 72;
  // A large mean: a one-pass variance would lose digits here.
  auto x = random_vec(rows * dim, 1, 0.5f, 100.0f), w = random_vec(dim, 2), b = random_vec(dim, 3);
  std::vector<float> out(x.size());
  ASSERT_TRUE(be.layer_norm(x.data(), w.data(), b.data(), rows, dim, 1e-6f, out.data()).ok());
  std::vector<double> want(x.size());
  for (int64_t t = 0; t < rows; ++t) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < dim; ++c) m += x[t * dim + c];
    m /= dim;
    for (int64_t c = 0; c < dim; ++c) v += (x[t * dim + c] - m) * (x[t * dim + c] - m);
    v /= dim;
    for (int64_t c = 0; c < dim; ++c) want[t * dim + c] = (x[t * dim + c] - m) / std::sqrt(v + 1e-6) * w[c] + b[c];
  }
  EXPECT_LT(max_rel(out, want), 1e-5);
  // In place too.
  ASSERT_TRUE(be.layer_norm(x.data(), w.data(), b.data(), rows, dim, 1e-6f, x.data()).ok());
  EXPECT_EQ(x, out);
}

TEST_P(EncoderOps, BiasAndGelu) {
  CpuBackend be(GetParam());
  const int64_t rows = 9, dim = 5000;
  auto x = random_vec(rows * dim, 4, 3.0f), b = random_vec(dim, 5);
  auto y = x;
  ASSERT_TRUE(be.add_bias(y.data(), b.data(), rows, dim).ok());
  ASSERT_TRUE(be.gelu(y.data(), rows * dim).ok());
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double z = static_cast<double>(x[i]) + b[i % dim];
    want[i] = 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
  }
  EXPECT_LT(max_rel(y, want), 1e-6);
}

void check_full_attention(CpuBackend& be, int64_t n, int hd);

TEST_P(EncoderOps, FullAttentionIsBidirectionalSoftmax) {
  CpuBackend be(GetParam());
  // 37: one partial block of queries; 133: a full 128-query block and a last one of 5, below the
  // float GEMM's 8 tokens (the small-batch kernels take it); head widths 8 and 72 (the real
  // tower's, not a multiple of the GEMM's 16-column transposes).
  for (const auto& [n, hd] : {std::pair<int64_t, int>{37, 8}, {133, 72}}) check_full_attention(be, n, hd);
}

void check_full_attention(CpuBackend& be, int64_t n, int hd) {
  const int heads = 3, width = heads * hd;
  auto q = random_vec(n * width, 6, 2.0f), k = random_vec(n * width, 7, 2.0f), v = random_vec(n * width, 8);
  std::vector<float> out(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  ASSERT_TRUE(be.full_attention(q.data(), k.data(), v.data(), n, heads, hd, scale, out.data()).ok());
  std::vector<double> want(q.size());
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> s(n);
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        double d = 0;
        for (int c = 0; c < hd; ++c) d += static_cast<double>(q[i * width + h * hd + c]) * k[j * width + h * hd + c];
        s[j] = d * scale;
        mx = std::max(mx, s[j]);
      }
      for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int c = 0; c < hd; ++c) {
        double o = 0;
        for (int64_t j = 0; j < n; ++j) o += s[j] * v[j * width + h * hd + c];
        want[i * width + h * hd + c] = o / sum;
      }
    }
  EXPECT_LT(max_rel(out, want), 1e-5) << n << " tokens, head width " << hd;
}

TEST_P(EncoderOps, AveragePoolOfAGrid) {
  CpuBackend be(GetParam());
  const int side = 12, kernel = 3;
  const int64_t dim = 5;
  auto x = random_vec(side * side * dim, 9);
  const int os = side / kernel;
  std::vector<float> out(os * os * dim);
  ASSERT_TRUE(be.avg_pool(x.data(), side, dim, kernel, out.data()).ok());
  std::vector<double> want(out.size());
  for (int oy = 0; oy < os; ++oy)
    for (int ox = 0; ox < os; ++ox)
      for (int64_t c = 0; c < dim; ++c) {
        double s = 0;
        for (int ky = 0; ky < kernel; ++ky)
          for (int kx = 0; kx < kernel; ++kx) s += x[((oy * kernel + ky) * side + ox * kernel + kx) * dim + c];
        want[(oy * os + ox) * dim + c] = s / (kernel * kernel);
      }
  EXPECT_LT(max_rel(out, want), 1e-6);
  EXPECT_FALSE(be.avg_pool(x.data(), side, dim, 5, out.data()).ok());  // 5 does not divide 12
}

INSTANTIATE_TEST_SUITE_P(Threads, EncoderOps, ::testing::Values(1, 3));

}  // namespace
}  // namespace gemma

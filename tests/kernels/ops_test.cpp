// Elementwise ops and attention of the CPU backend against direct float64 formulas.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"
#include "support/test_support.h"
#include "util/half.h"

namespace gemma {
namespace {

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(Ops, RmsNormAndGelu) {
  CpuBackend be(2);
  std::mt19937 rng(1);
  const int64_t rows = 3, dim = 640;
  auto x = randn(static_cast<size_t>(rows * dim), rng), w = randn(static_cast<size_t>(dim), rng);
  std::vector<float> y(x.size());
  ASSERT_TRUE(be.rms_norm(x.data(), w.data(), rows, dim, 1e-6f, y.data()).ok());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < dim; ++c) ss += double(x[r * dim + c]) * x[r * dim + c];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
    for (int64_t c = 0; c < dim; ++c) EXPECT_NEAR(y[r * dim + c], x[r * dim + c] * inv * w[c], 1e-5);
  }
  auto g0 = randn(1003, rng, 3.0f), u = randn(1003, rng);
  g0[0] = 60, g0[1] = -60, g0[2] = 0;  // saturation both ways
  for (const cpu::IsaKernels* isa : {&cpu::isa_generic(), cpu::cpu_has_avx2() ? cpu::isa_avx2() : nullptr}) {
    if (!isa) continue;
    auto g = g0;
    isa->gelu_mul(g.data(), u.data(), static_cast<int64_t>(g.size()));
    for (size_t i = 0; i < g.size(); ++i) {
      const double z = g0[i];
      const double ref = 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z))) * u[i];
      ASSERT_NEAR(g[i], ref, 1e-6 * (1 + std::fabs(ref))) << isa->name << " x=" << z;
    }
  }
}

TEST(Ops, RopeRotatesPairsSplitHalf) {
  CpuBackend be(1);
  const int hd = 8;
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  int32_t pos = 3;
  auto x0 = x;
  ASSERT_TRUE(be.norm_rope(x.data(), 1, 1, hd, nullptr, 1e-6f, &pos, 10000.0f, 2.0f).ok());
  for (int k = 0; k < hd / 2; ++k) {
    const double theta = 3.0 * std::pow(10000.0, -2.0 * k / hd) / 2.0;
    EXPECT_NEAR(x[k], x0[k] * std::cos(theta) - x0[k + 4] * std::sin(theta), 1e-5);
    EXPECT_NEAR(x[k + 4], x0[k + 4] * std::cos(theta) + x0[k] * std::sin(theta), 1e-5);
  }
}

// Attention with GQA (every group size Gemma uses), a sliding window over a ring buffer, and a
// soft-cap, against a direct softmax over the visible keys. Window 40 spans two key blocks of the
// AVX2 kernel, one of them partial.
void check_attention(int n_heads, int n_kv, int hd, int window) {
  CpuBackend be(2);
  std::mt19937 rng(3 + n_heads * 7 + n_kv + window);
  const int64_t capacity = window + 2, n_tok = 3;
  const int32_t last = 60;
  const int32_t positions[3] = {last - 2, last - 1, last};
  // Keys for positions 0..last in slot p % capacity: the last `capacity` positions survive.
  std::vector<std::vector<float>> keys, vals;
  std::vector<float> kc(static_cast<size_t>(capacity * n_kv * hd)), vc(kc.size());
  for (int p = 0; p <= last; ++p) {
    keys.push_back(randn(static_cast<size_t>(n_kv * hd), rng));
    vals.push_back(randn(static_cast<size_t>(n_kv * hd), rng));
    std::copy(keys.back().begin(), keys.back().end(), kc.begin() + (p % capacity) * n_kv * hd);
    std::copy(vals.back().begin(), vals.back().end(), vc.begin() + (p % capacity) * n_kv * hd);
  }
  auto q = randn(static_cast<size_t>(n_tok * n_heads * hd), rng, 2.0f);
  std::vector<float> out(q.size());
  AttentionArgs a;
  a.q = q.data();
  a.out = out.data();
  a.positions = positions;
  a.n_tokens = n_tok;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv;
  a.head_dim = hd;
  a.k_cache = kc.data();
  a.v_cache = vc.data();
  a.capacity = capacity;
  a.window = window;
  a.scale = 0.25f;
  a.softcap = 5.0f;
  ASSERT_TRUE(test::attend(be, a).ok());
  for (int t = 0; t < n_tok; ++t) {
    for (int h = 0; h < n_heads; ++h) {
      const int g = h / (n_heads / n_kv);
      std::vector<double> s;
      for (int j = positions[t] - window + 1; j <= positions[t]; ++j) {
        double dot = 0;
        for (int c = 0; c < hd; ++c) dot += double(q[(t * n_heads + h) * hd + c]) * keys[j][g * hd + c];
        s.push_back(5.0 * std::tanh(dot * 0.25 / 5.0));
      }
      double mx = *std::max_element(s.begin(), s.end()), den = 0;
      for (double v : s) den += std::exp(v - mx);
      for (int c = 0; c < hd; ++c) {
        double ref = 0;
        for (int j = 0; j < window; ++j)
          ref += std::exp(s[j] - mx) / den * vals[positions[t] - window + 1 + j][g * hd + c];
        ASSERT_NEAR(out[(t * n_heads + h) * hd + c], ref, 1e-5)
            << n_heads << " heads, " << n_kv << " kv heads, head_dim " << hd << ", window " << window;
      }
    }
  }
}

TEST(Ops, AttentionWindowRingGqaSoftcap) {
  for (const char* isa : {"generic", "best"}) {
    setenv("GEMMA_ISA", isa, 1);  // the backend picks its kernel table at construction
    for (auto [n_heads, n_kv] : {std::pair{4, 2}, {4, 1}, {8, 1}, {4, 4}, {6, 2}})
      for (int hd : {16, 40})
        for (int window : {5, 40}) check_attention(n_heads, n_kv, hd, window);
  }
  unsetenv("GEMMA_ISA");
}

}  // namespace
}  // namespace gemma

namespace gemma {
namespace {

// Decode over a long float16 cache: the backend splits the keys across threads and merges the
// partial softmaxes; every ISA's kernel must agree with a float64 softmax over the same values.
TEST(Ops, AttentionLongContextSplitF16) {
  std::mt19937 rng(5);
  const int n_heads = 4, n_kv = 1, hd = 64;
  const int64_t n_keys = 3000;
  std::vector<uint16_t> kc(static_cast<size_t>(n_keys * hd)), vc(kc.size());
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& x : kc) x = f32_to_f16(nd(rng));
  for (auto& x : vc) x = f32_to_f16(nd(rng));
  auto q = randn(static_cast<size_t>(n_heads * hd), rng, 0.5f);
  const int32_t pos = static_cast<int32_t>(n_keys - 1);
  for (const char* isa : {"generic", "best"}) {
    setenv("GEMMA_ISA", isa, 1);  // the backend picks its kernel table at construction
    for (int window : {0, 1000}) {
      for (int threads : {1, 2}) {
        CpuBackend be(threads);
        std::vector<float> out(q.size());
        AttentionArgs a;
        a.q = q.data();
        a.out = out.data();
        a.positions = &pos;
        a.n_tokens = 1;
        a.n_heads = n_heads;
        a.n_kv_heads = n_kv;
        a.head_dim = hd;
        a.k_cache = kc.data();
        a.v_cache = vc.data();
        a.kv_type = DType::F16;
        a.capacity = n_keys;
        a.window = window;
        a.scale = 0.125f;
        ASSERT_TRUE(test::attend(be, a).ok());
        const int64_t first = window > 0 ? pos - window + 1 : 0;
        for (int h = 0; h < n_heads; ++h) {
          std::vector<double> s;
          for (int64_t j = first; j <= pos; ++j) {
            double dot = 0;
            for (int c = 0; c < hd; ++c) dot += double(q[h * hd + c]) * f16_to_f32(kc[j * hd + c]);
            s.push_back(dot * 0.125);
          }
          const double mx = *std::max_element(s.begin(), s.end());
          double den = 0;
          for (double v : s) den += std::exp(v - mx);
          for (int c = 0; c < hd; ++c) {
            double ref = 0;
            for (size_t j = 0; j < s.size(); ++j)
              ref += std::exp(s[j] - mx) / den * f16_to_f32(vc[(first + j) * hd + c]);
            ASSERT_NEAR(out[h * hd + c], ref, 2e-5) << isa << " window " << window << " threads " << threads;
          }
        }
      }
    }
  }
  unsetenv("GEMMA_ISA");
}

}  // namespace
}  // namespace gemma

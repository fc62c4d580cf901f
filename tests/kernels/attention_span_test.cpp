// Bidirectional spans (Gemma 3's image soft tokens) in the CPU backend's attention, on every
// compiled ISA table, against a naive reference that builds the full mask and a float64 softmax.
#include <cmath>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/dequant.h"
#include "kernels/quantize.h"
#include "support/test_support.h"
#include "util/half.h"

namespace gemma {
namespace {

// visible(i, j): causal and windowed, or both inside one span (HF adds its token-type mask to the
// causal and sliding masks with an OR).
bool visible(int i, int j, int window, const std::vector<PositionSpan>& spans) {
  if (j <= i && (window == 0 || i - j < window)) return true;
  for (const PositionSpan& s : spans)
    if (i >= s.begin && i < s.end && j >= s.begin && j < s.end) return true;
  return false;
}

void check(const char* isa, int window, DType kv_type) {
  setenv("GEMMA_ISA", isa, 1);
  CpuBackend be(2);
  unsetenv("GEMMA_ISA");
  const int n_heads = 4, n_kv = 2, hd = 32, n_pos = 40;  // hd: whole Q8_0 blocks
  // A chunk of 30 queries at positions 10..39 over keys 0..39; spans inside and before the chunk,
  // one longer than the window.
  const std::vector<PositionSpan> spans = {{3, 7}, {12, 20}, {25, 38}};
  std::mt19937 rng(window * 3 + static_cast<int>(kv_type));
  std::normal_distribution<float> nd;
  std::vector<float> k(static_cast<size_t>(n_pos * n_kv * hd)), v(k.size());
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  // Store as the cache type, and compare against the values as stored (rounded or quantized).
  const int64_t kvw = n_kv * hd;
  const uint64_t row = *row_bytes(kv_type, kvw);
  std::vector<uint8_t> kc(row * n_pos), vc(kc.size());
  for (int p = 0; p < n_pos; ++p)
    for (auto [f, c] : {std::pair{&k, &kc}, std::pair{&v, &vc}}) {
      float* x = f->data() + p * kvw;
      uint8_t* dst = c->data() + p * row;
      if (kv_type == DType::F32) std::memcpy(dst, x, row);
      else if (kv_type == DType::BF16)
        for (int64_t i = 0; i < kvw; ++i) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_bf16(x[i]);
      else ASSERT_TRUE(quantize_row(kv_type, x, dst, kvw));
      ASSERT_TRUE(dequantize_row(kv_type, dst, x, kvw));
    }
  const int first = 10, n_tok = n_pos - first;
  std::vector<int32_t> positions(static_cast<size_t>(n_tok));
  for (int t = 0; t < n_tok; ++t) positions[static_cast<size_t>(t)] = first + t;
  std::vector<float> q(static_cast<size_t>(n_tok * n_heads * hd)), out(q.size());
  for (auto& x : q) x = nd(rng);
  AttentionArgs a;
  a.q = q.data();
  a.out = out.data();
  a.positions = positions.data();
  a.n_tokens = n_tok;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv;
  a.head_dim = hd;
  a.k_cache = kc.data();
  a.v_cache = vc.data();
  a.kv_type = kv_type;
  a.capacity = n_pos;
  a.window = window;
  a.scale = 0.25f;
  a.bidirectional = spans;
  const Status st = test::attend(be, a);
  ASSERT_TRUE(st.ok()) << st.error().message;
  for (int t = 0; t < n_tok; ++t)
    for (int h = 0; h < n_heads; ++h) {
      const int g = h / (n_heads / n_kv), i = positions[static_cast<size_t>(t)];
      std::vector<double> w(static_cast<size_t>(n_pos), 0.0);
      double mx = -INFINITY, den = 0;
      for (int j = 0; j < n_pos; ++j) {
        if (!visible(i, j, window, spans)) continue;
        double dot = 0;
        for (int c = 0; c < hd; ++c)
          dot += double(q[static_cast<size_t>((t * n_heads + h) * hd + c)]) *
                 k[static_cast<size_t>((j * n_kv + g) * hd + c)];
        w[static_cast<size_t>(j)] = dot * 0.25;
        mx = std::max(mx, dot * 0.25);
      }
      for (int j = 0; j < n_pos; ++j)
        if (visible(i, j, window, spans)) den += std::exp(w[static_cast<size_t>(j)] - mx);
      for (int c = 0; c < hd; ++c) {
        double ref = 0;
        for (int j = 0; j < n_pos; ++j)
          if (visible(i, j, window, spans))
            ref += std::exp(w[static_cast<size_t>(j)] - mx) / den * v[static_cast<size_t>((j * n_kv + g) * hd + c)];
        ASSERT_NEAR(out[static_cast<size_t>((t * n_heads + h) * hd + c)], ref, 2e-5)
            << isa << " window " << window << " position " << i << " head " << h;
      }
    }
}

TEST(AttentionSpans, MatchNaiveMaskedReference) {
  for (const char* isa : {"generic", "avx2", "avx512"})
    for (int window : {0, 6})
      for (DType kv : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) check(isa, window, kv);
}

TEST(AttentionSpans, KeyRangeWidensOnlyInsideSpans) {
  using Range = std::pair<int64_t, int64_t>;
  AttentionArgs a;
  const std::vector<PositionSpan> spans = {{4, 9}};
  a.bidirectional = spans;
  a.window = 3;
  EXPECT_EQ(a.key_range(3), (Range{1, 3}));  // before the span: causal, windowed
  EXPECT_EQ(a.key_range(4), (Range{2, 8}));  // first of the span sees all of it
  EXPECT_EQ(a.key_range(8), (Range{4, 8}));
  EXPECT_EQ(a.key_range(9), (Range{7, 9}));  // after: back to the window
}

}  // namespace
}  // namespace gemma

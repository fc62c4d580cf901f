// The op harness: every op of every backend this build can make (today the CPU backend, once per
// compiled ISA kernel table this CPU can run, in fast and precise mode) against the reference,
// the CPU backend on the generic (portable) table in the same mode. The generic table itself is
// checked against float64 formulas in ops_test.cpp, matmul_test.cpp and attention_span_test.cpp.
//
// Tolerances: the tables share the activation quantization (Quantize.IsaMatchesGenericExactly)
// and dequantization, so matmuls differ only in float32 summation order (1e-5 of Σ|w·x|) plus,
// for BF16 prefill on AVX512_BF16, the bfloat16 rounding of activations (2^-8 of Σ|w·x|).
// Elementwise ops differ by a few float32 ulps; attention by the order of its online softmax.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/isa.h"
#include "kernels/dequant.h"
#include "random_blocks.h"
#include "util/half.h"

namespace gemma {
namespace {

struct BackendUnderTest {
  std::string name;  // "cpu/avx2", "cpu/avx512/precise", ...
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Backend> reference;  // the generic table, same mode
  const cpu::IsaKernels* isa;
};

std::vector<BackendUnderTest> backends_under_test() {
  std::vector<const cpu::IsaKernels*> isas = {&cpu::isa_generic()};
  if (cpu::cpu_has_avx2() && cpu::isa_avx2()) isas.push_back(cpu::isa_avx2());
  if (cpu::cpu_has_avx512() && cpu::isa_avx512()) isas.push_back(cpu::isa_avx512());
  if (cpu::cpu_has_amx() && cpu::isa_avx512_amx()) isas.push_back(cpu::isa_avx512_amx());
  std::vector<BackendUnderTest> v;
  for (bool precise : {false, true})
    for (const cpu::IsaKernels* isa : isas) {
      BackendUnderTest b;
      b.name = std::string("cpu/") + isa->name + (precise ? "/precise" : "");
      b.backend = std::make_unique<CpuBackend>(2, CpuOptions{precise, isa});
      b.reference = std::make_unique<CpuBackend>(1, CpuOptions{precise, &cpu::isa_generic()});
      b.isa = isa;
      v.push_back(std::move(b));
    }
  return v;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], abs + rel * std::fabs(want[i])) << what << " at " << i;
}

TEST(BackendFactory, MakesTheCpuBackendByNameAndRefusesUnknownDevices) {
  auto cpu = create_backend({.device = "cpu", .threads = 2});
  ASSERT_TRUE(cpu.ok()) << cpu.error().message;
  EXPECT_EQ((*cpu)->n_threads(), 2);
  auto none = create_backend({.device = "tpu"});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind, ErrorKind::kUnsupported);
  EXPECT_FALSE(create_backend({.device = "cpu", .threads = -1}).ok());
}

// "cuda" is a known device name in every build: a build without the CUDA backend says how to get
// it, a CUDA build without a GPU says there is none (cuda_backend_test.cpp tests the backend).
TEST(BackendFactory, CudaIsRefusedWithTheReason) {
  auto cuda = create_backend({.device = "cuda"});
  if (cuda.ok()) {
    EXPECT_STREQ((*cuda)->name(), "cuda");
    return;
  }
  EXPECT_EQ(cuda.error().kind, ErrorKind::kUnsupported);
  const std::string& m = cuda.error().message;
  EXPECT_TRUE(m.find("this build has no CUDA backend; rebuild with -DGEMMA_CUDA=ON") != std::string::npos ||
              m.find("no CUDA device") != std::string::npos)
      << m;
  EXPECT_FALSE(device_memory("cuda").ok());
}

TEST(BackendOps, MemoryIsZeroedAndCopiesRoundTrip) {
  for (auto& b : backends_under_test()) {
    Backend& be = *b.backend;
    for (BufferUse use : {BufferUse::kActivations, BufferUse::kKvCache, BufferUse::kLogits}) {
      auto buf = be.allocate(1 << 20, use);
      ASSERT_TRUE(buf.ok()) << b.name;
      std::vector<uint8_t> host(1 << 20, 0xAB);
      ASSERT_TRUE(be.to_host(host.data(), buf->data(), host.size()).ok());
      for (uint8_t c : host) ASSERT_EQ(c, 0) << b.name;
      std::vector<uint8_t> src(4096);
      for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7);
      ASSERT_TRUE(be.to_device(buf->data(), src.data(), src.size()).ok());
      ASSERT_TRUE(be.copy(buf->as<uint8_t>() + 8192, buf->data(), src.size()).ok());
      std::vector<uint8_t> back(src.size());
      ASSERT_TRUE(be.to_host(back.data(), buf->as<uint8_t>() + 8192, back.size()).ok());
      EXPECT_EQ(back, src) << b.name;
    }
    auto empty = be.allocate(0, BufferUse::kActivations);
    ASSERT_TRUE(empty.ok());
    EXPECT_EQ(empty->bytes(), 0u);
  }
}

struct MatmulCase {
  DType type;
  int64_t cols;
};

TEST(BackendOps, MatmulOfEveryTypeAndTokenCountMatchesTheReference) {
  const MatmulCase cases[] = {{DType::F32, 520},  {DType::F16, 608},  {DType::BF16, 1088}, {DType::Q8_0, 1504},
                              {DType::Q4_0, 640}, {DType::Q4_1, 640}, {DType::Q5_0, 640},  {DType::Q5_1, 640},
                              {DType::Q4_K, 512}, {DType::Q5_K, 512}, {DType::Q6_K, 512},  {DType::Q4_0F, 640}};
  auto backends = backends_under_test();
  for (const MatmulCase& mc : cases) {
    const int64_t rows = 45;
    std::mt19937 rng(99 + static_cast<int>(mc.type));
    std::vector<uint8_t> bytes = test::random_rows(mc.type, rows, mc.cols, rng);
    WeightMatrix w{mc.type, rows, mc.cols, bytes.data(), *row_bytes(mc.type, mc.cols)};
    std::vector<float> wf(static_cast<size_t>(rows * mc.cols));
    for (int64_t r = 0; r < rows; ++r) ASSERT_TRUE(dequantize_row(mc.type, w.row(r), wf.data() + r * mc.cols, mc.cols));
    for (int64_t n : {1, 3, 8, 21}) {
      const auto x = randn(static_cast<size_t>(n * mc.cols), rng);
      for (auto& b : backends) {
        std::vector<float> y(static_cast<size_t>(n * rows)), ref(y.size());
        ASSERT_TRUE(b.backend->matmul(w, x.data(), n, y.data()).ok()) << b.name;
        ASSERT_TRUE(b.reference->matmul(w, x.data(), n, ref.data()).ok());
        const bool bf16_rounds = mc.type == DType::BF16 && std::string(b.isa->name).rfind("avx512", 0) == 0 &&
                                 cpu::cpu_has_avx512_bf16() && n >= 8 && b.name.find("precise") == std::string::npos;
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < rows; ++r) {
            double abs_sum = 0;
            for (int64_t c = 0; c < mc.cols; ++c)
              abs_sum +=
                  std::fabs(double(wf[static_cast<size_t>(r * mc.cols + c)]) * x[static_cast<size_t>(t * mc.cols + c)]);
            const double tol = 1e-5 * abs_sum + 1e-6 + (bf16_rounds ? abs_sum / 256 : 0);
            const size_t i = static_cast<size_t>(t * rows + r);
            ASSERT_NEAR(y[i], ref[i], tol) << b.name << " " << dtype_name(mc.type) << " n=" << n << " row " << r;
          }
      }
    }
  }
}

TEST(BackendOps, MatmulManyEqualsSeparateMatmulsBitForBit) {
  std::mt19937 rng(5);
  const int64_t cols = 512, n = 9;
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<WeightMatrix> ws;
  const DType types[3] = {DType::Q4_K, DType::Q8_0, DType::Q4_K};
  const int64_t rows[3] = {64, 16, 16};
  for (int i = 0; i < 3; ++i) bytes.push_back(test::random_rows(types[i], rows[i], cols, rng));
  for (int i = 0; i < 3; ++i) ws.push_back({types[i], rows[i], cols, bytes[i].data(), *row_bytes(types[i], cols)});
  const auto x = randn(static_cast<size_t>(n * cols), rng);
  for (auto& b : backends_under_test()) {
    std::vector<std::vector<float>> many(3), one(3);
    for (int i = 0; i < 3; ++i) {
      many[i].resize(static_cast<size_t>(n * rows[i]));
      one[i].resize(many[i].size());
      ASSERT_TRUE(b.backend->matmul(ws[i], x.data(), n, one[i].data()).ok());
    }
    const WeightMatrix* wp[3] = {&ws[0], &ws[1], &ws[2]};
    float* yp[3] = {many[0].data(), many[1].data(), many[2].data()};
    ASSERT_TRUE(b.backend->matmul_many(wp, x.data(), n, yp).ok()) << b.name;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(0, std::memcmp(many[i].data(), one[i].data(), many[i].size() * 4)) << b.name;
  }
}

TEST(BackendOps, BadCallsReturnErrorsInsteadOfCrashing) {
  std::vector<uint8_t> bytes(64 * 4);
  WeightMatrix w{DType::F64, 4, 8, bytes.data(), 64};  // no kernel multiplies F64 weights
  std::vector<float> x(8), y(4);
  for (auto& b : backends_under_test()) {
    EXPECT_FALSE(b.backend->matmul(w, x.data(), 1, y.data()).ok()) << b.name;
    WeightMatrix f{DType::F32, 4, 8, bytes.data(), 32};
    const WeightMatrix* nine[9] = {&f, &f, &f, &f, &f, &f, &f, &f, &f};
    float* ys[9] = {y.data(), y.data(), y.data(), y.data(), y.data(), y.data(), y.data(), y.data(), y.data()};
    EXPECT_FALSE(b.backend->matmul_many(nine, x.data(), 1, ys).ok()) << b.name;
    const int32_t bad_id[1] = {4};
    EXPECT_FALSE(b.backend->embed(f, bad_id, 1.0f, x.data()).ok()) << b.name;
  }
}

TEST(BackendOps, ElementwiseOpsMatchTheReference) {
  std::mt19937 rng(11);
  const int64_t rows = 5, dim = 640, heads = 4, hd = 64;
  const auto x0 = randn(static_cast<size_t>(rows * dim), rng), y0 = randn(x0.size(), rng),
             w = randn(static_cast<size_t>(dim), rng), nw = randn(static_cast<size_t>(hd), rng);
  const int32_t positions[rows] = {0, 1, 7, 300, 40000};
  std::vector<uint8_t> table = test::random_rows(DType::Q6_K, 50, 256, rng);
  WeightMatrix emb{DType::Q6_K, 50, 256, table.data(), *row_bytes(DType::Q6_K, 256)};
  const int32_t ids[4] = {0, 49, 7, 7};
  for (auto& b : backends_under_test()) {
    struct Out {
      std::vector<float> norm, added, added_plain, gelu, rope, rope_normed, capped, embedded;
    };
    auto run = [&](Backend& be) {
      Out o;
      o.norm.resize(x0.size());
      EXPECT_TRUE(be.rms_norm(x0.data(), w.data(), rows, dim, 1e-6f, o.norm.data()).ok());
      o.added = x0;
      EXPECT_TRUE(be.add_norm(o.added.data(), y0.data(), w.data(), rows, dim, 1e-6f).ok());
      o.added_plain = x0;
      EXPECT_TRUE(be.add_norm(o.added_plain.data(), y0.data(), nullptr, rows, dim, 1e-6f).ok());
      o.gelu = x0;
      EXPECT_TRUE(be.gelu_mul(o.gelu.data(), y0.data(), static_cast<int64_t>(x0.size()) - 3).ok());
      o.rope.assign(x0.begin(), x0.begin() + rows * heads * hd);
      EXPECT_TRUE(be.norm_rope(o.rope.data(), rows, heads, hd, nullptr, 1e-6f, positions, 10000.0f, 1.0f).ok());
      o.rope_normed.assign(x0.begin(), x0.begin() + rows * heads * hd);
      EXPECT_TRUE(be.norm_rope(o.rope_normed.data(), rows, heads, hd, nw.data(), 1e-6f, positions, 1e6f, 8.0f).ok());
      o.capped = x0;
      for (auto& v : o.capped) v *= 40;
      EXPECT_TRUE(be.softcap(o.capped.data(), static_cast<int64_t>(o.capped.size()), 30.0f).ok());
      o.embedded.resize(4 * 256);
      EXPECT_TRUE(be.embed(emb, ids, 25.3f, o.embedded.data()).ok());
      return o;
    };
    const Out got = run(*b.backend), want = run(*b.reference);
    expect_close(got.norm, want.norm, 1e-6, 1e-7, b.name + " rms_norm");
    expect_close(got.added, want.added, 1e-6, 1e-7, b.name + " add_norm");
    expect_close(got.added_plain, want.added_plain, 0, 0, b.name + " add");
    expect_close(got.gelu, want.gelu, 1e-6, 1e-7, b.name + " gelu_mul");
    expect_close(got.rope, want.rope, 1e-6, 1e-7, b.name + " rope");
    expect_close(got.rope_normed, want.rope_normed, 1e-6, 1e-7, b.name + " norm_rope");
    expect_close(got.capped, want.capped, 1e-6, 1e-7, b.name + " softcap");
    expect_close(got.embedded, want.embedded, 0, 0, b.name + " embed");
  }
}

// A batch of three sequences through store_kv + attention: a prefill chunk with a bidirectional
// span, a decode over a long context (its keys split across threads), a decode on a sliding ring.
// Each matches the reference, and each is bit-identical to the same sequence run alone.
class BatchAttentionTest : public ::testing::TestWithParam<DType> {};

TEST_P(BatchAttentionTest, EverySequenceMatchesTheReferenceAndItselfAlone) {
  const DType kv_type = GetParam();
  const int n_heads = 4, n_kv = 2, hd = 64;
  const int64_t kvw = n_kv * hd;
  const uint64_t row = *row_bytes(kv_type, kvw);
  struct Seq {
    int64_t n_past, n_new, capacity;
    std::vector<PositionSpan> spans;
  };
  const Seq shapes[3] = {{20, 12, 64, {{24, 30}}}, {900, 1, 1024, {}}, {100, 1, 48, {}}};
  // Caches pre-filled with the past positions' K/V (through store_kv, the same on every backend).
  int64_t rows = 0;
  for (const Seq& s : shapes) rows += s.n_new;
  for (int window : {0, 40}) {
    for (auto& b : backends_under_test()) {
      std::mt19937 r(7);
      std::vector<std::vector<uint8_t>> kc(3), vc(3);
      std::vector<SequenceKv> seqs(3);
      std::vector<int32_t> positions;
      int64_t first = 0;
      for (int i = 0; i < 3; ++i) {
        const Seq& s = shapes[i];
        kc[i].resize(static_cast<size_t>(s.capacity) * row);
        vc[i].resize(kc[i].size());
        seqs[i] = {first, s.n_new, kc[i].data(), vc[i].data(), s.capacity, s.spans};
        for (int64_t p = 0; p < s.n_new; ++p) positions.push_back(static_cast<int32_t>(s.n_past + p));
        first += s.n_new;
      }
      // The past: written slot by slot (positions older than the ring are overwritten, as in use).
      for (int i = 0; i < 3; ++i) {
        const Seq& s = shapes[i];
        const int64_t from = std::max<int64_t>(0, s.n_past - s.capacity);
        std::vector<float> k = randn(static_cast<size_t>((s.n_past - from) * kvw), r), v = randn(k.size(), r);
        std::vector<int32_t> pp;
        for (int64_t p = from; p < s.n_past; ++p) pp.push_back(static_cast<int32_t>(p));
        SequenceKv past = seqs[i];
        past.first_row = 0;
        past.n_tokens = static_cast<int64_t>(pp.size());
        BatchAttention a;
        a.k = k.data();
        a.v = v.data();
        a.positions = pp.data();
        a.n_heads = n_heads, a.n_kv_heads = n_kv, a.head_dim = hd, a.kv_type = kv_type;
        a.sequences = {&past, 1};
        ASSERT_TRUE(b.reference->store_kv(a).ok());
      }
      const auto q = randn(static_cast<size_t>(rows * n_heads * hd), r);
      const auto k = randn(static_cast<size_t>(rows * kvw), r), v = randn(k.size(), r);
      BatchAttention a;
      a.q = q.data();
      a.k = k.data();
      a.v = v.data();
      a.positions = positions.data();
      a.n_heads = n_heads, a.n_kv_heads = n_kv, a.head_dim = hd, a.kv_type = kv_type;
      a.window = window;
      a.scale = 0.125f;
      a.softcap = window ? 50.0f : 0.0f;
      a.sequences = seqs;
      const auto kc0 = kc, vc0 = vc;
      std::vector<float> got(q.size()), want(q.size());
      a.out = got.data();
      ASSERT_TRUE(b.backend->store_kv(a).ok()) << b.name;
      ASSERT_TRUE(b.backend->attention(a).ok()) << b.name;
      const auto kc_stored = kc, vc_stored = vc;
      kc = kc0, vc = vc0;
      a.out = want.data();
      ASSERT_TRUE(b.reference->store_kv(a).ok());
      EXPECT_EQ(kc, kc_stored) << b.name << " store_kv";
      EXPECT_EQ(vc, vc_stored) << b.name << " store_kv";
      ASSERT_TRUE(b.reference->attention(a).ok());
      float largest = 0;
      for (float g : got) largest = std::max(largest, std::fabs(g));
      ASSERT_GT(largest, 0.1f) << b.name << ": attention wrote nothing";
      expect_close(got, want, 2e-5, 2e-6, b.name + " attention");
      // Alone: each sequence as a batch of one, on the same backend, gives the same bits.
      for (int i = 0; i < 3; ++i) {
        SequenceKv alone = seqs[i];
        BatchAttention one = a;
        one.sequences = {&alone, 1};
        std::vector<float> out(q.size());
        one.out = out.data();
        ASSERT_TRUE(b.backend->attention(one).ok());
        const size_t off = static_cast<size_t>(seqs[i].first_row * n_heads * hd),
                     len = static_cast<size_t>(seqs[i].n_tokens * n_heads * hd);
        EXPECT_EQ(0, std::memcmp(out.data() + off, got.data() + off, len * sizeof(float)))
            << b.name << " sequence " << i << " alone differs from in the batch";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(KvTypes, BatchAttentionTest,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace gemma

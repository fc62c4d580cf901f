// The CUDA backend against the CPU backend in precise mode (float32 products of dequantized
// weights, the reference the CPU's own kernels are tested against), op by op on random data for
// every weight type, then whole models: the tiny fixtures and the real 270M give the CPU's greedy
// tokens. Built only with -DGEMMA_CUDA=ON; on a machine without a GPU every case but the factory's
// reports "skipped: no CUDA device".
//
// Tolerances, from the operands' norms:
//  * matmul, one to eight tokens (float32 products, warp-tree sums) and precise many-token
//    products (float32 tiles, cublasSgemm without TF32): both sides sum n = cols float32 products
//    in different orders. Each sum's rounding error is within ~sqrt(n)·2^-24·Σ|w·x| in practice
//    (n·2^-24 at worst); Σ|w·x| <= ||w_r||·||x_t|| (Cauchy-Schwarz), so 1e-5·||w_r||·||x_t|| bounds
//    the difference for cols = 512 with room (worst case 512·6e-8 = 3e-5 of Σ|w·x| is not reached
//    by random signs).
//  * fast many-token products: x and the dequantized weights are rounded to f16 (2^-11 relative
//    each), so a product is off by <= 2^-10 relative: 2e-3·||w_r||·||x_t||; BF16 weights take
//    bfloat16 activations (2^-8): 8e-3.
//  * elementwise ops: the same float32 operations (tanhf/expf within 2 ulp of the CPU's libm), a
//    few ulps: 1e-6 relative plus 1e-6 absolute; norms sum squares in another order: 1e-5.
//  * KV caches: the same conversions (round to nearest even, Q8_0's roundf): byte-identical.
//  * attention: an online softmax in the same order over the same keys, dot products summed in
//    another order: 2e-5 absolute on outputs of magnitude ~1.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
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
#include "runtime/engine.h"
#include "support/test_support.h"

namespace gemma {
namespace {

// The CUDA backend, or a skip when the machine has no GPU (any other failure is a failure).
// GEMMA_CUDA_TEST_ON_CPU=1 puts a CPU backend (precise, this CPU's kernel table) where the CUDA
// backend would be: a check of this harness itself on a machine without a GPU, so that GPU time
// is not spent finding a test's own mistakes.
Result<std::unique_ptr<Backend>> make_cuda(bool precise) {
  if (const char* e = std::getenv("GEMMA_CUDA_TEST_ON_CPU"); e && *e == '1')
    return std::unique_ptr<Backend>(new CpuBackend(2, CpuOptions{true}));
  return create_backend({.device = "cuda", .precise = precise});
}
bool no_device(const Error& e) { return e.message.find("no CUDA device") != std::string::npos; }

#define GEMMA_CUDA_OR_SKIP(var, precise)                                          \
  auto var##_made = make_cuda(precise);                                           \
  if (!var##_made.ok()) {                                                         \
    if (no_device(var##_made.error())) GTEST_SKIP() << "skipped: no CUDA device"; \
    FAIL() << var##_made.error().message;                                         \
  }                                                                               \
  std::unique_ptr<Backend> var = std::move(*var##_made)

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A device copy of host floats (the buffer keeps it alive).
DeviceBuffer up(Backend& be, const void* host, uint64_t bytes) {
  auto b = be.allocate(std::max<uint64_t>(bytes, 4), BufferUse::kActivations);
  EXPECT_TRUE(b.ok()) << b.error().message;
  if (!b.ok()) return DeviceBuffer();
  EXPECT_TRUE(be.to_device(b->data(), host, bytes).ok());
  return std::move(*b);
}
DeviceBuffer up(Backend& be, const std::vector<float>& v) { return up(be, v.data(), v.size() * sizeof(float)); }
std::vector<float> down(Backend& be, const DeviceBuffer& b, size_t n) {
  std::vector<float> v(n);
  EXPECT_TRUE(be.to_host(v.data(), b.data(), n * sizeof(float)).ok());
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], abs + rel * std::fabs(want[i])) << what << " at " << i;
}

// The CPU reference for the op tests: precise mode on the portable kernel table (exact libm tanh
// and exp, sequential float32 sums), which the SIMD tables are themselves tested against.
CpuOptions reference() { return CpuOptions{true, &cpu::isa_generic()}; }

double norm(const float* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

TEST(CudaFactory, MakesTheCudaBackendOrSaysThereIsNoDevice) {
  auto be = make_cuda(false);
  if (!be.ok()) {
    // This machine has no GPU: the factory says so, as an unsupported device, not a crash.
    EXPECT_EQ(be.error().kind, ErrorKind::kUnsupported);
    EXPECT_TRUE(no_device(be.error())) << be.error().message;
    auto mem = device_memory("cuda");
    EXPECT_FALSE(mem.ok());
    return;
  }
  if (std::getenv("GEMMA_CUDA_TEST_ON_CPU")) return;
  EXPECT_STREQ((*be)->name(), "cuda");
  auto mem = device_memory("cuda");
  ASSERT_TRUE(mem.ok()) << mem.error().message;
  EXPECT_GT(mem->total_bytes, uint64_t{1} << 30);
  EXPECT_LE(mem->free_bytes, mem->total_bytes);
}

TEST(CudaBackend, MemoryIsZeroedAndCopiesRoundTrip) {
  GEMMA_CUDA_OR_SKIP(be, false);
  auto b = be->allocate(1 << 20, BufferUse::kKvCache);
  ASSERT_TRUE(b.ok()) << b.error().message;
  std::vector<float> host(1 << 18, 1.0f);
  ASSERT_TRUE(be->to_host(host.data(), b->data(), 1 << 20).ok());
  EXPECT_TRUE(std::all_of(host.begin(), host.end(), [](float v) { return v == 0; }));
  std::mt19937 rng(1);
  const std::vector<float> v = randn(1000, rng);
  DeviceBuffer d = up(*be, v);
  // copy within device memory, also overlapping (memmove semantics)
  ASSERT_TRUE(be->copy(b->as<float>() + 10, d.data(), 1000 * sizeof(float)).ok());
  ASSERT_TRUE(be->copy(b->as<float>() + 15, b->as<float>() + 10, 1000 * sizeof(float)).ok());
  std::vector<float> back(1000);
  ASSERT_TRUE(be->to_host(back.data(), b->as<float>() + 15, 1000 * sizeof(float)).ok());
  EXPECT_EQ(back, v);
  EXPECT_FALSE(be->allocate(uint64_t{1} << 62, BufferUse::kActivations).ok());  // refused, not a crash
}

constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,   DType::BF16, DType::Q8_0, DType::Q4_0,
                                  DType::Q4_1, DType::Q5_0,  DType::Q5_1, DType::Q4_K, DType::Q5_K,
                                  DType::Q6_K, DType::Q4_0F, DType::I8};

struct RandomMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  std::vector<float> dense;  // dequantized (and scaled) rows, for the norms
  WeightMatrix w;
};

RandomMatrix random_matrix(DType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  RandomMatrix m;
  m.bytes = test::random_rows(type, rows, cols, rng);
  m.w.type = type;
  m.w.rows = rows;
  m.w.cols = cols;
  m.w.row_bytes = *row_bytes(type, static_cast<uint64_t>(cols));
  m.w.data = m.bytes.data();
  if (type == DType::I8) {  // gemma_pytorch int8: per-row scales
    std::uniform_real_distribution<float> s(0.001f, 0.02f);
    for (int64_t r = 0; r < rows; ++r) m.scales.push_back(s(rng));
    m.w.row_scales = m.scales.data();
  }
  m.dense.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, m.w.row(r), m.dense.data() + r * cols, cols);
    if (m.w.row_scales)
      for (int64_t c = 0; c < cols; ++c) m.dense[static_cast<size_t>(r * cols + c)] *= m.scales[static_cast<size_t>(r)];
  }
  return m;
}

// Every weight type, for one to many tokens (the matrix-vector kernels up to 8, cuBLAS after),
// in precise and fast mode; also through prepare() and matmul_many.
TEST(CudaBackend, MatmulMatchesTheCpuForEveryWeightType) {
  for (bool precise : {true, false}) {
    GEMMA_CUDA_OR_SKIP(be, precise);
    CpuBackend cpu(2, reference());
    std::mt19937 rng(7);
    for (DType type : kWeightTypes) {
      const int64_t rows = 70, cols = 512;  // rows not a multiple of the 8 rows a block takes
      RandomMatrix m = random_matrix(type, rows, cols, rng);
      const WeightMatrix* list[1] = {&m.w};
      ASSERT_TRUE(be->prepare(list).ok());
      for (int64_t n : {1, 2, 3, 5, 8, 9, 33}) {
        const std::vector<float> x = randn(static_cast<size_t>(n * cols), rng);
        std::vector<float> want(static_cast<size_t>(n * rows));
        ASSERT_TRUE(cpu.matmul(m.w, x.data(), n, want.data()).ok());
        DeviceBuffer dx = up(*be, x), dy = up(*be, std::vector<float>(static_cast<size_t>(n * rows)));
        ASSERT_TRUE(be->matmul(m.w, dx.as<float>(), n, dy.as<float>()).ok());
        const std::vector<float> got = down(*be, dy, static_cast<size_t>(n * rows));
        const bool half = !precise && n > 8 && type != DType::F32;
        const double tol = !half ? 1e-5 : type == DType::BF16 ? 8e-3 : 2e-3;
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < rows; ++r) {
            const double bound = tol * norm(m.dense.data() + r * cols, cols) * norm(x.data() + t * cols, cols);
            ASSERT_NEAR(got[static_cast<size_t>(t * rows + r)], want[static_cast<size_t>(t * rows + r)], bound)
                << dtype_name(type) << " n=" << n << (precise ? " precise" : " fast") << " row " << r << " token " << t;
          }
      }
    }
  }
}

TEST(CudaBackend, MatmulManyAndTypeChecks) {
  GEMMA_CUDA_OR_SKIP(be, true);
  CpuBackend cpu(2, reference());
  std::mt19937 rng(3);
  RandomMatrix a = random_matrix(DType::Q4_K, 40, 256, rng), b = random_matrix(DType::Q8_0, 24, 256, rng);
  const std::vector<float> x = randn(2 * 256, rng);
  DeviceBuffer dx = up(*be, x), da = up(*be, std::vector<float>(80)), db = up(*be, std::vector<float>(48));
  const WeightMatrix* ws[2] = {&a.w, &b.w};
  float* ys[2] = {da.as<float>(), db.as<float>()};
  ASSERT_TRUE(be->matmul_many(ws, dx.as<float>(), 2, ys).ok());
  std::vector<float> wa(80), wb(48);
  ASSERT_TRUE(cpu.matmul(a.w, x.data(), 2, wa.data()).ok());
  ASSERT_TRUE(cpu.matmul(b.w, x.data(), 2, wb.data()).ok());
  expect_close(down(*be, da, 80), wa, 1e-4, 1e-3, "matmul_many q4_k");
  expect_close(down(*be, db, 48), wb, 1e-4, 1e-3, "matmul_many q8_0");
  EXPECT_FALSE(be->supports(DType::Q8_K, 4, 256).ok());
  EXPECT_FALSE(be->supports(DType::Q8_0, 4, 48).ok());  // not whole blocks
  EXPECT_TRUE(be->supports(DType::F32, 4, 50).ok());    // float rows of any length
}

TEST(CudaBackend, EmbedMatchesTheCpuForEveryType) {
  GEMMA_CUDA_OR_SKIP(be, false);
  CpuBackend cpu(1, reference());
  std::mt19937 rng(11);
  for (DType type : kWeightTypes) {
    RandomMatrix m = random_matrix(type, 50, 256, rng);
    const std::vector<int32_t> ids = {0, 49, 7, 7, 23};
    std::vector<float> want(ids.size() * 256);
    ASSERT_TRUE(cpu.embed(m.w, ids, 3.5f, want.data()).ok());
    DeviceBuffer out = up(*be, std::vector<float>(want.size()));
    ASSERT_TRUE(be->embed(m.w, ids, 3.5f, out.as<float>()).ok());
    // The same dequantization and products: identical.
    EXPECT_EQ(down(*be, out, want.size()), want) << dtype_name(type);
    const std::vector<int32_t> bad = {50};
    EXPECT_FALSE(be->embed(m.w, bad, 1.0f, out.as<float>()).ok());
  }
}

TEST(CudaBackend, ElementwiseOpsMatchTheCpu) {
  GEMMA_CUDA_OR_SKIP(be, false);
  CpuBackend cpu(1, reference());
  std::mt19937 rng(5);
  const int64_t rows = 5, dim = 1152;
  const std::vector<float> x = randn(static_cast<size_t>(rows * dim), rng, 3.0f), y = randn(x.size(), rng);
  const std::vector<float> w = randn(static_cast<size_t>(dim), rng);
  DeviceBuffer dx = up(*be, x), dy = up(*be, y), dw = up(*be, w);
  {  // rms_norm, with the norm weight in device memory and (as the model passes it) host memory
    std::vector<float> want(x.size());
    ASSERT_TRUE(cpu.rms_norm(x.data(), w.data(), rows, dim, 1e-6f, want.data()).ok());
    DeviceBuffer out = up(*be, std::vector<float>(x.size()));
    ASSERT_TRUE(be->rms_norm(dx.as<float>(), dw.as<float>(), rows, dim, 1e-6f, out.as<float>()).ok());
    expect_close(down(*be, out, x.size()), want, 1e-5, 1e-6, "rms_norm");
    ASSERT_TRUE(be->rms_norm(dx.as<float>(), w.data(), rows, dim, 1e-6f, out.as<float>()).ok());
    expect_close(down(*be, out, x.size()), want, 1e-5, 1e-6, "rms_norm (host weight)");
  }
  for (bool with_w : {true, false}) {  // add_norm: x += norm(y) * w, or x += y
    std::vector<float> want = x;
    ASSERT_TRUE(cpu.add_norm(want.data(), y.data(), with_w ? w.data() : nullptr, rows, dim, 1e-6f).ok());
    DeviceBuffer acc = up(*be, x);
    ASSERT_TRUE(
        be->add_norm(acc.as<float>(), dy.as<float>(), with_w ? dw.as<float>() : nullptr, rows, dim, 1e-6f).ok());
    expect_close(down(*be, acc, x.size()), want, 1e-5, 1e-5, with_w ? "add_norm" : "add");
  }
  {  // gelu_mul
    std::vector<float> want = x;
    ASSERT_TRUE(cpu.gelu_mul(want.data(), y.data(), static_cast<int64_t>(x.size())).ok());
    DeviceBuffer g = up(*be, x);
    ASSERT_TRUE(be->gelu_mul(g.as<float>(), dy.as<float>(), static_cast<int64_t>(x.size())).ok());
    expect_close(down(*be, g, x.size()), want, 1e-6, 1e-6, "gelu_mul");
  }
  {  // softcap
    std::vector<float> want = x;
    ASSERT_TRUE(cpu.softcap(want.data(), static_cast<int64_t>(x.size()), 2.5f).ok());
    DeviceBuffer s = up(*be, x);
    ASSERT_TRUE(be->softcap(s.as<float>(), static_cast<int64_t>(x.size()), 2.5f).ok());
    expect_close(down(*be, s, x.size()), want, 1e-6, 1e-6, "softcap");
  }
}

TEST(CudaBackend, NormRopeMatchesTheCpu) {
  GEMMA_CUDA_OR_SKIP(be, false);
  CpuBackend cpu(1, reference());
  std::mt19937 rng(9);
  for (int head_dim : {16, 128, 256})
    for (bool qk_norm : {true, false}) {
      const int64_t n_tokens = 6;
      const int n_heads = 4;
      std::vector<float> x = randn(static_cast<size_t>(n_tokens * n_heads * head_dim), rng);
      const std::vector<float> w = randn(static_cast<size_t>(head_dim), rng);
      const std::vector<int32_t> pos = {0, 1, 17, 1000, 32767, 131000};
      std::vector<float> want = x;
      ASSERT_TRUE(cpu.norm_rope(want.data(), n_tokens, n_heads, head_dim, qk_norm ? w.data() : nullptr, 1e-6f,
                                pos.data(), 1e6f, 8.0f)
                      .ok());
      DeviceBuffer dx = up(*be, x), dw = up(*be, w);
      ASSERT_TRUE(be->norm_rope(dx.as<float>(), n_tokens, n_heads, head_dim, qk_norm ? dw.as<float>() : nullptr, 1e-6f,
                                pos.data(), 1e6f, 8.0f)
                      .ok());
      // The same angles and cos/sin (double, rounded to float); the norm's sum order differs.
      expect_close(down(*be, dx, x.size()), want, 1e-5, 1e-5, "norm_rope hd=" + std::to_string(head_dim));
    }
}

// Two sequences in one batch, ring caches on a sliding-window layer, softcap and a bidirectional
// span: store_kv writes the CPU's bytes, attention gives the CPU's outputs.
TEST(CudaBackend, StoreKvAndAttentionMatchTheCpu) {
  GEMMA_CUDA_OR_SKIP(be, false);
  CpuBackend cpu(2, reference());
  std::mt19937 rng(13);
  const int n_heads = 4, n_kv = 2, hd = 64;
  const int64_t kvw = n_kv * hd;
  for (DType kv : {DType::F32, DType::F16, DType::BF16, DType::Q8_0})
    for (int window : {0, 5}) {
      const uint64_t row = *row_bytes(kv, static_cast<uint64_t>(kvw));
      // The window layer's ring (16 slots) wraps in the second chunk without dropping a key a query
      // of that chunk sees (as the engine sizes it: window + step).
      const int64_t cap[2] = {window > 0 ? 16 : 40, 40};
      const int64_t past[2] = {12, 3};  // tokens already in each cache
      const int64_t new_tokens[2] = {6, 9};
      const std::vector<PositionSpan> span = {{14, 17}};  // sequence 0: positions 14..16 see each other
      // Fill the earlier positions of both caches through store_kv too, then the batch proper.
      std::vector<std::vector<uint8_t>> host_k(2), host_v(2);
      std::vector<DeviceBuffer> dev_k, dev_v;
      for (int s = 0; s < 2; ++s) {
        host_k[s].assign(static_cast<size_t>(cap[s]) * row, 0);
        host_v[s].assign(static_cast<size_t>(cap[s]) * row, 0);
        dev_k.push_back(up(*be, host_k[s].data(), host_k[s].size()));
        dev_v.push_back(up(*be, host_v[s].data(), host_v[s].size()));
      }
      auto run = [&](const int64_t* first, const int64_t* count, bool with_span) {
        const int64_t rows = count[0] + count[1];
        const std::vector<float> q = randn(static_cast<size_t>(rows * n_heads * hd), rng);
        const std::vector<float> k = randn(static_cast<size_t>(rows * kvw), rng);
        const std::vector<float> v = randn(static_cast<size_t>(rows * kvw), rng);
        std::vector<int32_t> pos;
        for (int s = 0; s < 2; ++s)
          for (int64_t i = 0; i < count[s]; ++i) pos.push_back(static_cast<int32_t>(first[s] + i));
        BatchAttention a;
        a.positions = pos.data();
        a.n_heads = n_heads;
        a.n_kv_heads = n_kv;
        a.head_dim = hd;
        a.kv_type = kv;
        a.window = window;
        a.scale = 0.125f;
        a.softcap = 30.0f;
        // CPU, host memory
        std::vector<float> out_cpu = q;
        std::vector<SequenceKv> seq_cpu = {
            {0, count[0], host_k[0].data(), host_v[0].data(), cap[0],
             with_span ? std::span<const PositionSpan>(span) : std::span<const PositionSpan>()},
            {count[0], count[1], host_k[1].data(), host_v[1].data(), cap[1], {}}};
        a.q = out_cpu.data();
        a.out = out_cpu.data();
        a.k = k.data();
        a.v = v.data();
        a.sequences = seq_cpu;
        ASSERT_TRUE(cpu.store_kv(a).ok());
        ASSERT_TRUE(cpu.attention(a).ok());
        // CUDA, device memory
        DeviceBuffer dq = up(*be, q), dk = up(*be, k), dv = up(*be, v);
        std::vector<SequenceKv> seq_dev = seq_cpu;
        for (int s = 0; s < 2; ++s) seq_dev[s].k_cache = dev_k[s].data(), seq_dev[s].v_cache = dev_v[s].data();
        a.q = dq.as<float>();
        a.out = dq.as<float>();
        a.k = dk.as<float>();
        a.v = dv.as<float>();
        a.sequences = seq_dev;
        ASSERT_TRUE(be->store_kv(a).ok());
        ASSERT_TRUE(be->attention(a).ok());
        for (int s = 0; s < 2; ++s) {
          std::vector<uint8_t> kb(host_k[s].size()), vb(host_v[s].size());
          ASSERT_TRUE(be->to_host(kb.data(), dev_k[s].data(), kb.size()).ok());
          ASSERT_TRUE(be->to_host(vb.data(), dev_v[s].data(), vb.size()).ok());
          ASSERT_EQ(kb, host_k[s]) << dtype_name(kv) << " K cache of sequence " << s;
          ASSERT_EQ(vb, host_v[s]) << dtype_name(kv) << " V cache of sequence " << s;
        }
        expect_close(down(*be, dq, q.size()), out_cpu, 0, 2e-5,
                     std::string("attention ") + std::string(dtype_name(kv)) + " window " + std::to_string(window));
      };
      int64_t first0[2] = {0, 0};
      run(first0, past, false);
      int64_t first1[2] = {past[0], past[1]};
      run(first1, new_tokens, window == 0);
    }
}

// Greedy generation of a model on both backends (precise: float32 KV caches and products).
struct Generated {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;
};

Generated generate(const Model& model, Backend& be, const std::vector<int32_t>& prompt, int max_tokens, DType kv) {
  Generated g;
  EngineOptions o;
  o.n_ctx = 256;
  o.step_tokens = 16;  // prefill in chunks: the many-token path and the KV cache across chunks
  o.kv_type = kv;
  auto e = Engine::create(model, be, o);
  EXPECT_TRUE(e.ok()) << e.error().message;
  if (!e.ok()) return g;
  Request r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.on_token = [&g](const TokenEvent& ev) {
    g.ids.push_back(ev.id);
    g.logits.emplace_back(ev.logits.begin(), ev.logits.end());
    return true;
  };
  r.on_done = [](const RequestResult& res) { EXPECT_TRUE(res.status.ok()) << res.status.error().message; };
  (*e)->submit(std::move(r));
  EXPECT_TRUE((*e)->run_to_completion().ok());
  return g;
}

std::vector<int32_t> prompt_of(int n, int vocab) {
  std::vector<int32_t> p{2};
  for (int i = 1; i < n; ++i) p.push_back(4 + (i * 37) % std::max(1, vocab - 8));
  return p;
}

TEST(CudaEndToEnd, TinyFixturesGiveTheCpuGreedyTokens) {
  GEMMA_CUDA_OR_SKIP(probe, true);
  probe.reset();
  const char* models[] = {"gemma1_tiny/model.f32.gguf",
                          "gemma1_tiny/model.q8_0.gguf",
                          "gemma1_tiny_mha/model.f32.gguf",
                          "gemma2_tiny/model.q8_0.gguf",
                          "gemma2_tiny_qscale/model.f32.gguf",
                          "gemma3_tiny/model.f32.gguf",
                          "gemma3_tiny/model.f16.gguf",
                          "gemma3_tiny/model.bf16.gguf",
                          "gemma3_tiny/model.q8_0.gguf",
                          "gemma3_tiny/model.q4_0.gguf",
                          "gemma3_tiny/model.q4_1.gguf",
                          "gemma3_tiny/model.q5_0.gguf",
                          "gemma3_tiny/model.q5_1.gguf",
                          "gemma3_tiny/model_int8.ckpt",
                          "gemma3_tiny_kquant/model.q4_k.gguf",
                          "gemma3_tiny_kquant/model.q5_k.gguf",
                          "gemma3_tiny_kquant/model.q6_k.gguf",
                          "gemma3_tiny_scaled/model.f32.gguf",
                          "gemma3_awq_tiny"};
  for (const char* name : models) {
    auto m = Model::load(test::fixture(std::string("models/") + name));
    ASSERT_TRUE(m.ok()) << name << ": " << m.error().message;
    const std::vector<int32_t> prompt = prompt_of(40, (*m)->config().vocab_size);
    CpuBackend cpu(2, CpuOptions{true});
    const Generated want = generate(**m, cpu, prompt, 12, DType::F32);
    auto be = make_cuda(true);
    ASSERT_TRUE(be.ok()) << be.error().message;
    const Generated got = generate(**m, **be, prompt, 12, DType::F32);
    ASSERT_EQ(got.ids, want.ids) << name;
    ASSERT_EQ(got.logits.size(), want.logits.size());
    for (size_t i = 0; i < want.logits.size(); ++i)
      expect_close(got.logits[i], want.logits[i], 0, 1e-3, std::string(name) + " logits of token " + std::to_string(i));
  }
}

TEST(CudaEndToEnd, RealModelGivesTheCpuGreedyTokens) {
  GEMMA_CUDA_OR_SKIP(probe, true);
  probe.reset();
  GEMMA_REQUIRE_REAL_MODEL();
  auto m = Model::load(test::real_model_path());
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto encoded = (*m)->tokenizer()->encode("The capital of France is", true);
  ASSERT_TRUE(encoded.ok()) << encoded.error().message;
  const std::vector<int32_t> prompt = *encoded;
  CpuBackend cpu(2, CpuOptions{true});
  const Generated want = generate(**m, cpu, prompt, 24, DType::F32);
  {
    auto be = make_cuda(true);
    ASSERT_TRUE(be.ok()) << be.error().message;
    EXPECT_EQ(generate(**m, **be, prompt, 24, DType::F32).ids, want.ids) << "precise";
  }
  {  // the default mode (f16 tiles for prefill, f16 KV cache): the same first tokens on this prompt
    auto be = make_cuda(false);
    ASSERT_TRUE(be.ok()) << be.error().message;
    const Generated fast = generate(**m, **be, prompt, 8, DType::F16);
    EXPECT_EQ(fast.ids, std::vector<int32_t>(want.ids.begin(), want.ids.begin() + 8)) << "fast";
  }
}

}  // namespace
}  // namespace gemma

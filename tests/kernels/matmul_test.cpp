// Matmul kernels of every weight type and every ISA compiled in, against a float64 reference on
// the dequantized weights. The tolerance is derived from the operands: quantizing an activation
// block to int8 moves each element by at most d/2, so |error| <= Σ_blocks (Σ|w|) * d_x / 2, plus
// float32 rounding of the accumulation. 1 token takes the one-token decode kernels (AVX-512 where
// the CPU has it), 5, 6 and 7 tokens the decode tiles (a 4-token group
// plus 1, 2 or 3), 21 the packed prefill GEMM
// (kernels/cpu/gemm_avx2.h, or the AVX-512 GEMMs) with a partial token tile; 61 rows leave 5 rows
// outside 8-row tiles, one 8-row tile after the 16-row tiles of the AVX2 float and AVX-512 VNNI
// GEMMs (520 float columns span 3 blocks), and a 16-row tile after the AVX-512 BF16 GEMM's 32.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/isa.h"
#include "kernels/dequant.h"
#include "random_blocks.h"

namespace gemma {
namespace {

struct Case {
  DType type;
  int64_t cols;
};

std::vector<const cpu::IsaKernels*> compiled_isas() {
  std::vector<const cpu::IsaKernels*> v = {&cpu::isa_generic()};
  if (cpu::cpu_has_avx2() && cpu::isa_avx2()) v.push_back(cpu::isa_avx2());
  if (cpu::cpu_has_avx512() && cpu::isa_avx512()) v.push_back(cpu::isa_avx512());
  if (cpu::cpu_has_amx() && cpu::isa_avx512_amx()) v.push_back(cpu::isa_avx512_amx());
  return v;
}

class MatmulTest : public ::testing::TestWithParam<Case> {
 protected:
  void check(int64_t n_tok);
};

TEST_P(MatmulTest, MatchesFloat64ReferenceWithinQuantizationBound) {
  for (const int64_t n_tok : {1, 5, 6, 7, 21}) check(n_tok);
}

void MatmulTest::check(int64_t n_tok) {
  const auto [type, cols] = GetParam();
  const int64_t rows = 61;
  std::mt19937 rng(1234 + static_cast<int>(type));
  std::vector<uint8_t> wbytes = test::random_rows(type, rows, cols, rng);
  WeightMatrix w{type, rows, cols, wbytes.data(), *row_bytes(type, cols)};
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n_tok * cols));
  for (auto& v : x) v = normal(rng);
  std::vector<float> wf(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) ASSERT_TRUE(dequantize_row(type, w.row(r), wf.data() + r * cols, cols));

  for (const cpu::IsaKernels* isa : compiled_isas()) {
    ASSERT_NE(isa->rows[static_cast<int>(type)], nullptr) << isa->name;
    const bool q = cpu::uses_q8a(type);
    std::vector<cpu::BlockQ8A> xq(static_cast<size_t>(n_tok * cols / 32));
    if (q)
      for (int64_t t = 0; t < n_tok; ++t) isa->quantize_q8a(x.data() + t * cols, xq.data() + t * cols / 32, cols);
    std::vector<float> y(static_cast<size_t>(n_tok * rows));
    isa->rows[static_cast<int>(type)](w, 0, rows, q ? static_cast<const void*>(xq.data()) : x.data(), n_tok, y.data(),
                                      rows);
    double worst = 0;
    for (int64_t t = 0; t < n_tok; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, abs_sum = 0, bound = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double wv = wf[static_cast<size_t>(r * cols + c)];
          ref += wv * x[static_cast<size_t>(t * cols + c)];
          abs_sum += std::fabs(wv * x[static_cast<size_t>(t * cols + c)]);
          if (q && c % 32 == 31) {
            double wabs = 0;
            for (int64_t k = c - 31; k <= c; ++k) wabs += std::fabs(wf[static_cast<size_t>(r * cols + k)]);
            bound += wabs * xq[static_cast<size_t>((t * cols + c) / 32)].d / 2;
          }
        }
        bound += 4e-6 * abs_sum + 1e-6;  // float32 accumulation
        // The AVX-512 and AMX BF16 prefill GEMMs round activations to bfloat16: each |x| moves by
        // <= 2^-8 |x|.
        if (type == DType::BF16 && std::string(isa->name).rfind("avx512", 0) == 0 && cpu::cpu_has_avx512_bf16() &&
            n_tok >= 8)
          bound += abs_sum / 256;
        const double err = std::fabs(y[static_cast<size_t>(t * rows + r)] - ref);
        worst = std::max(worst, err / bound);
        ASSERT_LE(err, bound) << isa->name << " " << dtype_name(type) << " row " << r << " token " << t << " of "
                              << n_tok;
      }
    }
    RecordProperty(std::string(isa->name) + "_" + std::to_string(n_tok) + "_worst_error_over_bound",
                   std::to_string(worst));
  }
}

// Q8_0 has 47 blocks a row, so the AVX-512 one-token kernel's block pairs and a last single
// block both run, and 61 rows end in a partial 16-row tile. Float types: 520 columns take the AVX2 kernels' leftover
// columns; 608 (19 x 32) the AVX-512 one-token kernel's 64-element steps and its last 32; BF16 1088 two column blocks
// of the AMX GEMM (1024 + 64), the second adding to the first. F32 72 (the vision tower's head width,
// as full_attention's scores multiply) and F16 1160 (4 x 256 + 136) take the AVX-512 float32 GEMM's
// column tail below its 16-column transposes and its partial column blocks.
INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest,
                         ::testing::Values(Case{DType::F32, 520}, Case{DType::F16, 520}, Case{DType::BF16, 520},
                                           Case{DType::F32, 608}, Case{DType::F16, 608}, Case{DType::BF16, 608},
                                           Case{DType::BF16, 1088}, Case{DType::F32, 72}, Case{DType::F16, 1160},
                                           Case{DType::Q8_0, 1504}, Case{DType::Q4_0, 640}, Case{DType::Q4_1, 640},
                                           Case{DType::Q5_0, 640}, Case{DType::Q5_1, 640}, Case{DType::Q4_K, 512},
                                           Case{DType::Q5_K, 512}, Case{DType::Q6_K, 512}, Case{DType::Q4_0F, 640}),
                         [](const auto& p) {
                           return std::string(dtype_name(p.param.type)) + "_" + std::to_string(p.param.cols);
                         });

TEST(Quantize, IsaMatchesGenericExactly) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(4096);
  for (auto& v : x) v = normal(rng);
  x[5] = 0;
  for (int i = 64; i < 96; ++i) x[static_cast<size_t>(i)] = 0;  // an all-zero block
  std::vector<cpu::BlockQ8A> a(128), b(128);
  cpu::isa_generic().quantize_q8a(x.data(), a.data(), 4096);
  for (const cpu::IsaKernels* isa : compiled_isas()) {
    isa->quantize_q8a(x.data(), b.data(), 4096);
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].d, b[i].d) << isa->name;
      ASSERT_FLOAT_EQ(a[i].s, b[i].s) << isa->name;
      for (int j = 0; j < 32; ++j) ASSERT_EQ(a[i].qs[j], b[i].qs[j]) << isa->name << " block " << i;
    }
  }
}

// Batch invariance: the engine batches decode tokens of many sequences (and prompt chunks) into
// one call, so a token's outputs must not depend on what else is in the call. For every
// block-quantized type and every table this CPU runs, y rows of a token alone (n = 1, the
// one-token kernels) and at every position of batches of 2-33 tokens (the decode tiles, the
// prefill GEMMs and their partial token tiles) must be bit-identical, and so must a row range
// split into the shares of 1, 2 or 3 threads (rows left over from whole tiles take other paths).
class BatchInvarianceTest : public ::testing::TestWithParam<DType> {};

TEST_P(BatchInvarianceTest, TokenRowsAreBitIdenticalWhateverTheBatch) {
  const DType type = GetParam();
  const bool k_quant = type == DType::Q4_K || type == DType::Q5_K || type == DType::Q6_K;
  // Q8_0: 47 blocks (an odd count: the one-token kernel's last single block); K-quants: 3 super-blocks.
  const int64_t cols = type == DType::Q8_0 ? 1504 : k_quant ? 768 : 640, rows = 61, nb = cols / 32;
  const int64_t max_tokens = 33;
  std::mt19937 rng(99 + static_cast<int>(type));
  std::vector<uint8_t> wbytes = test::random_rows(type, rows, cols, rng);
  const WeightMatrix w{type, rows, cols, wbytes.data(), *row_bytes(type, cols)};
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(max_tokens * cols));
  for (auto& v : x) v = normal(rng);

  for (const cpu::IsaKernels* isa : compiled_isas()) {
    const cpu::RowsKernel kernel = isa->rows[static_cast<int>(type)];
    ASSERT_NE(kernel, nullptr) << isa->name;
    std::vector<cpu::BlockQ8A> xq(static_cast<size_t>(max_tokens * nb));
    for (int64_t t = 0; t < max_tokens; ++t) isa->quantize_q8a(x.data() + t * cols, xq.data() + t * nb, cols);
    // Rows [0, rows) in the shares ThreadPool::split gives 1, 2 and 3 threads (8-row aligned).
    const std::vector<std::vector<int64_t>> splits = {{0, rows}, {0, 32, rows}, {0, 24, 48, rows}};
    auto run = [&](int64_t t0, int64_t n, const std::vector<int64_t>& split) {
      std::vector<float> y(static_cast<size_t>(n * rows));
      for (size_t k = 0; k + 1 < split.size(); ++k)
        kernel(w, split[k], split[k + 1], xq.data() + t0 * nb, n, y.data(), rows);
      return y;
    };
    std::vector<std::vector<float>> alone;
    for (int64_t t = 0; t < max_tokens; ++t) alone.push_back(run(t, 1, splits[0]));
    for (const auto& split : splits) {
      for (const int64_t n : {1, 2, 3, 7, 8, 16, 33}) {
        // Batches starting at token 0 and at token max_tokens - n: each token at two positions.
        for (const int64_t t0 : {int64_t{0}, max_tokens - n}) {
          const std::vector<float> y = run(t0, n, split);
          for (int64_t j = 0; j < n; ++j)
            ASSERT_EQ(std::memcmp(y.data() + j * rows, alone[static_cast<size_t>(t0 + j)].data(), rows * sizeof(float)),
                      0)
                << isa->name << " " << dtype_name(type) << ": token " << t0 + j << " at position " << j << " of " << n
                << " tokens, " << split.size() - 1 << " row shares";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BlockTypes, BatchInvarianceTest,
                         ::testing::Values(DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                           DType::Q4_0F, DType::I8, DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace gemma

// Matrix-vector (decode) and matrix-matrix (prefill) kernels per weight type, on every ISA this CPU
// runs, reporting GB/s of weights streamed and GFLOP/s. Shapes are those of Gemma 3 270M / 1B.
// Compare matvec_dram's GB/s with build/bench/memory_bandwidth: that is the decode ceiling.
#include <random>

#include <benchmark/benchmark.h>

#include "kernels/cpu/cpu_backend.h"
#include "random_blocks.h"

namespace {

using gemma::DType;

void run(benchmark::State& state, DType type, int64_t rows, int64_t cols, int64_t n_tok, int threads) {
  std::mt19937 rng(1);
  const std::vector<uint8_t> w = gemma::test::random_rows(type, rows, cols, rng);
  gemma::WeightMatrix m{type, rows, cols, w.data(), *gemma::row_bytes(type, static_cast<uint64_t>(cols))};
  std::vector<float> x(static_cast<size_t>(n_tok * cols), 0.5f), y(static_cast<size_t>(n_tok * rows));
  gemma::CpuBackend be(threads);
  for (auto _ : state) {
    if (!be.matmul(m, x.data(), n_tok, y.data()).ok()) state.SkipWithError("matmul failed");
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w.size()));
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(2 * rows * cols * n_tok) * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(be.name());
}

void register_all() {
  const DType types[] = {DType::F32,  DType::BF16, DType::F16,  DType::Q8_0, DType::Q4_0, DType::Q4_1,
                         DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (DType t : types) {
    const int64_t cols = gemma::dtype_info(t).block_elems == 256 ? 1024 : 1152;
    for (int threads : {1, 2}) {
      benchmark::RegisterBenchmark(("matvec/" + std::string(gemma::dtype_name(t)) + "/6912x" + std::to_string(cols) +
                                    "/t" + std::to_string(threads))
                                       .c_str(),
                                   [=](benchmark::State& s) { run(s, t, 6912, cols, 1, threads); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("matmul/" + std::string(gemma::dtype_name(t)) + "/6912x" + std::to_string(cols) +
                                    "x64/t" + std::to_string(threads))
                                       .c_str(),
                                   [=](benchmark::State& s) { run(s, t, 6912, cols, 64, threads); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  // 512 rows (256 for the float types; 170-680 KB): held in one core's 512 KB L2, so this
  // measures the kernel's arithmetic, the rate it could stream at if memory were no limit (the
  // 6912-row matrices above are 3-28 MB, at or beyond the part of the shared L3 this machine gets).
  for (DType t : types) {
    const int64_t cols = gemma::dtype_info(t).block_elems == 256 ? 768 : 640;
    const int64_t rows = gemma::dtype_info(t).block_bytes * cols / gemma::dtype_info(t).block_elems > 800 ? 256 : 512;
    benchmark::RegisterBenchmark(("matvec_l2/" + std::string(gemma::dtype_name(t)) + "/" + std::to_string(rows) + "x" +
                                  std::to_string(cols) + "/t1")
                                     .c_str(),
                                 [=](benchmark::State& s) { run(s, t, rows, cols, 1, 1); })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
  // The vision tower's fc1 (SigLIP, 1152 -> 4304) over 1024 of an image's 4096 patch tokens, and
  // its bidirectional attention over all 4096 (16 heads of 72): the encoder's two hot spots.
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(
          ("matmul_vision/" + std::string(gemma::dtype_name(t)) + "/4304x1152x1024/t" + std::to_string(threads))
              .c_str(),
          [=](benchmark::State& s) { run(s, t, 4304, 1152, 1024, threads); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  for (int threads : {1, 2})
    benchmark::RegisterBenchmark(
        ("full_attention_vision/4096x16x72/t" + std::to_string(threads)).c_str(),
        [=](benchmark::State& state) {
          const int64_t n = 4096, width = 16 * 72;
          std::mt19937 rng(2);
          std::normal_distribution<float> nd(0.0f, 1.0f);
          std::vector<float> q(static_cast<size_t>(n * width)), k(q.size()), v(q.size()), o(q.size());
          for (auto* a : {&q, &k, &v})
            for (float& f : *a) f = nd(rng);
          gemma::CpuBackend be(threads);
          for (auto _ : state) {
            if (!be.full_attention(q.data(), k.data(), v.data(), n, 16, 72, 0.11785f, o.data()).ok())
              state.SkipWithError("full_attention failed");
            benchmark::ClobberMemory();
          }
          state.counters["GFLOP/s"] = benchmark::Counter(4.0 * n * n * width * static_cast<double>(state.iterations()),
                                                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
        })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  // The tied output projection of Gemma 3 (262144 x 640 for 270M): far larger than the L3 cache, so
  // this is the one that measures streaming from DRAM.
  for (DType t : {DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t cols = gemma::dtype_info(t).block_elems == 256 ? 768 : 640;
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(("matvec_dram/" + std::string(gemma::dtype_name(t)) + "/262144x" +
                                    std::to_string(cols) + "/t" + std::to_string(threads))
                                       .c_str(),
                                   [=](benchmark::State& s) { run(s, t, 262144, cols, 1, threads); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

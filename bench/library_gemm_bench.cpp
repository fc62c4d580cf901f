// Our float-weight prefill GEMM beside the libraries we could have used instead: OpenBLAS sgemm
// and oneDNN's matmul. Shape: Gemma 3 1B's FFN (6912 x 1152) against a 256-token prefill chunk.
// The libraries take float32 weights (twice the bytes of the BF16 checkpoint); oneDNN is also
// asked for BF16 weights and activations (it has no kernel for them on a CPU without AVX-512, and
// Debian's OpenBLAS is built without its BF16 GEMM). Built only when
// libopenblas-dev and libdnnl-dev are installed; docs/benchmarks.md gives the numbers and why the
// engine keeps its own kernels.
#include <cblas.h>
#include <omp.h>

#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "kernels/cpu/cpu_backend.h"
#include "util/half.h"

extern "C" void openblas_set_num_threads(int);

namespace {

constexpr int64_t kRows = 6912, kCols = 1152, kTokens = 256;

struct Operands {
  std::vector<float> w, x, y;
  std::vector<uint16_t> w_bf16;
  Operands() : w(kRows * kCols), x(kTokens * kCols), y(kTokens * kRows), w_bf16(w.size()) {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 0.05f);
    for (auto& v : x) v = dist(rng);
    for (size_t i = 0; i < w.size(); ++i) {
      w_bf16[i] = gemma::f32_to_bf16(dist(rng));
      w[i] = gemma::bf16_to_f32(w_bf16[i]);
    }
  }
};

Operands& operands() {
  static Operands o;
  return o;
}

void set_rate(benchmark::State& state) {
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(2 * kRows * kCols * kTokens) * state.iterations(),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void ours_bf16(benchmark::State& state) {
  Operands& o = operands();
  gemma::WeightMatrix m{gemma::DType::BF16, kRows, kCols, reinterpret_cast<const uint8_t*>(o.w_bf16.data()),
                        static_cast<size_t>(kCols * 2)};
  gemma::CpuBackend be(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    if (!be.matmul(m, o.x.data(), kTokens, o.y.data()).ok()) state.SkipWithError("matmul failed");
    benchmark::ClobberMemory();
  }
  set_rate(state);
}

void openblas_f32(benchmark::State& state) {
  Operands& o = operands();
  openblas_set_num_threads(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kTokens, kRows, kCols, 1.0f, o.x.data(), kCols, o.w.data(),
                kCols, 0.0f, o.y.data(), kRows);
    benchmark::ClobberMemory();
  }
  set_rate(state);
}

// y[t][r] = Σ_c x[t][c] w[r][c]: the weights as a (cols x rows) matrix stored transposed ("ba").
void onednn(benchmark::State& state, dnnl::memory::data_type type) {
  using dnnl::memory;
  Operands& o = operands();
  omp_set_num_threads(static_cast<int>(state.range(0)));
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const memory::desc src_md({kTokens, kCols}, type, memory::format_tag::ab);
  const memory::desc wei_md({kCols, kRows}, type, memory::format_tag::ba);
  const memory::desc dst_md({kTokens, kRows}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, wei_md, dst_md), eng);
  } catch (const dnnl::error& e) {
    state.SkipWithError(e.what());
    return;
  }
  memory src(src_md, eng), wei(wei_md, eng), dst(dst_md, eng);
  if (type == memory::data_type::f32) {
    std::memcpy(src.get_data_handle(), o.x.data(), o.x.size() * 4);
    std::memcpy(wei.get_data_handle(), o.w.data(), o.w.size() * 4);
  } else {
    auto* s = static_cast<uint16_t*>(src.get_data_handle());
    for (size_t i = 0; i < o.x.size(); ++i) s[i] = gemma::f32_to_bf16(o.x[i]);
    std::memcpy(wei.get_data_handle(), o.w_bf16.data(), o.w_bf16.size() * 2);
  }
  dnnl::matmul prim(pd);
  for (auto _ : state) {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    strm.wait();
  }
  set_rate(state);
  state.SetLabel(pd.impl_info_str());
}

}  // namespace

BENCHMARK(ours_bf16)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(openblas_f32)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(onednn, f32, dnnl::memory::data_type::f32)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(onednn, bf16, dnnl::memory::data_type::bf16)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_MAIN();

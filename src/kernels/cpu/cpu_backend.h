// The CPU implementation of Backend: a persistent thread pool, the ISA kernel table chosen at
// construction, and scratch space for quantized activations.
#pragma once

#include <memory>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/isa.h"
#include "util/thread_pool.h"

namespace gemma {

// The weight types and shapes the CPU kernels handle (every type of the formats we read; the
// int8-block types need whole 32-column blocks).
Status cpu_supports(DType type, int64_t rows, int64_t cols);

struct CpuOptions {
  // Float activations for every weight type: quantized rows are dequantized and multiplied in
  // float32, as the reference implementations compute. Slower; used by parity tests and --precise.
  // The default quantizes activations to int8 blocks for integer dot products, as llama.cpp does
  // (and, for BF16 weights on CPUs with AVX512_BF16, rounds prefill activations to bfloat16).
  bool precise = false;
  // The kernel table to run (tests run every compiled table); null: the best this CPU can run
  // (cpu::select_isa()).
  const cpu::IsaKernels* isa = nullptr;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads, CpuOptions options = {});
  const char* name() const override { return isa_->name; }
  int n_threads() const override { return pool_.size(); }
  Status supports(DType type, int64_t rows, int64_t cols) const override { return cpu_supports(type, rows, cols); }
  ThreadPool& pool() { return pool_; }
  const cpu::IsaKernels& isa() const { return *isa_; }

  Result<DeviceBuffer> allocate(uint64_t bytes, BufferUse use) override;
  Status to_device(void* device_dst, const void* host_src, uint64_t bytes) override;
  Status to_host(void* host_dst, const void* device_src, uint64_t bytes) override;
  Status copy(void* device_dst, const void* device_src, uint64_t bytes) override;

  Status matmul(const WeightMatrix& w, const float* x, int64_t n, float* y) override;
  Status matmul_many(std::span<const WeightMatrix* const> ws, const float* x, int64_t n,
                     std::span<float* const> ys) override;
  Status embed(const WeightMatrix& table, std::span<const int32_t> ids, float scale, float* out) override;
  Status rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* out) override;
  Status add_norm(float* x, const float* y, const float* w, int64_t n_rows, int64_t dim, float eps) override;
  Status gelu_mul(float* g, const float* u, int64_t n) override;
  Status norm_rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const float* norm_w, float eps,
                   const int32_t* positions, float rope_base, float rope_scale) override;
  Status store_kv(const BatchAttention& batch) override;
  Status attention(const BatchAttention& batch) override;
  Status softcap(float* x, int64_t n, float cap) override;
  Status layer_norm(const float* x, const float* w, const float* b, int64_t n_rows, int64_t dim, float eps,
                    float* out) override;
  Status add_bias(float* x, const float* b, int64_t n_rows, int64_t dim) override;
  Status gelu(float* x, int64_t n) override;
  Status full_attention(const float* q, const float* k, const float* v, int64_t n, int n_heads, int head_dim,
                        float scale, float* out) override;
  Status avg_pool(const float* x, int side, int64_t dim, int kernel, float* out) override;

 private:
  // Runs fn(begin, end) over [0, n) split across the pool, or inline when n is small.
  template <typename Fn>
  void parallel_for(int64_t n, int64_t min_per_thread, Fn&& fn);
  const void* prepare_input(DType type, const float* x, int64_t n, int64_t cols);

  ThreadPool pool_;
  const cpu::IsaKernels* isa_;
  CpuOptions options_;
  std::vector<cpu::BlockQ8A> q8a_;  // quantized copy of the current matmul input
  // full_attention's scratch: every head's values transposed; per thread a block of queries (then
  // the rows' 1 / sum), its scores and outputs.
  std::vector<float> attn_vt_, attn_q_, attn_s_, attn_o_;
};

}  // namespace gemma

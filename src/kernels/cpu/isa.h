// The per-ISA kernel table of the CPU backend. Each ISA's kernels live in their own translation
// unit compiled for that ISA (matmul_avx2.cpp with -mavx2 -mfma ...); the table is chosen once,
// when the backend is created, from the CPU's features. A null entry falls back to the generic
// (portable) kernel, which is also the reference the ISA kernels are tested against.
#pragma once

#include <cstdint>

#include "formats/dtype.h"
#include "kernels/backend.h"
#include "kernels/cpu/q8a.h"

namespace gemma::cpu {

// Computes y[t * ldy + r] = W[r] · x_t for rows r in [r0, r1) and tokens t in [0, n).
// x is float [n][W.cols] for float weight types, BlockQ8A [n][W.cols / 32] for quantized types.
using RowsKernel = void (*)(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y,
                            int64_t ldy);
using QuantizeKernel = void (*)(const float* x, BlockQ8A* y, int64_t n);
// Attention of query token t's heads in KV group g over keys j in [j0, j1] (positions), without
// normalising: per head h of the group, m[h] = max score, l[h] = Σ exp(s - m), acc[h][:] =
// Σ exp(s - m) v. The backend splits long key ranges across threads and merges the partials.
using AttentionKernel = void (*)(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l,
                                 float* acc);

struct IsaKernels {
  const char* name;
  RowsKernel rows[static_cast<int>(DType::kCount)];
  QuantizeKernel quantize_q8a;
  // Any weight type against float activations: each row is dequantized to float32, then dotted.
  // The precise path (CpuOptions::precise): exact up to float32 summation order.
  RowsKernel rows_dequantized;
  // For float weight types whose rows[] kernel rounds the activations (BF16 prefill on AVX512_BF16
  // takes them as bfloat16), the kernel that keeps them float32, for the precise path; null where
  // rows[] is exact already.
  RowsKernel rows_exact[static_cast<int>(DType::kCount)];
  AttentionKernel attention;
  void (*gelu_mul)(float* g, const float* u, int64_t n);  // g = gelu_tanh(g) * u
  void (*gelu)(float* x, int64_t n);                      // x = gelu_tanh(x)
  // s = exp(s - max(s)) over n > 0 values; returns their sum (a softmax row before normalising).
  float (*exp_max_sum)(float* s, int64_t n);
};

const IsaKernels& isa_generic();
const IsaKernels* isa_avx2();  // nullptr when not compiled in
// The AVX2 table with the one-token kernels and the prefill GEMMs of the block types (and BF16)
// replaced by AVX-512 VNNI / BF16 ones (matmul_avx512.cpp); nullptr when not compiled in.
const IsaKernels* isa_avx512();
// The AVX-512 table with BF16 prefill on AMX tiles (gemm_amx.cpp); for CPUs where cpu_has_amx().
const IsaKernels* isa_avx512_amx();

// True if the weight type's kernels take BlockQ8A activations.
bool uses_q8a(DType t);
bool matmul_supported(DType t);

void attention_generic(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l,
                       float* acc);
void gelu_mul_generic(float* g, const float* u, int64_t n);
void gelu_mul_avx2(float* g, const float* u, int64_t n);
void gelu_generic(float* x, int64_t n);
void gelu_avx2(float* x, int64_t n);
float exp_max_sum_generic(float* s, int64_t n);
float exp_max_sum_avx2(float* s, int64_t n);
void attention_avx2(const AttentionArgs& a, int64_t t, int g, int64_t j0, int64_t j1, float* m, float* l, float* acc);

// CPU feature detection (CPUID + XGETBV): AVX2, FMA, F16C and BMI2 usable.
bool cpu_has_avx2();
// AVX-512 F, BW, VL, DQ and VNNI usable (on top of cpu_has_avx2()).
bool cpu_has_avx512();
// AVX512_BF16 usable (vdpbf16ps; on top of cpu_has_avx512()).
bool cpu_has_avx512_bf16();
// AMX-TILE and AMX-BF16 present and the OS's permission to use the tiles granted (asked for
// once, with arch_prctl, on the first call), on top of cpu_has_avx512_bf16().
bool cpu_has_amx();

// The best table this CPU can run; GEMMA_ISA=generic|avx2|avx512 in the environment forces one
// (avx512: without AMX).
const IsaKernels& select_isa();

}  // namespace gemma::cpu

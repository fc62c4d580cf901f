list(APPEND GEMMA_SOURCES
  kernels/backend.cpp
  kernels/dequant.cpp
  kernels/quantize.cpp
  kernels/cpu/isa_select.cpp
  kernels/cpu/matmul_generic.cpp
  kernels/cpu/cpu_backend.cpp
  kernels/cpu/attention_generic.cpp)
list(APPEND GEMMA_AVX2_SOURCES kernels/cpu/matmul_avx2.cpp kernels/cpu/gemm_avx2.cpp kernels/cpu/attention_avx2.cpp
  kernels/cpu/elementwise_avx2.cpp)
list(APPEND GEMMA_AVX512_SOURCES kernels/cpu/matmul_avx512.cpp)
list(APPEND GEMMA_AMX_SOURCES kernels/cpu/gemm_amx.cpp)
# Reference dequantizers must be bit-exact with ggml: no FMA contraction (docs/spec/formats.md §7.4).
set_source_files_properties(kernels/dequant.cpp kernels/quantize.cpp PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")

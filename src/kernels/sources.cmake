list(APPEND GEMMA_SOURCES kernels/dequant.cpp)
# Reference dequantizers must be bit-exact with ggml: no FMA contraction (formats.md §7.4).
set_source_files_properties(kernels/dequant.cpp PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")

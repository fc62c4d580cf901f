# The CUDA backend (GEMMA_CUDA=ON): kernels in .cu files compiled by nvcc, the Backend class in C++
# compiled by the host compiler (it includes only the CUDA runtime and cuBLAS headers). A separate
# static library linked into gemma_kernels, so backend.cpp's factory can make it.
add_library(gemma_kernels_cuda STATIC kernels/cuda/cuda_backend.cpp kernels/cuda/matmul.cu kernels/cuda/ops.cu)
target_include_directories(gemma_kernels_cuda PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}>)
target_link_libraries(gemma_kernels_cuda PUBLIC gemma_formats CUDA::cudart CUDA::cublas)
# Warnings are errors in the device code too, and in the host code nvcc hands to the host compiler.
set(gemma_cuda_flags --Werror all-warnings -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter)
if(GEMMA_WERROR)
  list(APPEND gemma_cuda_flags -Xcompiler=-Werror)
endif()
target_compile_options(gemma_kernels_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${gemma_cuda_flags}>)
set_target_properties(gemma_kernels_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(gemma_kernels PUBLIC gemma_kernels_cuda)
target_compile_definitions(gemma_kernels PRIVATE GEMMA_HAVE_CUDA=1)

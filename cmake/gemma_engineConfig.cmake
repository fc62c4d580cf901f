# find_package(gemma_engine) for an installed gemma-engine: the dependencies its static libraries
# link, then the exported targets (gemma::gemma_core and the per-folder layers).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(fmt)
find_dependency(nlohmann_json)
find_dependency(PkgConfig)
# A -DGEMMA_CUDA=ON build links the CUDA runtime and cuBLAS.
if(EXISTS "${CMAKE_CURRENT_LIST_DIR}/../../libgemma_kernels_cuda.a")
  find_dependency(CUDAToolkit)
endif()
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng)
pkg_check_modules(JPEG REQUIRED IMPORTED_TARGET libjpeg)
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp libwebpdemux)
include("${CMAKE_CURRENT_LIST_DIR}/gemma_engine.cmake")

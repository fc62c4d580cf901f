// The CUDA backend (GEMMA_CUDA=ON builds): the Backend interface on one NVIDIA GPU. Weights are
// uploaded once in prepare() in their stored layout; activations, KV caches and logits live in
// device memory; token ids, positions and attention ranges (host memory per the interface) go
// up per op through small scratch buffers. docs/architecture.md "CUDA backend" describes it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/backend.h"

namespace gemma {

struct CudaOptions {
  int device = 0;  // CUDA device ordinal
  // Float32 products for many-token matmuls too (dequantized float32 tiles, cublasSgemm without
  // TF32); otherwise half-precision tiles with float32 accumulation (tensor cores). One-to-eight
  // token products are float32 either way.
  bool precise = false;
};

// "no CUDA device" (kUnsupported) when the machine has none or the driver cannot be reached.
Result<std::unique_ptr<Backend>> create_cuda_backend(const CudaOptions& options);
// Whether CUDA kernels exist for a weight matrix of this type and shape.
Status cuda_supports(DType type, int64_t rows, int64_t cols);

// The device a CUDA backend would run on, for `gemma inspect --device cuda`.
struct CudaDeviceInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0;
  uint64_t free_bytes = 0, total_bytes = 0;
};
Result<CudaDeviceInfo> cuda_device_info(int device = 0);
// The most scratch device memory a CUDA backend holds for many-token products (its float32
// dequantized tile), besides buffers that scale with the batch.
uint64_t cuda_scratch_bytes();

}  // namespace gemma

#include "kernels/backend.h"

#include "kernels/cpu/cpu_backend.h"
#ifdef GEMMA_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#include "util/thread_pool.h"

namespace gemma {

namespace {
const char* devices() {
#ifdef GEMMA_HAVE_CUDA
  return "cpu, cuda";
#else
  return "cpu";
#endif
}
}  // namespace

Result<std::unique_ptr<Backend>> create_backend(const BackendOptions& o) {
  if (o.device == "cuda") {
#ifdef GEMMA_HAVE_CUDA
    CudaOptions cuda;
    cuda.precise = o.precise;
    return create_cuda_backend(cuda);
#else
    return unsupported("this build has no CUDA backend; rebuild with -DGEMMA_CUDA=ON");
#endif
  }
  if (o.device != "cpu") return unsupported("unknown device '{}' (this build has: {})", o.device, devices());
  if (o.threads < 0) return invalid_argument("--threads must be >= 0 (got {})", o.threads);
  CpuOptions cpu;
  cpu.precise = o.precise;
  return std::unique_ptr<Backend>(new CpuBackend(o.threads > 0 ? o.threads : default_thread_count(), cpu));
}

Result<DeviceMemory> device_memory(std::string_view device) {
  if (device != "cuda") return unsupported("no device memory plan for '{}'", device);
#ifdef GEMMA_HAVE_CUDA
  GE_ASSIGN(CudaDeviceInfo info, cuda_device_info(0));
  DeviceMemory m;
  m.name = fmt::format("{} (sm_{}{})", info.name, info.cc_major, info.cc_minor);
  m.free_bytes = info.free_bytes;
  m.total_bytes = info.total_bytes;
  m.backend_scratch = cuda_scratch_bytes();
  return m;
#else
  return unsupported("this build has no CUDA backend; rebuild with -DGEMMA_CUDA=ON");
#endif
}

bool kv_type_supported(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0; }

Result<DType> parse_kv_type(std::string_view name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  if (name == "bf16") return DType::BF16;
  if (name == "q8_0") return DType::Q8_0;
  return invalid_argument("KV cache type must be f32, f16, bf16 or q8_0 (got '{}')", name);
}

Status reference_supports(DType type, int64_t rows, int64_t cols) { return cpu_supports(type, rows, cols); }

}  // namespace gemma

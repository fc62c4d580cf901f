#include "kernels/backend.h"

#include "kernels/cpu/cpu_backend.h"
#include "util/thread_pool.h"

namespace gemma {

Result<std::unique_ptr<Backend>> create_backend(const BackendOptions& o) {
  if (o.device != "cpu") return unsupported("unknown device '{}' (this build has: cpu)", o.device);
  if (o.threads < 0) return invalid_argument("--threads must be >= 0 (got {})", o.threads);
  CpuOptions cpu;
  cpu.precise = o.precise;
  return std::unique_ptr<Backend>(new CpuBackend(o.threads > 0 ? o.threads : default_thread_count(), cpu));
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

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

Status reference_supports(DType type, int64_t rows, int64_t cols) { return cpu_supports(type, rows, cols); }

}  // namespace gemma

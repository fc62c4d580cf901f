#include <cstdlib>
#include <string>

#include "kernels/cpu/isa.h"

namespace gemma::cpu {

namespace {
bool cpu_has_avx2() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
         __builtin_cpu_supports("bmi2");
#else
  return false;
#endif
}
}  // namespace

const IsaKernels& select_isa() {
  const char* forced = std::getenv("GEMMA_ISA");
  std::string want = forced ? forced : "";
  if (want == "generic") return isa_generic();
  if (cpu_has_avx2() && isa_avx2()) return *isa_avx2();
  return isa_generic();
}

}  // namespace gemma::cpu

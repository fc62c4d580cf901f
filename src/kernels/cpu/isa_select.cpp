#include <cstdlib>
#include <string>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels/cpu/isa.h"

namespace gemma::cpu {

bool cpu_has_avx2() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!(fma && osxsave && avx && f16c)) return false;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 6) != 6) return false;  // the OS must save XMM and YMM state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (b & (1u << 5)) && (b & (1u << 8));  // AVX2, BMI2
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__)
  if (!cpu_has_avx2()) return false;
  unsigned a, b, c, d;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0xE6) != 0xE6) return false;  // the OS must save the opmask and ZMM state too
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  return f && dq && bw && vl && vnni;
#else
  return false;
#endif
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
  if (!cpu_has_avx512()) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return a & (1u << 5);
#else
  return false;
#endif
}

bool cpu_has_amx() {
#if defined(__x86_64__) && defined(__linux__)
  static const bool usable = [] {
    if (!cpu_has_avx512_bf16()) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!(d & (1u << 22)) || !(d & (1u << 24))) return false;  // AMX-BF16, AMX-TILE
    // Linux enables the 8 KiB tile data state per process on request (ARCH_REQ_XCOMP_PERM for
    // XFEATURE_XTILEDATA); without it the first tile instruction faults.
    constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
    if (syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) != 0) return false;
    unsigned xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    return (xcr0_lo & (3u << 17)) == (3u << 17);  // tile config and tile data state
  }();
  return usable;
#else
  return false;
#endif
}

const IsaKernels& select_isa() {
  const char* forced = std::getenv("GEMMA_ISA");
  std::string want = forced ? forced : "";
  if (want == "generic") return isa_generic();
  if (want != "avx2" && want != "avx512" && cpu_has_amx() && isa_avx512_amx()) return *isa_avx512_amx();
  if (want != "avx2" && cpu_has_avx512() && isa_avx512()) return *isa_avx512();
  if (cpu_has_avx2() && isa_avx2()) return *isa_avx2();
  return isa_generic();
}

}  // namespace gemma::cpu

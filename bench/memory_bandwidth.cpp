// Read bandwidth probe: the decode speed ceiling is (bytes read per token) / (this bandwidth).
// Streams a buffer much larger than the caches with 1..N threads (AVX2 loads, summed so the reads
// cannot be elided) and prints the best of several passes in GB/s. Each pass streams it plainly
// and with software prefetches some distance ahead (512 B to 4 KiB), as the decode kernels do: on
// the Zen 5 VM the hardware prefetchers alone leave 10-30% of the bandwidth unused, so a plain
// stream alone would put the ceiling below what decode reaches. And it streams two buffers, one on
// 4 KiB pages and one on 2 MiB pages (MADV_HUGEPAGE), as the engine holds weights by default: on
// the AMX Xeon VM 2 MiB pages stream up to 1.3x faster from one core.
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "util/thread_pool.h"

namespace {

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n, size_t prefetch) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    if (prefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i + prefetch), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + prefetch + 64), _MM_HINT_T0);
    }
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), s);
  return out[0] + out[1] + out[2] + out[3];
}

// `bytes` of ones, 2 MiB-aligned; on 2 MiB pages if `huge` (and the kernel grants them).
uint8_t* make_buffer(size_t bytes, bool huge) {
  const size_t huge_page = size_t{2} << 20;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(huge_page, (bytes + huge_page - 1) / huge_page * huge_page));
#ifdef MADV_HUGEPAGE
  madvise(buf, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
  std::memset(buf, 1, bytes);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t bytes = (argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024) << 20;  // MiB
  const int max_threads = argc > 2 ? std::atoi(argv[2]) : gemma::default_thread_count();
  uint8_t* const bufs[2] = {make_buffer(bytes, false), make_buffer(bytes, true)};
  volatile uint64_t sink = 0;
  for (int nt = 1; nt <= max_threads; ++nt) {
    gemma::ThreadPool pool(nt);
    double best_by_pages[2] = {0, 0};
    size_t best_distance = 0;
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
      for (int huge = 0; huge < 2; ++huge) {
        const uint8_t* buf = bufs[huge];
        for (const size_t distance : {size_t{0}, size_t{512}, size_t{1024}, size_t{2048}, size_t{4096}}) {
          std::vector<uint64_t> partial(static_cast<size_t>(nt));
          const auto t0 = std::chrono::steady_clock::now();
          pool.run([&](int i, int n) {
            auto [b, e] = gemma::ThreadPool::split(static_cast<int64_t>(bytes), i, n, 4096);
            partial[static_cast<size_t>(i)] = sum_avx2(buf + b, static_cast<size_t>(e - b), distance);
          });
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          for (uint64_t v : partial) sink = sink + v;
          const double gbs = static_cast<double>(bytes) / s / 1e9;
          best_by_pages[huge] = std::max(best_by_pages[huge], gbs);
          if (gbs > best) best = gbs, best_distance = distance;
        }
      }
    }
    std::printf(
        "read bandwidth, %d thread%s: %.2f GB/s (4 KiB pages %.2f, 2 MiB pages %.2f GB/s; prefetch %zu B ahead)\n", nt,
        nt > 1 ? "s" : "", best, best_by_pages[0], best_by_pages[1], best_distance);
  }
  std::free(bufs[0]);
  std::free(bufs[1]);
  return sink == 42 ? 1 : 0;
}

#include "util/thread_pool.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

namespace gemma {
namespace {

TEST(ThreadPool, EveryThreadRunsEveryJob) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(3);
  for (int job = 0; job < 1000; ++job)
    pool.run([&](int i, int n) {
      EXPECT_EQ(n, 3);
      hits[static_cast<size_t>(i)]++;
    });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1000);
}

TEST(ThreadPool, AbsurdSizesAreClamped) {
  ThreadPool big(100000000);  // used to try to start 10^8 threads and throw std::system_error
  EXPECT_GE(big.size(), 1);
  EXPECT_LE(big.size(), kMaxThreads);
  std::atomic<int> ran{0};
  big.run([&](int, int n) {
    EXPECT_EQ(n, big.size());
    ran++;
  });
  EXPECT_EQ(ran.load(), big.size());
  EXPECT_EQ(ThreadPool(-5).size(), 1);
}

TEST(ThreadPool, SplitCoversRangeWithAlignment) {
  for (int n_threads = 1; n_threads <= 5; ++n_threads) {
    int64_t covered = 0, prev_end = 0;
    for (int i = 0; i < n_threads; ++i) {
      auto [b, e] = ThreadPool::split(1000, i, n_threads, 16);
      EXPECT_EQ(b, prev_end);
      if (e < 1000) { EXPECT_EQ(e % 16, 0); }
      covered += e - b;
      prev_end = e;
    }
    EXPECT_EQ(covered, 1000);
  }
}

}  // namespace
}  // namespace gemma

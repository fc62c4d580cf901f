// A persistent pool of worker threads for data-parallel kernels. run(fn) calls fn(i, n) on n
// threads (the caller is thread 0) and returns when all are done. Workers spin briefly between
// jobs before sleeping, because a decode step issues a few hundred short jobs per token and
// waking a sleeping thread costs more than the job itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace gemma {

// More threads than this are never useful here (decode is memory bound) and only exhaust the
// process's thread and stack limits; the CLI rejects larger --threads, the pool clamps.
inline constexpr int kMaxThreads = 1024;

class ThreadPool {
 public:
  // Clamped to 1..kMaxThreads. Where the system refuses to start a thread (EAGAIN under a ulimit
  // or cgroup pids limit), the pool runs with the threads it got; size() says how many.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(thread_index, n_threads) on every thread; blocks until all return.
  // Not reentrant: fn must not call run().
  void run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into n_threads contiguous ranges aligned to `align`; returns thread i's range.
  static std::pair<int64_t, int64_t> split(int64_t n, int i, int n_threads, int64_t align = 1);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// Number of threads to use by default: std::thread::hardware_concurrency() (logical CPUs, so
// SMT siblings count), at most 8 (decode is memory bound).
int default_thread_count();

}  // namespace gemma

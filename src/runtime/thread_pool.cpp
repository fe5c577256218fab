#include "xgrad/thread_pool.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "xgrad/error.hpp"

namespace xg {

namespace {

/// About 50 microseconds of polling: longer than the gap between two kernels of a step, far shorter
/// than the gap between two steps.
constexpr int kSpins = 20000;

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

int ThreadPool::hardware_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) throw ValueError(fmt::format("ThreadPool: {} threads; at least 1 is needed", threads));
  workers_.reserve(static_cast<std::size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { work(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  {
    std::lock_guard lock(sleep_mutex_);
    wake_.notify_all();
  }
  for (std::thread& w : workers_) w.join();
}

void ThreadPool::run_chunk(int index) noexcept {
  const std::int64_t threads = size();
  const std::int64_t begin = count_ * index / threads, end = count_ * (index + 1) / threads;
  if (begin >= end) return;
  try {
    chunk_(fn_, begin, end);
  } catch (...) {
    std::lock_guard lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::run(std::int64_t count, Chunk chunk, void* fn) {
  chunk_ = chunk;
  fn_ = fn;
  count_ = count;
  error_ = nullptr;
  pending_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);  // publishes the job (sequentially consistent, as are the reads below)
  if (sleepers_.load() > 0) {
    std::lock_guard lock(sleep_mutex_);
    wake_.notify_all();
  }
  run_chunk(0);
  while (pending_.load(std::memory_order_acquire) > 0) relax();
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::work(int index) {
  std::uint64_t seen = 0;
  while (true) {
    int spins = 0;
    while (generation_.load() == seen && spins < kSpins) {
      relax();
      ++spins;
    }
    if (generation_.load() == seen) {
      std::unique_lock lock(sleep_mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = generation_.load();
    if (stop_.load()) return;
    run_chunk(index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace xg

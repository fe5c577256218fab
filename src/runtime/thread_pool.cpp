#include "xgrad/thread_pool.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "xgrad/kernel_environment.hpp"
#include "xgrad/error.hpp"

namespace xg {

namespace {

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

int ThreadPool::hardware_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

std::shared_ptr<ThreadPool> ThreadPool::process_default() {
  static const std::shared_ptr<ThreadPool> pool = std::make_shared<ThreadPool>(hardware_threads());
  return pool;
}

std::shared_ptr<ThreadPool> ThreadPool::with_threads(int threads) {
  std::shared_ptr<ThreadPool> shared = process_default();
  if (threads == 0 || threads == shared->size()) return shared;
  return std::make_shared<ThreadPool>(threads);
}

ThreadPool::ThreadPool(int threads, std::chrono::microseconds spin) : threads_(threads), spin_(spin) {
  if (threads < 1) throw ValueError(fmt::format("ThreadPool: {} threads; at least 1 is needed", threads));
  if (spin.count() < 0) throw ValueError(fmt::format("ThreadPool: a spin time of {} us; it cannot be negative", spin.count()));
  claim_.store(std::uint64_t{1} << 32 | static_cast<std::uint32_t>(threads));  // job 1 has no chunks left
  workers_.reserve(static_cast<std::size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  claim_.fetch_add(std::uint64_t{1} << 32);
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

void ThreadPool::run_chunks() noexcept {
  const auto chunks = static_cast<std::uint32_t>(size());
  std::uint64_t claim = claim_.load(std::memory_order_acquire);
  while (static_cast<std::uint32_t>(claim) < chunks) {
    if (!claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel)) continue;
    set_float_control(float_control_);  // the caller's own, for a worker
    run_chunk(static_cast<int>(static_cast<std::uint32_t>(claim)));
    done_.fetch_add(1, std::memory_order_release);
    claim = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(std::int64_t count, Chunk chunk, void* fn) {
  std::unique_lock job(job_mutex_, std::try_to_lock);
  if (!job.owns_lock()) {  // busy: the same chunks, in order, on this thread
    chunk(fn, 0, count);
    return;
  }
  chunk_ = chunk;
  fn_ = fn;
  count_ = count;
  float_control_ = float_control();
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  // Publishes the job: its fields above happen before any claim of one of its chunks.
  const std::uint64_t next_job = (claim_.load(std::memory_order_relaxed) >> 32) + 1;
  claim_.store(next_job << 32, std::memory_order_seq_cst);
  if (sleepers_.load() > 0) {
    std::lock_guard lock(sleep_mutex_);
    wake_.notify_all();
  }
  run_chunks();
  while (done_.load(std::memory_order_acquire) < size()) relax();
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::work() {
  confine_library_threads();
  std::uint64_t seen = 0;  // the last job number this worker looked at
  const auto job_of = [](std::uint64_t claim) { return claim >> 32; };
  while (true) {
    // Poll for a bounded time; the clock is read once every 256 polls.
    const auto deadline = std::chrono::steady_clock::now() + spin_;
    for (int polls = 1; job_of(claim_.load()) == seen; ++polls) {
      relax();
      if (polls % 256 == 0 && std::chrono::steady_clock::now() >= deadline) break;
    }
    if (job_of(claim_.load()) == seen) {
      std::unique_lock lock(sleep_mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return job_of(claim_.load()) != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = job_of(claim_.load());
    if (stop_.load()) return;
    run_chunks();
  }
}

}  // namespace xg

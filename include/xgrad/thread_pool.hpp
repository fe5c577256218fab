#pragma once
// A fork-join pool for kernels: the calling thread and `threads - 1` workers split a range of
// independent items. Programs share one (the process default, or one given in CompileOptions), so a
// Trainer, its evaluation Program and gradcheck's Programs do not each bring threads of their own.
//
// A job is cut into size() fixed chunks, and whichever thread is running claims the next one: the
// caller never waits for a worker that has not woken up (on a loaded machine it may not run for a
// whole time slice), only for chunks already under way. One job at a time: a caller that finds the
// pool busy (another thread's run, or a kernel calling back in) runs every chunk itself. Kernels
// split their work so that no result depends on which thread runs a chunk, so all this changes
// timing only. Workers run each chunk under the caller's floating-point control state
// (flush-to-zero, denormals-are-zero, rounding), and an idle worker polls for a bounded time before
// it sleeps: kernels come back to back within a run.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace xg {

class ThreadPool {
 public:
  /// How long an idle worker polls for the next job before it sleeps: longer than the gap between
  /// two kernels of a run, far shorter than a pause between runs.
  static constexpr std::chrono::microseconds kDefaultSpin{100};

  /// `threads` >= 1 threads in all, the caller's included (1: no workers, everything inline).
  explicit ThreadPool(int threads, std::chrono::microseconds spin = kDefaultSpin);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }

  /// The pool Programs use unless CompileOptions names another: hardware_threads() threads, started
  /// on first use and kept until the process ends.
  static std::shared_ptr<ThreadPool> process_default();
  /// A pool of `threads` threads: the process default when `threads` is 0 or its size, else a new one.
  static std::shared_ptr<ThreadPool> with_threads(int threads);

  /// Calls fn(begin, end) on size() contiguous, nearly equal chunks of [0, count) (empty ones
  /// skipped), each on whichever thread claims it first (all on the caller when the pool is busy);
  /// returns when every chunk is done and rethrows the first exception one threw.
  template <class F>
  void parallel_for(std::int64_t count, F&& fn) {
    if (count <= 0) return;
    if (threads_ == 1 || count == 1) {
      fn(std::int64_t{0}, count);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    run(count, [](void* f, std::int64_t begin, std::int64_t end) { (*static_cast<Fn*>(f))(begin, end); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

  /// The threads worth using on this machine: std::thread::hardware_concurrency(), at least 1.
  static int hardware_threads();

 private:
  using Chunk = void (*)(void* fn, std::int64_t begin, std::int64_t end);
  void run(std::int64_t count, Chunk chunk, void* fn);
  void work();
  /// Claims and runs chunks of the current job until none is left.
  void run_chunks() noexcept;
  void run_chunk(int index) noexcept;

  int threads_;  // fixed before any worker starts: workers read it while others are still being made
  std::vector<std::thread> workers_;
  std::chrono::microseconds spin_;
  std::mutex job_mutex_;  // held by the thread whose job the workers run
  // The job of the current generation.
  Chunk chunk_ = nullptr;
  void* fn_ = nullptr;
  std::int64_t count_ = 0;
  unsigned float_control_ = 0;  // the caller's MXCSR (x86), for the workers
  std::exception_ptr error_;
  std::mutex error_mutex_;

  // The job's number in the high 32 bits, the next chunk to claim in the low 32: one atomic, so that
  // a late worker can never claim a chunk of a job other than the one whose fields it reads.
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<int> done_{0};  // chunks of the current job finished
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

}  // namespace xg

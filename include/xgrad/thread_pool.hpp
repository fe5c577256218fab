#pragma once
// A fork-join pool for a Program's kernels: the calling thread and `threads - 1` workers split a
// range of independent items. Kernels come back to back, so an idle worker spins a little before it
// sleeps; a call wakes a sleeping worker only when one is asleep.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace xg {

class ThreadPool {
 public:
  /// `threads` >= 1 threads in all, the caller's included (1: no workers, everything inline).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  /// Calls fn(begin, end) on size() contiguous, nearly equal chunks of [0, count) (empty ones
  /// skipped), chunk t on thread t, the caller taking chunk 0; returns when every chunk is done and
  /// rethrows the first exception one threw. Not reentrant: fn must not call parallel_for.
  template <class F>
  void parallel_for(std::int64_t count, F&& fn) {
    if (count <= 0) return;
    if (workers_.empty() || count == 1) {
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
  void work(int index);
  void run_chunk(int index) noexcept;

  std::vector<std::thread> workers_;
  // The job of the current generation.
  Chunk chunk_ = nullptr;
  void* fn_ = nullptr;
  std::int64_t count_ = 0;
  std::exception_ptr error_;
  std::mutex error_mutex_;

  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
};

}  // namespace xg

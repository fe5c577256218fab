#pragma once
// OpenBLAS splits a large product across its own threads. Inside a run whose kernels are already
// split across a ThreadPool, that would put 2 x 2 threads on 2 cores; while a SingleThreadedBlas
// lives, each BLAS call runs on the thread that makes it. OpenBLAS's thread count is process-wide,
// so the previous count is restored when the guard ends.
namespace xg {

class SingleThreadedBlas {
 public:
  explicit SingleThreadedBlas(bool active);
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_ = 0;  // 0: nothing to restore
};

}  // namespace xg

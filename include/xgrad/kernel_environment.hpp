#pragma once
// The per-thread state kernels run in, set for the length of a run and restored after it, so that
// the caller's own code sees its own settings:
// - flush-to-zero and denormals-are-zero: a subnormal operand stalls SIMD arithmetic on x86 by up
//   to a hundred cycles, and training drives some values (Adam's second moments, vanishing
//   gradients) into that range, where they are noise;
// - matrix-product libraries threaded through OpenMP (oneDNN, OpenMP builds of OpenBLAS) run on the
//   calling thread alone: the ThreadPool is what splits a run across cores, and two layers of
//   threads on the same cores only compete. OpenMP keeps this setting per thread.
namespace xg {

/// The thread's floating-point control word (MXCSR on x86; 0 where there is none to keep).
unsigned float_control();
void set_float_control(unsigned control);
/// `control` with flush-to-zero and denormals-are-zero set.
unsigned flushing_denormals(unsigned control);

class KernelEnvironment {
 public:
  explicit KernelEnvironment(bool flush_denormals);
  ~KernelEnvironment();
  KernelEnvironment(const KernelEnvironment&) = delete;
  KernelEnvironment& operator=(const KernelEnvironment&) = delete;

 private:
  unsigned saved_control_;
  int saved_library_threads_;
};

/// For threads that only ever run kernels (the pool's workers): library calls stay on this thread.
void confine_library_threads();

/// Called once before the first Program is made: BLAS libraries that keep a process-wide thread
/// count (OpenBLAS's pthreads build) are set to one thread, once, instead of being changed and
/// restored around every run, which races when two Programs run at once.
void claim_blas_threads();

}  // namespace xg

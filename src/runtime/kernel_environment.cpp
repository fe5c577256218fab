#include "xgrad/kernel_environment.hpp"

#include <mutex>

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define XG_HAS_MXCSR 1
#endif
#ifdef XG_OPENMP
#include <omp.h>
#endif
#ifdef XG_OPENBLAS
#include <cblas.h>
#endif

namespace xg {

unsigned float_control() {
#ifdef XG_HAS_MXCSR
  return _mm_getcsr();
#else
  return 0;
#endif
}

void set_float_control([[maybe_unused]] unsigned control) {
#ifdef XG_HAS_MXCSR
  _mm_setcsr(control);
#endif
}

unsigned flushing_denormals(unsigned control) {
#ifdef XG_HAS_MXCSR
  return control | _MM_FLUSH_ZERO_ON | 0x0040u;  // 0x0040: denormals-are-zero (no named macro in xmmintrin.h)
#else
  return control;
#endif
}

namespace {

int library_threads() {
#ifdef XG_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_library_threads([[maybe_unused]] int threads) {
#ifdef XG_OPENMP
  omp_set_num_threads(threads);
#endif
}

}  // namespace

KernelEnvironment::KernelEnvironment(bool flush_denormals)
    : saved_control_(float_control()), saved_library_threads_(library_threads()) {
  if (flush_denormals) set_float_control(flushing_denormals(saved_control_));
  if (saved_library_threads_ != 1) set_library_threads(1);
}

KernelEnvironment::~KernelEnvironment() {
  set_float_control(saved_control_);
  if (saved_library_threads_ != 1) set_library_threads(saved_library_threads_);
}

void confine_library_threads() { set_library_threads(1); }

void claim_blas_threads() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef XG_OPENBLAS
    openblas_set_num_threads(1);
#endif
  });
}

}  // namespace xg

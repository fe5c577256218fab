#include "runtime/blas_threads.hpp"

#ifdef XG_OPENBLAS
#include <cblas.h>
#endif

namespace xg {

SingleThreadedBlas::SingleThreadedBlas([[maybe_unused]] bool active) {
#ifdef XG_OPENBLAS
  if (!active) return;
  saved_ = openblas_get_num_threads();
  if (saved_ > 1) openblas_set_num_threads(1);
  else saved_ = 0;
#endif
}

SingleThreadedBlas::~SingleThreadedBlas() {
#ifdef XG_OPENBLAS
  if (saved_ > 1) openblas_set_num_threads(saved_);
#endif
}

}  // namespace xg

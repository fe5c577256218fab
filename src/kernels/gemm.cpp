// The matrix-product libraries behind kernels::gemm: for f32, oneDNN when the build has it (with OpenBLAS
// taking the shapes oneDNN's AVX2 kernels handle badly), else CBLAS; for f64, CBLAS.
#include "xgrad/kernels/gemm.hpp"

#include <cblas.h>
#ifdef XG_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <type_traits>

#include "xgrad/error.hpp"

namespace xg::kernels {
namespace {

#if defined(XG_ONEDNN) && defined(XG_OPENBLAS)
/// Whether the process's OpenBLAS runs kernels as wide as oneDNN's AVX2 ones. An OpenBLAS that does
/// not recognise the CPU falls back to SSE3 (Prescott) kernels, 4x slower: never worth a product.
bool openblas_has_avx2_kernels() {
  static constexpr std::array<std::string_view, 5> kWideCores = {"Haswell", "Zen", "SkylakeX", "Cooperlake",
                                                                  "SapphireRapids"};
  const char* core = openblas_get_corename();
  if (core == nullptr) return false;
  return std::ranges::find(kWideCores, std::string_view(core)) != kWideCores.end();
}

/// Decided once per process, from the machine alone: where oneDNN runs its AVX-512 (or wider)
/// kernels it is the faster library everywhere; where it runs AVX2 ones and OpenBLAS has AVX2-class
/// kernels too, OpenBLAS is the faster on some shapes (see prefers_openblas).
bool openblas_shares_products() {
  static const bool shares = [] {
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa >= dnnl_cpu_isa_avx2 && isa < dnnl_cpu_isa_avx512_core && openblas_has_avx2_kernels();
  }();
  return shares;
}
#endif

}  // namespace

bool prefers_openblas(bool transpose_a, bool transpose_b, std::int64_t k, std::int64_t ldb) {
  if (transpose_b) return false;
  return transpose_a ? k >= 256 : ldb >= 512;
}

GemmLibrary f32_gemm_library([[maybe_unused]] bool transpose_a, [[maybe_unused]] bool transpose_b,
                             [[maybe_unused]] std::int64_t k, [[maybe_unused]] std::int64_t ldb) {
#ifdef XG_ONEDNN
#ifdef XG_OPENBLAS
  if (openblas_shares_products() && prefers_openblas(transpose_a, transpose_b, k, ldb)) return GemmLibrary::cblas;
#endif
  return GemmLibrary::onednn;
#else
  return GemmLibrary::cblas;
#endif
}

namespace {

template <class T>
void blas_gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
               std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    }
    return;
  }
#ifdef XG_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (f32_gemm_library(transpose_a, transpose_b, k, ldb) == GemmLibrary::onednn) {
        const dnnl_status_t status = dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, alpha, a, lda, b,
                                              ldb, beta, c, ldc);
      if (status != dnnl_success) throw Error("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(status)) + ")");
      return;
    }
  }
#endif
  const auto ta = transpose_a ? CblasTrans : CblasNoTrans, tb = transpose_b ? CblasTrans : CblasNoTrans;
  const auto M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  const auto LDA = static_cast<int>(lda), LDB = static_cast<int>(ldb), LDC = static_cast<int>(ldc);
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, LDA, b, LDB, beta, c, LDC);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, LDA, b, LDB, beta, c, LDC);
  }
}

}  // namespace

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  blas_gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  blas_gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace xg::kernels

#pragma once
// Matrix products through CBLAS, for f32 and f64: the general row-major GEMM and a batch of
// contiguous products at constant strides, split across a pool.
#include <cblas.h>

#include <cstdint>
#include <type_traits>

#include "xgrad/thread_pool.hpp"

namespace xg::kernels {

/// op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb and ldc are row strides in elements.
/// Degenerate sizes never reach BLAS (which rejects a zero leading dimension): with k == 0 the
/// product is zero and C becomes beta * C.
template <class T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    }
    return;
  }
  const auto ta = transpose_a ? CblasTrans : CblasNoTrans, tb = transpose_b ? CblasTrans : CblasNoTrans;
  const auto M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  const auto LDA = static_cast<int>(lda), LDB = static_cast<int>(ldb), LDC = static_cast<int>(ldc);
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, LDA, b, LDB, beta, c, LDC);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, LDA, b, LDB, beta, c, LDC);
  }
}

/// Products below this many floating-point operations run on the calling thread: splitting them
/// costs more in hand-over than it saves.
inline constexpr double kParallelGemmFlops = 1 << 21;

/// `count` products, the i-th of A at a + i * a_step and B at b + i * b_step (a step of 0 shares
/// the operand) into consecutive C blocks. With a pool, products are split across its threads: whole
/// products when there are enough of them, else each product by rows of C or by columns, whichever
/// makes the threads repeat less operand packing (rows repeat B's, columns repeat A's). Every C
/// element is still one dot product computed by one call.
template <class T>
void gemm_batch(ThreadPool* pool, bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
                std::int64_t count, const T* a, std::int64_t a_step, const T* b, std::int64_t b_step, T* c) {
  const std::int64_t lda = transpose_a ? m : k, ldb = transpose_b ? k : n;
  // The block of C rows [r0, r1) x columns [c0, c1) of product i.
  const auto block = [&](std::int64_t i, std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1) {
    const T* ai = a + i * a_step + (transpose_a ? r0 : r0 * lda);
    const T* bi = b + i * b_step + (transpose_b ? c0 * ldb : c0);
    gemm(transpose_a, transpose_b, r1 - r0, c1 - c0, k, T(1), ai, lda, bi, ldb, T(0), c + i * m * n + r0 * n + c0, n);
  };
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(count);
  if (pool == nullptr || pool->size() == 1 || flops < kParallelGemmFlops) {
    for (std::int64_t i = 0; i < count; ++i) block(i, 0, m, 0, n);
  } else if (count >= pool->size()) {
    pool->parallel_for(count, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t i = first; i < last; ++i) block(i, 0, m, 0, n);
    });
  } else if (m >= n) {
    for (std::int64_t i = 0; i < count; ++i) {
      pool->parallel_for(m, [&](std::int64_t r0, std::int64_t r1) { block(i, r0, r1, 0, n); });
    }
  } else {
    for (std::int64_t i = 0; i < count; ++i) {
      pool->parallel_for(n, [&](std::int64_t c0, std::int64_t c1) { block(i, 0, m, c0, c1); });
    }
  }
}

}  // namespace xg::kernels

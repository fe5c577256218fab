#pragma once
// Matrix products on CBLAS: one row-major GEMM, and a batch of them at constant strides.
#include <cstdint>
#include <type_traits>

#include <cblas.h>

namespace xg::kernels {

/// C (m x n) = op(A) op(B), op = transpose when the flag is set; A, B, C contiguous row-major.
template <class T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, const T* b,
          T* c) {
  const auto trans_a = transpose_a ? CblasTrans : CblasNoTrans;
  const auto trans_b = transpose_b ? CblasTrans : CblasNoTrans;
  const auto lda = static_cast<int>(transpose_a ? m : k), ldb = static_cast<int>(transpose_b ? k : n);
  const auto M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, trans_a, trans_b, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, static_cast<int>(n));
  } else {
    cblas_dgemm(CblasRowMajor, trans_a, trans_b, M, N, K, 1.0, a, lda, b, ldb, 0.0, c, static_cast<int>(n));
  }
}

/// `count` products, the i-th of A at a + i * a_step and B at b + i * b_step (a step of 0 shares
/// the operand) into consecutive C blocks.
template <class T>
void gemm_batch(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t count,
                const T* a, std::int64_t a_step, const T* b, std::int64_t b_step, T* c) {
  for (std::int64_t i = 0; i < count; ++i) gemm(transpose_a, transpose_b, m, n, k, a + i * a_step, b + i * b_step, c + i * m * n);
}

}  // namespace xg::kernels

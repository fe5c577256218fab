#pragma once
// LayerNorm over contiguous rows of length n, forward and backward (llm.c's layout, no graph).
#include <cmath>
#include <cstdint>

#include "kernels/simd.hpp"

namespace xg::kernels {

template <class T>
struct RowMoments {
  T mean, rstd;
};

template <class T>
RowMoments<T> row_moments(const T* x, std::int64_t n, T eps) {
  const T mean = reduce_sum(x, n) / static_cast<T>(n);
  T var = 0;
  for (std::int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<T>(n);
  return {mean, T(1) / std::sqrt(var + eps)};
}

/// y = (x - mean) * rstd * gamma + beta per row; gamma and beta may be null. y may equal x.
template <class T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, std::int64_t rows, std::int64_t n, T eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    const auto [mean, rstd] = row_moments(xr, n, eps);
    for (std::int64_t i = 0; i < n; ++i) {
      T v = (xr[i] - mean) * rstd;
      if (gamma != nullptr) v *= gamma[i];
      if (beta != nullptr) v += beta[i];
      yr[i] = v;
    }
  }
}

/// dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), the gradient through the normalization
/// for an upstream gradient g of x_hat.
template <class T>
void layer_norm_backward(const T* x, const T* g, T* dx, std::int64_t rows, std::int64_t n, T eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    T* dr = dx + r * n;
    const auto [mean, rstd] = row_moments(xr, n, eps);
    T g_mean = 0, gx_mean = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      g_mean += gr[i];
      gx_mean += gr[i] * (xr[i] - mean) * rstd;
    }
    g_mean /= static_cast<T>(n);
    gx_mean /= static_cast<T>(n);
    for (std::int64_t i = 0; i < n; ++i) dr[i] = rstd * (gr[i] - g_mean - (xr[i] - mean) * rstd * gx_mean);
  }
}

}  // namespace xg::kernels

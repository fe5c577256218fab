#pragma once
// Contiguous loops in SIMD batches with a scalar tail. A functor is written once, generically, and
// is called with xsimd batches for the body and with plain scalars for the tail (and for i32, and
// everywhere when the build chose -Dsimd=none).
#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>

#ifndef XG_NO_SIMD
#include <xsimd/xsimd.hpp>
#endif

namespace xg::kernels {

#ifdef XG_NO_SIMD
template <class T>
inline constexpr std::int64_t simd_width = 1;
template <class T>
T load_batch(const T* p) {
  return *p;
}
#else
template <class T>
inline constexpr std::int64_t simd_width =
    std::is_floating_point_v<T> ? static_cast<std::int64_t>(xsimd::batch<T>::size) : 1;
template <class T>
using Batch = xsimd::batch<T>;

/// Sum of a batch's lanes. Through memory rather than xsimd::hadd, whose AVX-512 form trips a
/// GCC 12 -Wuninitialized false positive inside the compiler's own intrinsics.
template <class T>
T horizontal_sum(const Batch<T>& b) {
  alignas(64) T lanes[Batch<T>::size];
  b.store_aligned(lanes);
  T total = 0;
  for (T lane : lanes) total += lane;
  return total;
}

/// The batch at p (unaligned); without SIMD, the element, so that terms are written once for both.
template <class T>
Batch<T> load_batch(const T* p) {
  return Batch<T>::load_unaligned(p);
}
#endif

/// The value at p as V: the batch there (unaligned) or, when V is the element type, the element,
/// so that a loop body written once serves both the SIMD body and the scalar tail.
template <class V, class T>
V load_as(const T* p) {
  if constexpr (std::is_same_v<V, T>) {
    return *p;
  } else {
    return V::load_unaligned(p);
  }
}

/// Stores v (a batch or an element) at p, load_as's counterpart.
template <class V, class T>
void store_to(const V& v, T* p) {
  if constexpr (std::is_same_v<V, T>) {
    *p = v;
  } else {
    v.store_unaligned(p);
  }
}

/// step.template operator()<V>(i) at every position: V a batch for the SIMD body's positions i
/// (multiples of the width), the element type for the scalar tail's. A loop body with several inputs
/// and outputs is written once for both. Always inlined, with sums_by_step: called out of line,
/// LayerNorm's backward pass through them ran 3x slower.
template <class T, class Step>
[[gnu::always_inline]] inline void for_each_position(std::int64_t n, Step&& step) {
  std::int64_t i = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    for (; i + simd_width<T> <= n; i += simd_width<T>) step.template operator()<Batch<T>>(i);
  }
#endif
  for (; i < n; ++i) step.template operator()<T>(i);
}

/// K sums that one loop body adds to at every position: step(i, acc) with acc a std::array<V, K>,
/// V a batch of accumulators in the SIMD body (summed across lanes at its end) and the element type
/// in the scalar tail, which adds to those totals. One accumulator per sum: for a body that does
/// enough else per position that the adds' latency does not bind it.
template <class T, std::size_t K, class Step>
[[gnu::always_inline]] inline std::array<T, K> sums_by_step(std::int64_t n, Step&& step) {
  std::array<T, K> total{};
  std::int64_t i = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    std::array<Batch<T>, K> acc;
    acc.fill(Batch<T>(T(0)));
    for (; i + simd_width<T> <= n; i += simd_width<T>) step(i, acc);
    for (std::size_t k = 0; k < K; ++k) total[k] = horizontal_sum(acc[k]);
  }
#endif
  for (; i < n; ++i) step(i, total);
  return total;
}

/// y[i] = f(x[i]); y may equal x.
template <class T, class F>
void map_unary(const T* x, T* y, std::int64_t n, F f) {
  std::int64_t i = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    for (; i + simd_width<T> <= n; i += simd_width<T>) {
      f(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
    }
  }
#endif
  for (; i < n; ++i) y[i] = f(x[i]);
}

/// y[i] = f(a[i * sa], b[i * sb]) for strides sa, sb; strides 0 and 1 take the SIMD path.
template <class T, class F>
void map_binary(const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y, std::int64_t n, F f) {
  std::int64_t i = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    constexpr std::int64_t w = simd_width<T>;
    if (sa == 1 && sb == 1) {
      for (; i + w <= n; i += w) f(Batch<T>::load_unaligned(a + i), Batch<T>::load_unaligned(b + i)).store_unaligned(y + i);
    } else if (sa == 0 && sb == 1) {
      const Batch<T> av(a[0]);
      for (; i + w <= n; i += w) f(av, Batch<T>::load_unaligned(b + i)).store_unaligned(y + i);
    } else if (sa == 1 && sb == 0) {
      const Batch<T> bv(b[0]);
      for (; i + w <= n; i += w) f(Batch<T>::load_unaligned(a + i), bv).store_unaligned(y + i);
    }
  }
#endif
  for (; i < n; ++i) y[i] = f(a[i * sa], b[i * sb]);
}

/// map_binary over `rows` rows of n elements: row r reads a + r * a_outer and b + r * b_outer and
/// writes y + r * n. The loop a broadcast binary op runs, with its strides known when it is built.
template <class T, class F>
void map_binary_rows(const T* a, std::int64_t a_outer, std::int64_t sa, const T* b, std::int64_t b_outer,
                     std::int64_t sb, T* y, std::int64_t rows, std::int64_t n, F f) {
  for (std::int64_t r = 0; r < rows; ++r) map_binary(a + r * a_outer, sa, b + r * b_outer, sb, y + r * n, n, f);
}

/// y[i] = f(a[i], b[i], c[i]) over contiguous arrays; y may equal a.
template <class T, class F>
void map_ternary(const T* a, const T* b, const T* c, T* y, std::int64_t n, F f) {
  std::int64_t i = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    for (; i + simd_width<T> <= n; i += simd_width<T>) {
      f(Batch<T>::load_unaligned(a + i), Batch<T>::load_unaligned(b + i), Batch<T>::load_unaligned(c + i)).store_unaligned(y + i);
    }
  }
#endif
  for (; i < n; ++i) y[i] = f(a[i], b[i], c[i]);
}

/// R sums side by side: out[r] is the sum over i in [0, n) of batch_term(r, i), a batch of the terms
/// i .. i + width - 1, in the SIMD body, and of scalar_term(r, i) in the tail. Each sum has four
/// accumulators that take turns: with one, each add would wait for the previous one (a reduction
/// bound by the add's latency, about four times its throughput). Several independent rows side by
/// side hide the rest of that latency and of the final horizontal sums on short rows. The order of
/// a sum's additions depends on n alone, not on R, so a sum gets the same bits alone or beside others.
/// Always inlined: GCC 12 otherwise calls it out of line for one row, a call per reduction that
/// short rows (attention's 32-element dot products) notice.
template <int R, class T, class BatchTerm, class ScalarTerm>
[[gnu::always_inline]] inline void sums_of_terms(std::int64_t n, [[maybe_unused]] BatchTerm batch_term, ScalarTerm scalar_term, T (&out)[R]) {
  std::int64_t i = 0;
  for (T& total : out) total = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    constexpr std::int64_t w = simd_width<T>;
    Batch<T> acc[R][4];
    for (auto& row : acc) {
      for (Batch<T>& a : row) a = Batch<T>(T(0));
    }
    for (; i + 4 * w <= n; i += 4 * w) {
      for (int r = 0; r < R; ++r) {
        for (int a = 0; a < 4; ++a) acc[r][a] += batch_term(r, i + a * w);
      }
    }
    for (; i + w <= n; i += w) {
      for (int r = 0; r < R; ++r) acc[r][0] += batch_term(r, i);
    }
    for (int r = 0; r < R; ++r) out[r] = horizontal_sum((acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]));
  }
#endif
  for (; i < n; ++i) {
    for (int r = 0; r < R; ++r) out[r] += scalar_term(r, i);
  }
}

/// Rows a row kernel (LayerNorm, softmax) sums side by side with sums_of_terms: on rows of a few
/// hundred elements each sum's adds and its horizontal sum wait on one another, and four rows'
/// independent chains interleaved keep the adders busy (10-20% on W1-W3's rows, bench/README.md).
inline constexpr int kRowsSideBySide = 4;

/// The R rows of length n from row `first` of a contiguous array of `rows` rows; a short last group
/// repeats the last row, whose copies' results the caller does not write.
template <int R, class T>
std::array<const T*, R> row_group(const T* base, std::int64_t first, std::int64_t rows, std::int64_t n) {
  std::array<const T*, R> group{};
  for (int r = 0; r < R; ++r) group[r] = base + std::min(first + r, rows - 1) * n;
  return group;
}

/// The sum over i in [0, n) of batch_term(i) and, in the scalar tail, scalar_term(i): one row of
/// sums_of_terms.
template <class T, class BatchTerm, class ScalarTerm>
T sum_of_terms(std::int64_t n, [[maybe_unused]] BatchTerm batch_term, ScalarTerm scalar_term) {
  T total[1];
  sums_of_terms<1, T>(
      n, [&](int, std::int64_t i) { return batch_term(i); }, [&](int, std::int64_t i) { return scalar_term(i); }, total);
  return total[0];
}

/// The sum of f(a[i], b[i]) over contiguous arrays (f generic in scalars and batches).
template <class T, class F>
T reduce_binary(const T* a, const T* b, std::int64_t n, F f) {
  return sum_of_terms<T>(
      n, [&](std::int64_t i) { return f(load_batch(a + i), load_batch(b + i)); },
      [&](std::int64_t i) { return f(a[i], b[i]); });
}

/// f(p[i], g[i], m[i], v[i]) for every i, with p, m and v taken by reference and updated in place:
/// the shape of an optimizer step with two state tensors.
template <class T, class F>
void update_with_state(T* p, const T* g, T* m, T* v, std::int64_t n, F f) {
  std::int64_t i = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    for (; i + simd_width<T> <= n; i += simd_width<T>) {
      Batch<T> pb = Batch<T>::load_unaligned(p + i), mb = Batch<T>::load_unaligned(m + i), vb = Batch<T>::load_unaligned(v + i);
      f(pb, Batch<T>::load_unaligned(g + i), mb, vb);
      pb.store_unaligned(p + i);
      mb.store_unaligned(m + i);
      vb.store_unaligned(v + i);
    }
  }
#endif
  for (; i < n; ++i) f(p[i], g[i], m[i], v[i]);
}

/// Sum of x[0..n).
template <class T>
T reduce_sum(const T* x, std::int64_t n) {
  return sum_of_terms<T>(n, [&](std::int64_t i) { return load_batch(x + i); }, [&](std::int64_t i) { return x[i]; });
}

/// Maximum of x[0..n), n >= 1.
template <class T>
T reduce_max(const T* x, std::int64_t n) {
  T best = x[0];
  std::int64_t i = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    if (n >= simd_width<T>) {
      Batch<T> acc = Batch<T>::load_unaligned(x);
      for (i = simd_width<T>; i + simd_width<T> <= n; i += simd_width<T>) {
        acc = xsimd::max(acc, Batch<T>::load_unaligned(x + i));
      }
      alignas(64) T lanes[simd_width<T>];
      acc.store_unaligned(lanes);
      for (T lane : lanes) best = lane > best ? lane : best;
    }
  }
#endif
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
}

}  // namespace xg::kernels

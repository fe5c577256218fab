#pragma once
// Contiguous loops in SIMD batches with a scalar tail. A functor is written once, generically, and
// is called with xsimd batches for the body and with plain scalars for the tail (and for i32, and
// everywhere when the build chose -Dsimd=none).
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

/// The sum over i in [0, n) of batch_term(i), a batch of the terms i .. i + width - 1, in the SIMD
/// body, and of scalar_term(i) in the tail. Four accumulators take turns: with one, each add would
/// wait for the previous one (a reduction bound by the add's latency, about four times its
/// throughput). The order of the additions depends on n alone.
template <class T, class BatchTerm, class ScalarTerm>
T sum_of_terms(std::int64_t n, [[maybe_unused]] BatchTerm batch_term, ScalarTerm scalar_term) {
  std::int64_t i = 0;
  T total = 0;
#ifndef XG_NO_SIMD
  if constexpr (simd_width<T> > 1) {
    constexpr std::int64_t w = simd_width<T>;
    Batch<T> acc0(T(0)), acc1(T(0)), acc2(T(0)), acc3(T(0));
    for (; i + 4 * w <= n; i += 4 * w) {
      acc0 += batch_term(i);
      acc1 += batch_term(i + w);
      acc2 += batch_term(i + 2 * w);
      acc3 += batch_term(i + 3 * w);
    }
    for (; i + w <= n; i += w) acc0 += batch_term(i);
    total = horizontal_sum((acc0 + acc1) + (acc2 + acc3));
  }
#endif
  for (; i < n; ++i) total += scalar_term(i);
  return total;
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

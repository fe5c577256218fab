#pragma once
// dtypes, Shape, the owning Tensor, and the non-owning TensorRef that kernels and feeds use.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "xgrad/error.hpp"

namespace xg {

enum class DType : std::uint8_t { f32, f64, i32 };

std::string_view name(DType dtype);
std::size_t size_of(DType dtype);
constexpr bool is_float(DType dtype) { return dtype != DType::i32; }

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
template <>
constexpr DType dtype_of<double>() { return DType::f64; }
template <>
constexpr DType dtype_of<std::int32_t>() { return DType::i32; }

/// Calls f.template operator()<T>() with T the C++ type of dtype.
template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i32: break;
  }
  return f.template operator()<std::int32_t>();
}

/// Same as visit_dtype, for kernels that only exist for floating-point types.
template <class F>
decltype(auto) visit_float(DType dtype, F&& f) {
  if (dtype == DType::f64) return f.template operator()<double>();
  return f.template operator()<float>();
}

/// The extent of every axis; rank 0 is a scalar.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}
  template <class It>
  Shape(It first, It last) : dims_(first, last) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  /// The element count. ShapeError if an extent is negative or the count does not fit in 64 bits
  /// (never for the shape of a graph's node: Graph refuses such shapes when a node is made).
  std::int64_t numel() const;
  std::int64_t operator[](int axis) const { return dims_[static_cast<std::size_t>(axis)]; }
  std::int64_t& operator[](int axis) { return dims_[static_cast<std::size_t>(axis)]; }
  const std::vector<std::int64_t>& dims() const { return dims_; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }
  bool operator==(const Shape&) const = default;

 private:
  std::vector<std::int64_t> dims_;
};

/// Resolves a possibly negative axis against a rank; throws ValueError naming `where` if out of range.
int normalize_axis(int axis, int rank, std::string_view where);

/// An owning n-d array of one of the three dtypes (row-major, contiguous).
class Tensor {
 public:
  using Storage = std::variant<xt::xarray<float>, xt::xarray<double>, xt::xarray<std::int32_t>>;

  Tensor() : Tensor(xt::xarray<float>()) {}
  template <class T>
  Tensor(xt::xarray<T> values) : storage_(std::move(values)) {}  // NOLINT: implicit on purpose
  /// ShapeError if the shape has a negative extent or its byte count does not fit in 64 bits.
  static Tensor zeros(DType dtype, const Shape& shape);

  DType dtype() const { return static_cast<DType>(storage_.index()); }
  Shape shape() const;
  std::int64_t numel() const;
  void* data();
  const void* data() const;

  template <class T>
  xt::xarray<T>& as() {
    check_dtype(dtype_of<T>());
    return std::get<xt::xarray<T>>(storage_);
  }
  template <class T>
  const xt::xarray<T>& as() const {
    check_dtype(dtype_of<T>());
    return std::get<xt::xarray<T>>(storage_);
  }
  /// Converts to another dtype (a copy).
  Tensor cast(DType dtype) const;

 private:
  void check_dtype(DType wanted) const;
  Storage storage_;
};

/// A non-owning view of contiguous row-major data: what feeds are made of and what kernels see.
struct TensorRef {
  const void* data = nullptr;
  DType dtype = DType::f32;
  std::span<const std::size_t> shape;

  TensorRef() = default;
  TensorRef(const void* data_, DType dtype_, std::span<const std::size_t> shape_)
      : data(data_), dtype(dtype_), shape(shape_) {}
  template <class T>
  TensorRef(const xt::xarray<T>& a)  // NOLINT: implicit so that feeds read {var, array}
      : data(a.data()), dtype(dtype_of<T>()), shape(a.shape().data(), a.shape().size()) {}
  TensorRef(const Tensor& t);  // NOLINT

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::size_t d : shape) n *= static_cast<std::int64_t>(d);
    return n;
  }
};

}  // namespace xg

#include "xgrad/tensor.hpp"

#include <fmt/format.h>

#include "util/checked.hpp"

namespace xg {

std::string_view name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
  }
  return "?";
}

std::size_t size_of(DType dtype) { return dtype == DType::f64 ? 8 : 4; }

std::int64_t Shape::numel() const {
  return checked::size(dims_, 1, "Shape::numel");
}

int normalize_axis(int axis, int rank, std::string_view where) {
  const int resolved = axis < 0 ? axis + rank : axis;
  if (resolved < 0 || resolved >= rank) {
    throw ValueError(fmt::format("{}: axis {} is out of range for rank {}", where, axis, rank));
  }
  return resolved;
}

namespace {
std::vector<std::size_t> to_xshape(const Shape& shape) {
  std::vector<std::size_t> s;
  for (std::int64_t d : shape) s.push_back(static_cast<std::size_t>(d));
  return s;
}
}  // namespace

Tensor Tensor::zeros(DType dtype, const Shape& shape) {
  checked::size(shape.dims(), static_cast<std::int64_t>(size_of(dtype)), "Tensor::zeros");
  return visit_dtype(dtype, [&]<class T>() { return Tensor(xt::xarray<T>(xt::zeros<T>(to_xshape(shape)))); });
}

Shape Tensor::shape() const {
  return std::visit([](const auto& a) { return Shape(a.shape().begin(), a.shape().end()); }, storage_);
}

std::int64_t Tensor::numel() const {
  return std::visit([](const auto& a) { return static_cast<std::int64_t>(a.size()); }, storage_);
}

void* Tensor::data() {
  return std::visit([](auto& a) { return static_cast<void*>(a.data()); }, storage_);
}

const void* Tensor::data() const {
  return std::visit([](const auto& a) { return static_cast<const void*>(a.data()); }, storage_);
}

Tensor Tensor::cast(DType dtype) const {
  return std::visit(
      [&](const auto& a) {
        return visit_dtype(dtype, [&]<class T>() { return Tensor(xt::xarray<T>(xt::cast<T>(a))); });
      },
      storage_);
}

void Tensor::check_dtype(DType wanted) const {
  if (wanted != dtype()) {
    throw DTypeError(fmt::format("tensor of dtype {} read as {}", name(dtype()), name(wanted)));
  }
}

TensorRef::TensorRef(const Tensor& t)
    : TensorRef(visit_dtype(t.dtype(), [&]<class T>() { return TensorRef(t.as<T>()); })) {}

}  // namespace xg

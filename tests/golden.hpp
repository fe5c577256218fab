#pragma once
// Reads the value files in tests/golden/ that PyTorch wrote: text records (see make_fixtures.py for
// the format) or, for sets too large for text, safetensors files (make_nn_fixtures.py).
#include <map>
#include <string>

#include <xgrad/tensor.hpp>

namespace xg::testing {

/// Every record of tests/golden/<file>, by name: f64 or i32 tensors from a text file, f32, f64 or
/// i32 tensors from a `.safetensors` file.
std::map<std::string, Tensor> load_golden(const std::string& file);

/// The record `name`, cast to dtype (f64 records become f32 for f32 graphs).
class Golden {
 public:
  explicit Golden(const std::string& file) : records_(load_golden(file)) {}
  const Tensor& operator[](const std::string& name) const;
  /// The record as f64 (f32 records widened exactly).
  xt::xarray<double> f64(const std::string& name) const { return (*this)[name].cast(DType::f64).as<double>(); }
  xt::xarray<std::int32_t> i32(const std::string& name) const { return (*this)[name].as<std::int32_t>(); }
  const std::map<std::string, Tensor>& records() const { return records_; }

 private:
  std::map<std::string, Tensor> records_;
};

}  // namespace xg::testing

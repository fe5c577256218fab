#include "golden.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <xgrad/safetensors.hpp>

#ifndef XG_GOLDEN_DIR
#error "XG_GOLDEN_DIR must name the directory of the golden files"
#endif

namespace xg::testing {

std::map<std::string, Tensor> load_golden(const std::string& file) {
  const std::string path = fmt::format("{}/{}", XG_GOLDEN_DIR, file);
  if (file.ends_with(".safetensors")) return load_safetensors(path).tensors;
  std::ifstream in(path);
  if (!in) throw ValueError(fmt::format("cannot open golden file {}", path));
  std::map<std::string, Tensor> records;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string name, dtype;
    int rank = 0;
    fields >> name >> dtype >> rank;
    std::vector<std::size_t> shape(static_cast<std::size_t>(rank));
    for (auto& d : shape) fields >> d;
    auto read = [&]<class T>() {
      xt::xarray<T> values = xt::zeros<T>(shape);
      for (auto& v : values) fields >> v;
      if (!fields) throw ValueError(fmt::format("{}:{}: record '{}' is short of values", path, line_no, name));
      return Tensor(std::move(values));
    };
    if (dtype == "f64") records.emplace(name, read.template operator()<double>());
    else if (dtype == "i32") records.emplace(name, read.template operator()<std::int32_t>());
    else throw ValueError(fmt::format("{}:{}: unknown dtype '{}'", path, line_no, dtype));
  }
  return records;
}

const Tensor& Golden::operator[](const std::string& name) const {
  auto it = records_.find(name);
  if (it == records_.end()) throw ValueError(fmt::format("no golden record named '{}'", name));
  return it->second;
}

}  // namespace xg::testing

// The smallest useful program against xgrad: build, differentiate, compile, run, check.
#include <cmath>

#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

int main() {
  using namespace xg;
  Graph g(0, DType::f64);
  const Var x = g.input("x", {3});
  const Var y = sum(square(x));
  const Var dx = grad(g, y, {x})[0];
  Program p = compile(g, {y, dx});
  const xt::xarray<double> value{1.0, 2.0, 3.0};
  p.run({{x, value}});
  const double y_value = p.get<double>(y)();
  const xt::xarray<double> dx_value = p.get<double>(dx);
  fmt::print("xgrad consumer: y = {}, dy/dx = {}\n", y_value, p.get(dx));
  const bool ok = y_value == 14.0 && dx_value(0) == 2.0 && dx_value(1) == 4.0 && dx_value(2) == 6.0;
  return ok ? 0 : 1;
}

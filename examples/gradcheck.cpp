// Gradient-checks every op, layer and model of the tables in f64 against central differences and prints one row per
// case. Exits non-zero if any case fails.
#include <fmt/core.h>

#include "op_cases.hpp"

int main() {
  int failed = 0;
  fmt::print("{:<18} {:<44} {:>12} {:>12}  {}\n", "op", "case", "max abs err", "max rel err", "result");
  std::size_t total = 0;
  for (const auto* table : {&xg::testing::op_cases(), &xg::testing::layer_cases()}) {
    for (const auto& c : *table) {
      const xg::GradcheckReport report = xg::testing::run_case(c);
      failed += report.passed() ? 0 : 1;
      ++total;
      fmt::print("{:<18} {:<44} {:>12.3e} {:>12.3e}  {}\n", c.op, c.variant, report.max_abs_error(),
                 report.max_rel_error(), report.passed() ? "pass" : "FAIL");
    }
  }
  fmt::print("{} cases, {} failed\n", total, failed);
  return failed == 0 ? 0 : 1;
}

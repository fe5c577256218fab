// libFuzzer's entry point for one target, chosen at build time (XG_FUZZ_TARGET).
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  xg::fuzz::XG_FUZZ_TARGET(data, size);
  return 0;
}

// Replays every input kept in fuzz/corpus/ (seeds, and whatever the fuzzers found) through the fuzz
// targets: each must finish with success or an xg::Error, never a crash or a sanitizer report.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_targets.hpp"

namespace {

std::size_t replay(const std::string& target, void (*run)(const std::uint8_t*, std::size_t)) {
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(XG_FUZZ_CORPUS) / target)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    CAPTURE(entry.path().string());
    CHECK_NOTHROW(run(bytes.data(), bytes.size()));
    ++count;
  }
  return count;
}

}  // namespace

TEST_CASE("fuzz corpus: the safetensors parser survives every kept input") {
  CHECK(replay("safetensors", xg::fuzz::safetensors) >= 3);
}

TEST_CASE("fuzz corpus: graph building, autodiff, compile and run survive every kept input") {
  CHECK(replay("graph_build", xg::fuzz::graph_build) >= 6);
}

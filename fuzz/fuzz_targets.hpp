#pragma once
// Fuzz targets: each takes arbitrary bytes and must either succeed or raise an xg::Error; a crash,
// a sanitizer report or any other exception is a bug. Built for libFuzzer with -Dfuzz=true (clang),
// and replayed on every file of fuzz/corpus/ by the regular test suite.
#include <cstddef>
#include <cstdint>

namespace xg::fuzz {

/// Parses the bytes as a safetensors file.
void safetensors(const std::uint8_t* data, std::size_t size);

/// Reads the bytes as a little program that builds a graph from random ops, differentiates it,
/// compiles it and runs it.
void graph_build(const std::uint8_t* data, std::size_t size);

}  // namespace xg::fuzz

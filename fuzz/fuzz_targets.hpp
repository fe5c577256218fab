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
/// compiles it and runs it; then tries shapes too large to count (inputs, parameters, reshape,
/// broadcasting, matmul batch axes, concat, extreme slices, an arena past 2^63 bytes), with the
/// bytes left over choosing them. Each must be refused or make a node whose size fits.
void graph_build(const std::uint8_t* data, std::size_t size);

}  // namespace xg::fuzz

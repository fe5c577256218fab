#pragma once
// The safetensors file format: an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__":
// {"key": "value"}}), then the raw little-endian data the offsets point into. PyTorch, JAX and
// Hugging Face tools read and write it, so weights move between them and xgrad by name.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/tensor.hpp"

namespace xg {

/// What a safetensors file holds: tensors by name and string metadata.
struct SafetensorsContent {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// The largest header accepted, so that a hostile length cannot make the reader allocate gigabytes.
inline constexpr std::uint64_t kMaxSafetensorsHeader = 100u << 20;

/// Writes the tensors atomically: into a temporary file beside `path`, flushed to disk (fsync), then
/// renamed over `path`. If anything fails, `path` keeps its old contents, the temporary file is
/// removed and IOError says what failed. A tensor whose byte size, or the file's, does not fit in 64
/// bits is a ShapeError naming it, raised before anything is written. A process killed during the
/// write leaves `path` whole (old or new), but its temporary file, `<path>.tmp-XXXXXX`, stays behind.
void save_safetensors(const std::string& path, std::span<const std::pair<std::string, TensorRef>> tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Parses a whole file held in memory. Every length, offset, dtype and shape is checked before any
/// data is read; malformed input raises CheckpointError naming the entry and the problem. Only
/// F32, F64 and I32 tensors are supported (others raise CheckpointError naming the dtype).
SafetensorsContent parse_safetensors(std::span<const std::uint8_t> bytes, const std::string& source = "<memory>");

/// Reads and parses `path` (IOError if it cannot be read).
SafetensorsContent load_safetensors(const std::string& path);

}  // namespace xg

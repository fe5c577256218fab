#include "xgrad/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.hpp"
#include "util/checked.hpp"
#include "xgrad/format.hpp"

namespace xg {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so is every target we build for");

namespace {

using Json = nlohmann::json;

std::string_view safetensors_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
  }
  return "?";
}

DType dtype_from(const std::string& name, const std::string& where) {
  if (name == "F32") return DType::f32;
  if (name == "F64") return DType::f64;
  if (name == "I32") return DType::i32;
  static const std::vector<std::string> known{"BOOL", "U8", "I8", "U16", "I16", "F16", "BF16", "U32", "I64", "U64", "F8_E4M3", "F8_E5M2"};
  if (std::find(known.begin(), known.end(), name) != known.end()) {
    throw CheckpointError(fmt::format("{}: dtype {} is valid safetensors but xgrad supports only F32, F64 and I32", where, name));
  }
  throw CheckpointError(fmt::format("{}: unknown dtype '{}'", where, name));
}

/// A non-negative integer that fits in 64 bits, or CheckpointError naming `what`.
std::uint64_t unsigned_of(const Json& v, const std::string& what) {
  if (!v.is_number_unsigned()) throw CheckpointError(fmt::format("{} must be a non-negative integer, got {}", what, v.dump()));
  return v.get<std::uint64_t>();
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<std::size_t> shape;
  std::uint64_t begin, end;
};

Entry parse_entry(const std::string& name, const Json& v, const std::string& source) {
  const std::string where = fmt::format("{}: tensor '{}'", source, name);
  if (!v.is_object()) throw CheckpointError(fmt::format("{} is described by {}, not an object", where, v.dump()));
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(key)) throw CheckpointError(fmt::format("{} has no \"{}\"", where, key));
  }
  if (!v["dtype"].is_string()) throw CheckpointError(fmt::format("{}: dtype must be a string", where));
  Entry e{name, dtype_from(v["dtype"].get<std::string>(), where), {}, 0, 0};
  const Json& shape = v["shape"];
  if (!shape.is_array() || shape.size() > 32) throw CheckpointError(fmt::format("{}: shape must be an array of at most 32 extents", where));
  for (const Json& d : shape) e.shape.push_back(static_cast<std::size_t>(unsigned_of(d, where + " shape extent")));
  // The limits of a graph's shapes (Graph refuses the same), so that every tensor read can be loaded.
  const auto numel = checked::product(e.shape);
  const auto bytes = checked::product(e.shape, static_cast<std::int64_t>(size_of(e.dtype)));
  if (!numel || !bytes) {
    throw CheckpointError(fmt::format("{}: shape {} of {} overflows: its size in bytes does not fit in 64 bits", where, shape.dump(),
                                      v["dtype"].get<std::string>()));
  }
  const Json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) throw CheckpointError(fmt::format("{}: data_offsets must be [begin, end]", where));
  e.begin = unsigned_of(offsets[0], where + " data_offsets[0]");
  e.end = unsigned_of(offsets[1], where + " data_offsets[1]");
  if (e.begin > e.end || e.end - e.begin != static_cast<std::uint64_t>(*bytes)) {
    throw CheckpointError(fmt::format("{}: data_offsets [{}, {}] do not hold {} elements of {} ({} bytes)", where, e.begin,
                                      e.end, *numel, v["dtype"].get<std::string>(), *bytes));
  }
  return e;
}

}  // namespace

void save_safetensors(const std::string& path, std::span<const std::pair<std::string, TensorRef>> tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<std::size_t> sizes;  // bytes per tensor
  std::int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__" || header.contains(name)) {
      throw ValueError(fmt::format("save_safetensors {}: tensor name '{}' is empty, reserved or repeated", path, name));
    }
    const std::string what = fmt::format("save_safetensors {}: tensor '{}' ({})", path, name, t.dtype);
    const std::int64_t bytes = checked::size(t.shape, static_cast<std::int64_t>(size_of(t.dtype)), what);
    const auto end = checked::add(offset, bytes);
    if (!end) throw ShapeError(fmt::format("{}: the file would pass 2^63 - 1 bytes", what));
    header[name] = {{"dtype", safetensors_name(t.dtype)}, {"shape", std::vector<std::size_t>(t.shape.begin(), t.shape.end())},
                    {"data_offsets", {offset, *end}}};
    sizes.push_back(static_cast<std::size_t>(bytes));
    offset = *end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  const std::uint64_t header_size = text.size();

  AtomicFile file(path);
  file.write(&header_size, sizeof header_size, "the header");
  file.write(text, "the header");
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    file.write(tensors[k].second.data, sizes[k], fmt::format("tensor '{}'", tensors[k].first));
  }
  file.commit();
}

SafetensorsContent parse_safetensors(std::span<const std::uint8_t> bytes, const std::string& source) {
  if (bytes.size() < 8) {
    throw CheckpointError(fmt::format("{}: {} bytes is too short for safetensors (the header length alone takes 8)", source,
                                      bytes.size()));
  }
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > kMaxSafetensorsHeader) {
    throw CheckpointError(fmt::format("{}: header length {} exceeds the limit of {} bytes", source, header_size, kMaxSafetensorsHeader));
  }
  if (header_size > bytes.size() - 8) {
    throw CheckpointError(fmt::format("{}: header length {} runs past the end of the {}-byte file (truncated?)", source,
                                      header_size, bytes.size()));
  }
  const auto* header_begin = reinterpret_cast<const char*>(bytes.data() + 8);
  const Json header = Json::parse(header_begin, header_begin + header_size, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) throw CheckpointError(fmt::format("{}: the header is not valid JSON", source));
  if (!header.is_object()) throw CheckpointError(fmt::format("{}: the header is {}, not a JSON object", source, header.type_name()));

  const std::span<const std::uint8_t> data = bytes.subspan(8 + header_size);
  SafetensorsContent content;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw CheckpointError(fmt::format("{}: __metadata__ must be an object of strings", source));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw CheckpointError(fmt::format("{}: metadata '{}' is not a string", source, mk));
        content.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(key, value, source));
  }
  // The data must be covered exactly: in bounds, no overlaps, no holes (as the format requires).
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  for (const Entry* e : by_offset) {
    if (e->end > data.size()) {
      throw CheckpointError(fmt::format("{}: tensor '{}' data_offsets [{}, {}] run past the {} data bytes (truncated?)", source,
                                        e->name, e->begin, e->end, data.size()));
    }
    if (e->begin < covered) {
      throw CheckpointError(fmt::format("{}: tensor '{}' data_offsets [{}, {}] overlap the tensor before it", source, e->name,
                                        e->begin, e->end));
    }
    if (e->begin > covered) {
      throw CheckpointError(fmt::format("{}: bytes [{}, {}) before tensor '{}' belong to no tensor", source, covered, e->begin, e->name));
    }
    covered = e->end;
  }
  if (covered != data.size()) {
    throw CheckpointError(fmt::format("{}: {} bytes after the last tensor belong to no tensor", source, data.size() - covered));
  }
  for (const Entry& e : entries) {
    Tensor t = visit_dtype(e.dtype, [&]<class T>() { return Tensor(xt::xarray<T>(xt::xarray<T>::from_shape(e.shape))); });
    if (e.end > e.begin) std::memcpy(t.data(), data.data() + e.begin, e.end - e.begin);
    content.tensors.emplace(e.name, std::move(t));
  }
  return content;
}

SafetensorsContent load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IOError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  const std::streamoff size = in.tellg();
  if (size < 0) throw IOError(fmt::format("cannot read {}", path));
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) throw IOError(fmt::format("cannot read {}", path));
  return parse_safetensors(bytes, path);
}

}  // namespace xg

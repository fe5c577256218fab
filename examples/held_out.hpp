#pragma once
// Splits a generated task's strings into training and held-out sets by a hash of the string, so
// that every length keeps most of its strings for training (drawing a held-out sample first and
// excluding it would swallow all the strings of the short lengths) and no held-out string is ever
// trained on.
#include <cstdint>
#include <string_view>

namespace xg::examples {

/// True for about one string in `one_in`: FNV-1a of the text, the same on every platform.
inline bool is_held_out(std::string_view text, std::uint64_t one_in = 8) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return h % one_in == 0;
}

}  // namespace xg::examples

#pragma once
// Helpers for tests of errors: the message of the exception a call must throw.
#include <doctest/doctest.h>

#include <string>

namespace xg::testing {

/// The message of the E that f() throws; a failed check (and "") if it throws nothing of that type.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception of the expected type was thrown");
  return {};
}

inline bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace xg::testing

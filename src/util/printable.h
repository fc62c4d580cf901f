// A name read from an untrusted file, fit for a one-line error message: printable ASCII kept,
// other bytes as \xNN, cut after max_chars.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace gemma {

inline std::string printable(std::string_view s, size_t max_chars = 200) {
  std::string out;
  for (char c : s.substr(0, max_chars)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? std::string(1, c) : fmt::format("\\x{:02x}", u);
  }
  return s.size() > max_chars ? out + "..." : out;
}

}  // namespace gemma

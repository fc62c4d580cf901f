// UTF-8 helpers for the tokenizer: validation with the offending byte's offset, code point
// iteration, and a streaming decoder that holds back incomplete sequences.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gemma {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid or truncated
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence_length(std::string_view s, size_t i);

// The code point of one valid UTF-8 sequence (as measured by utf8_sequence_length).
inline uint32_t utf8_code_point(std::string_view seq) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(seq[i])); };
  switch (seq.size()) {
    case 1: return b(0);
    case 2: return (b(0) & 0x1F) << 6 | (b(1) & 0x3F);
    case 3: return (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    default: return (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
  }
}

// Offset of the first invalid byte, or nullopt if `s` is valid UTF-8.
std::optional<size_t> utf8_first_invalid(std::string_view s);

// Replaces every invalid byte with U+FFFD.
std::string utf8_sanitize(std::string_view s);

// Streaming: push the bytes of each generated token, get back only complete characters.
// Incomplete multi-byte sequences wait for the next push; invalid bytes become U+FFFD.
class Utf8StreamDecoder {
 public:
  std::string push(std::string_view bytes);
  std::string flush();  // whatever is pending, with U+FFFD for an unfinished sequence

 private:
  std::string pending_;
};

}  // namespace gemma

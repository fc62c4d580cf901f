#include "tokenizer/utf8.h"

namespace gemma {

namespace {
constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD
inline bool cont(unsigned char c) { return (c & 0xC0) == 0x80; }

// Expected length from the lead byte (0 if it cannot start a sequence).
size_t lead_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

// The byte after lead byte c0, which also rules out overlong forms, surrogates and > U+10FFFF.
bool second_byte_ok(unsigned char c0, unsigned char c1) {
  if (!cont(c1)) return false;
  if (c0 == 0xE0) return c1 >= 0xA0;
  if (c0 == 0xED) return c1 <= 0x9F;
  if (c0 == 0xF0) return c1 >= 0x90;
  if (c0 == 0xF4) return c1 <= 0x8F;
  return true;
}
}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto c0 = static_cast<unsigned char>(s[i]);
  const size_t n = lead_length(c0);
  if (n == 0 || i + n > s.size()) return 0;
  if (n == 1) return 1;
  if (!second_byte_ok(c0, static_cast<unsigned char>(s[i + 1]))) return 0;
  for (size_t k = 2; k < n; ++k)
    if (!cont(static_cast<unsigned char>(s[i + k]))) return 0;
  return n;
}

std::optional<size_t> utf8_first_invalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string Utf8StreamDecoder::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const size_t n = utf8_sequence_length(pending_, i);
    if (n > 0) {
      out.append(pending_, i, n);
      i += n;
      continue;
    }
    // Could this be the start of a sequence that the next token completes?
    const auto c0 = static_cast<unsigned char>(pending_[i]);
    const size_t want = lead_length(c0);
    bool prefix_ok = want > 1 && i + want > pending_.size();
    if (prefix_ok && i + 1 < pending_.size())
      prefix_ok = second_byte_ok(c0, static_cast<unsigned char>(pending_[i + 1]));
    for (size_t k = i + 2; prefix_ok && k < pending_.size(); ++k)
      prefix_ok = cont(static_cast<unsigned char>(pending_[k]));
    if (prefix_ok) break;
    out += kReplacement;
    ++i;
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8StreamDecoder::flush() {
  std::string out = utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace gemma

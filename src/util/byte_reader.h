// A bounds-checked little-endian cursor over untrusted bytes. Every binary parser (GGUF, pickle,
// protobuf, OCDBT) reads through it, so a truncated or hostile file becomes an error, never an
// out-of-bounds read. After the first failure every read returns zero and ok() stays false;
// parsers check ok() at natural points and report what they were reading.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace gemma {

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  size_t size() const { return bytes_.size(); }
  size_t remaining() const { return bytes_.size() - pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }
  void fail() { ok_ = false; }

  template <typename T>
  T read() {
    T v{};
    if (!ok_ || remaining() < sizeof(T)) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));  // host is little-endian (checked in CMake)
    pos_ += sizeof(T);
    return v;
  }

  // A view of the next n bytes (empty and !ok() if fewer remain).
  std::span<const uint8_t> take(uint64_t n) {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      return {};
    }
    auto s = bytes_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  std::string_view take_string(uint64_t n) {
    auto s = take(n);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }

  void skip(uint64_t n) { (void)take(n); }

  // Unsigned LEB128 (protobuf, OCDBT). Fails on more than 10 bytes or overflow.
  uint64_t read_varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = read<uint8_t>();
      if (!ok_) return 0;
      if (shift == 63 && (b & 0x7e)) break;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok_ = false;
    return 0;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace gemma

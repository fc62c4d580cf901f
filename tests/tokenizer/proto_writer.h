// Writes protobuf wire format for tests: tiny SentencePiece models, and broken ones.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace gemma::test {

class ProtoWriter {
 public:
  ProtoWriter& varint(uint32_t field, uint64_t v) {
    key(field, 0);
    raw_varint(v);
    return *this;
  }
  ProtoWriter& fixed32(uint32_t field, float v) {
    key(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    out_.append(b, 4);
    return *this;
  }
  ProtoWriter& bytes(uint32_t field, const std::string& v) {
    key(field, 2);
    raw_varint(v.size());
    out_ += v;
    return *this;
  }
  ProtoWriter& message(uint32_t field, const ProtoWriter& m) { return bytes(field, m.str()); }
  ProtoWriter& raw(const std::string& b) {
    out_ += b;
    return *this;
  }
  void key(uint32_t field, uint32_t wire) { raw_varint(uint64_t{field} << 3 | wire); }
  void raw_varint(uint64_t v) {
    do {
      out_ += static_cast<char>((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
      v >>= 7;
    } while (v);
  }
  const std::string& str() const { return out_; }
  std::vector<uint8_t> data() const { return {out_.begin(), out_.end()}; }

 private:
  std::string out_;
};

}  // namespace gemma::test

// Fuzzes the SentencePiece ModelProto reader (then encodes and decodes with whatever loads), and
// encoding of arbitrary bytes with a fixed small model: invalid UTF-8 must be an error, never a crash.
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace {

// A serialized BPE ModelProto: <pad> <eos> <bos> <unk> <sep>, the 256 byte pieces, a b ▁ ab ▁a.
std::string small_model() {
  std::string out;
  auto varint = [](std::string& s, uint64_t v) {
    do {
      s += static_cast<char>((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
      v >>= 7;
    } while (v);
  };
  auto bytes_field = [&](std::string& s, int field, const std::string& v) {
    varint(s, static_cast<uint64_t>(field) << 3 | 2);
    varint(s, v.size());
    s += v;
  };
  auto piece = [&](const std::string& text, int type, float score) {
    std::string p;
    bytes_field(p, 1, text);
    p += '\x15';  // field 2, fixed32
    p.append(reinterpret_cast<const char*>(&score), 4);
    p += '\x18';  // field 3, varint
    varint(p, static_cast<uint64_t>(type));
    bytes_field(out, 1, p);
  };
  piece("<pad>", 3, 0), piece("<eos>", 3, 0), piece("<bos>", 3, 0), piece("<unk>", 2, 0), piece("<sep>", 4, 0);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) piece(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", 6, 0);
  piece("a", 1, 0), piece("b", 1, 0), piece("\xE2\x96\x81", 1, 0), piece("ab", 1, -1),
      piece(
          "\xE2\x96\x81"
          "a",
          1, -2);
  // trainer_spec: model_type BPE, byte_fallback, unk 3, bos 2, eos 1, pad 0
  bytes_field(out, 2, std::string("\x18\x02\x98\x02\x01\xc0\x02\x03\xc8\x02\x02\xd0\x02\x01\xd8\x02\x00", 17));
  // normalizer_spec: add_dummy_prefix false, remove_extra_whitespaces false
  bytes_field(out, 3, std::string("\x18\x00\x20\x00", 4));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto t = gemma::Tokenizer::from_sentencepiece({data, size}, "fuzz.model");
  if (t.ok()) {
    auto ids = t->encode("Hello <bos> w\xC3\xB6rld  \n\n\xE2\x96\x81\xE2\x96\x81 \xF0\x9F\x99\x82", true);
    if (ids.ok()) (void)t->decode(*ids);
  }
  static const std::string model = small_model();
  static const auto fixed = gemma::Tokenizer::from_sentencepiece(
      {reinterpret_cast<const uint8_t*>(model.data()), model.size()}, "fixed.model");
  if (fixed.ok()) {
    auto ids = fixed->encode(std::string_view(reinterpret_cast<const char*>(data), size), false);
    if (ids.ok()) (void)fixed->decode(*ids);
  }
  return 0;
}

// Fuzzes tokenizer.json loading and, with a fixed small vocabulary, encoding of arbitrary bytes.
#include <cstdint>
#include <string_view>

#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = gemma::Tokenizer::from_hf_json(text, "fuzz.json");
  if (t.ok()) {
    auto ids = t->encode("ab cd <bos>", true);
    if (ids.ok()) (void)t->decode(*ids);
  }
  // The input as text to encode with a fixed tokenizer: invalid UTF-8 must be an error, not a crash.
  static const auto fixed = gemma::Tokenizer::from_hf_json(
      R"({"model": {"type": "BPE", "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "a": 4, "b": 5,)"
      R"( "ab": 6, "▁": 7, "▁a": 8, "<0x00>": 9, "<0xC3>": 10, "<0xA9>": 11}, "merges": [["a", "b"], ["▁", "a"]]},)"
      R"( "added_tokens": [{"id": 2, "content": "<bos>", "special": true}]})",
      "fixed");
  if (fixed.ok()) {
    auto ids = fixed->encode(text, false);
    if (ids.ok()) (void)fixed->decode(*ids);
  }
  return 0;
}

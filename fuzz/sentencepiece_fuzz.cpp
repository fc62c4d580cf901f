// Fuzzes the SentencePiece ModelProto reader, then encodes and decodes with whatever loads.
#include <cstdint>

#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto t = gemma::Tokenizer::from_sentencepiece({data, size}, "fuzz.model");
  if (!t.ok()) return 0;
  auto ids = t->encode("Hello <bos> wörld  \n\n▁▁ 🙂", true);
  if (ids.ok()) (void)t->decode(*ids);
  return 0;
}

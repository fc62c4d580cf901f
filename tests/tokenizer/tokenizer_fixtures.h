// Shared, load-once fixtures for the tokenizer tests: the golden cases and the Gemma 3 tokenizer
// from each source (tokenizer.json, tokenizer.model, the real GGUF).
#pragma once

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace gemma::test {

// One line of tests/fixtures/tokenizer/gemma3_cases.jsonl.zst (produced by HF tokenizers-style
// reference code; see /tokenizer README): encode without and with <bos>, decode.
struct GoldenCase {
  std::string text, decoded;
  std::vector<int32_t> ids, ids_with_special;
};
const std::vector<GoldenCase>& golden_cases();

const Tokenizer& json_tokenizer();   // tokenizer.json.zst
const Tokenizer& model_tokenizer();  // tokenizer.model.zst
const Tokenizer* gguf_tokenizer();   // the real 270M GGUF's vocabulary; nullptr if not installed

}  // namespace gemma::test

#include "tokenizer_fixtures.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "support/test_support.h"
#include "util/zstd_file.h"

namespace gemma::test {

const std::vector<GoldenCase>& golden_cases() {
  static const std::vector<GoldenCase> cases = [] {
    std::vector<GoldenCase> v;
    auto text = read_file_maybe_zstd(fixture("tokenizer/gemma3_cases.jsonl.zst"));
    if (!text.ok()) {
      ADD_FAILURE() << text.error().message;
      return v;
    }
    // Split on '\n' only: texts contain U+2028 and other line breaks, escaped or not.
    for (size_t pos = 0; pos < text->size();) {
      size_t end = text->find('\n', pos);
      if (end == std::string::npos) end = text->size();
      if (end > pos) {
        auto j = nlohmann::json::parse(text->substr(pos, end - pos));
        v.push_back({j["text"], j["decoded"], j["ids"], j["ids_with_special"]});
      }
      pos = end + 1;
    }
    return v;
  }();
  return cases;
}

namespace {
Tokenizer load_or_die(Result<Tokenizer> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", what, r.error().message.c_str());
    std::abort();  // every test below needs it; a clear message beats a cascade of failures
  }
  return std::move(r).value();
}
}  // namespace

const Tokenizer& json_tokenizer() {
  static const Tokenizer t =
      load_or_die(Tokenizer::from_file(fixture("tokenizer/tokenizer.json.zst")), "tokenizer.json.zst");
  return t;
}

const Tokenizer& model_tokenizer() {
  static const Tokenizer t =
      load_or_die(Tokenizer::from_file(fixture("tokenizer/tokenizer.model.zst")), "tokenizer.model.zst");
  return t;
}

const Tokenizer* gguf_tokenizer() {
  static const std::optional<Tokenizer> t = []() -> std::optional<Tokenizer> {
    if (real_model_path().empty()) return std::nullopt;
    auto f = GgufFile::open(real_model_path());
    if (!f.ok()) {
      ADD_FAILURE() << f.error().message;
      return std::nullopt;
    }
    return load_or_die(Tokenizer::from_gguf(**f), "the real GGUF's tokenizer");
  }();
  return t ? &*t : nullptr;
}

}  // namespace gemma::test

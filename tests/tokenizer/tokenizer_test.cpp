// The tokenizer against 354 golden cases produced by an independent implementation
// (tests/fixtures/tokenizer/gemma3_cases.jsonl.zst: ids, ids with <bos>, decoded text), loaded from
// each source a user may have: tokenizer.json, tokenizer.model, and the GGUF vocabulary.
#include "tokenizer/tokenizer.h"

#include <chrono>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "support/test_support.h"
#include "util/zstd_file.h"

namespace gemma {
namespace {

struct Golden {
  std::string text, decoded;
  std::vector<int32_t> ids, ids_with_special;
};

const std::vector<Golden>& goldens() {
  static const std::vector<Golden> cases = [] {
    std::vector<Golden> v;
    auto text = read_file_maybe_zstd(test::fixture("tokenizer/gemma3_cases.jsonl.zst"));
    EXPECT_TRUE(text.ok());
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      v.push_back({j["text"], j["decoded"], j["ids"], j["ids_with_special"]});
    }
    return v;
  }();
  return cases;
}

const Tokenizer& json_tokenizer() {
  static const Tokenizer t = [] {
    auto r = Tokenizer::from_file(test::fixture("tokenizer/tokenizer.json.zst"));
    EXPECT_TRUE(r.ok()) << r.error().message;
    return std::move(r).value();
  }();
  return t;
}

// skip_image_soft_token: GGUF and tokenizer.model have no <image_soft_token> (id 262144): it is an
// added token of HF's tokenizer.json only, so the one golden that writes it literally is skipped.
void check_goldens(const Tokenizer& tok, const std::string& source, bool skip_image_soft_token = false) {
  ASSERT_EQ(goldens().size(), 354u);
  int failures = 0, checked = 0;
  for (const Golden& g : goldens()) {
    if (skip_image_soft_token && g.text.find("<image_soft_token>") != std::string::npos) continue;
    ++checked;
    auto ids = tok.encode(g.text, false);
    ASSERT_TRUE(ids.ok()) << ids.error().message;
    auto with_bos = tok.encode(g.text, true);
    ASSERT_TRUE(with_bos.ok());
    const std::string decoded = tok.decode(*ids);
    if (*ids != g.ids || *with_bos != g.ids_with_special || decoded != g.decoded) {
      if (++failures <= 5)
        ADD_FAILURE() << source << ": mismatch on " << nlohmann::json(g.text).dump().substr(0, 200);
    }
  }
  EXPECT_EQ(failures, 0) << source;
  std::printf("tokenizer goldens from %s: %d of %d identical\n", source.c_str(), checked - failures, checked);
}

TEST(Tokenizer, GoldensFromTokenizerJson) { check_goldens(json_tokenizer(), "tokenizer.json"); }

TEST(Tokenizer, GoldensFromGgufVocabulary) {
  GEMMA_REQUIRE_REAL_MODEL();
  auto f = GgufFile::open(test::real_model_path());
  ASSERT_TRUE(f.ok());
  auto tok = Tokenizer::from_gguf(**f);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  check_goldens(*tok, "GGUF", true);
}

TEST(Tokenizer, GoldensFromSentencePieceModel) {
  auto tok = Tokenizer::from_file(test::fixture("tokenizer/tokenizer.model.zst"));
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  check_goldens(*tok, "tokenizer.model", true);
}

TEST(Tokenizer, SpecialIdsAndLiteralSpecialTokens) {
  const Tokenizer& t = json_tokenizer();
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.start_of_turn_id(), 105);
  EXPECT_EQ(t.end_of_turn_id(), 106);
  auto ids = t.encode("a<bos>b", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{236746, 2, 236763}));
  auto turn = t.encode("<start_of_turn>user\nhi<end_of_turn>\n", false);
  ASSERT_TRUE(turn.ok());
  EXPECT_EQ(turn->front(), 105);
}

TEST(Tokenizer, RejectsInvalidUtf8WithOffset) {
  auto r = json_tokenizer().encode(std::string("ok\xC3(", 4), false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("byte 2"), std::string::npos) << r.error().message;
  EXPECT_FALSE(json_tokenizer().encode("\xED\xA0\x80", false).ok());  // a UTF-16 surrogate
  EXPECT_FALSE(json_tokenizer().encode("\xC0\xAF", false).ok());      // overlong
}

TEST(Tokenizer, StreamingDecodeHoldsPartialCharacters) {
  const Tokenizer& t = json_tokenizer();
  auto ids = t.encode("\xF0\x9F\xAB\xA9 ok", false);  // U+1FAE9 falls back to 4 byte tokens
  ASSERT_TRUE(ids.ok());
  Utf8StreamDecoder d;
  std::string out;
  std::vector<std::string> pieces;
  for (int32_t id : *ids) pieces.push_back(d.push(t.token_bytes(id)));
  out = "";
  for (auto& p : pieces) out += p;
  out += d.flush();
  EXPECT_EQ(out, "\xF0\x9F\xAB\xA9 ok");
  EXPECT_EQ(pieces[0], "");  // the first byte alone is not a character yet
}

TEST(Tokenizer, HostileFilesGiveErrors) {
  EXPECT_FALSE(Tokenizer::from_hf_json("{", "x").ok());
  EXPECT_FALSE(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": {"a": -5}, "merges": []}})", "x").ok());
  EXPECT_FALSE(Tokenizer::from_hf_json(R"({"model": {"type": "Unigram"}})", "x").ok());
  const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
  EXPECT_FALSE(Tokenizer::from_sentencepiece(junk, "x").ok());
  EXPECT_FALSE(Tokenizer::from_sentencepiece({}, "x").ok());
}

TEST(Tokenizer, EncodesOneMegabyteQuickly) {
  std::string text;
  const std::string para =
      "The quick brown fox jumps over the lazy dog. Lorem ipsum dolor sit amet, 123456 consectetur; "
      "日本語のテキストも少し。Ünïcödé and emoji 🙂🚀 and code: for (int i = 0; i < n; ++i) { x += i; }\n";
  while (text.size() < (1u << 20)) text += para;
  const auto t0 = std::chrono::steady_clock::now();
  auto ids = json_tokenizer().encode(text, true);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(ids.ok());
  RecordProperty("encode_1mb_seconds", std::to_string(s));
  std::printf("tokenizer: encoded %zu bytes into %zu tokens in %.3f s\n", text.size(), ids->size(), s);
}

}  // namespace
}  // namespace gemma

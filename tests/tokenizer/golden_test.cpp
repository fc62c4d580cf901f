// The tokenizer against the 354 golden cases (ids, ids with <bos>, decoded text), loaded from each
// source a user may have: tokenizer.json, tokenizer.model, and the GGUF's vocabulary. Also checks
// that the three sources describe the same vocabulary.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "tokenizer_fixtures.h"

namespace gemma {
namespace {

using test::golden_cases;

// <image_soft_token> (id 262144) is an added token of HF's tokenizer.json only: it lies past the
// 262,144 pieces of the SentencePiece model and of the GGUF (and past the 270M's embedding rows),
// so the one golden case that writes it literally cannot match from those sources.
bool writes_image_soft_token(const test::GoldenCase& g) {
  return g.text.find("<image_soft_token>") != std::string::npos;
}

void check_goldens(const Tokenizer& tok, const std::string& source, bool skip_image_soft_token) {
  ASSERT_EQ(golden_cases().size(), 354u);
  int failures = 0, checked = 0, skipped = 0;
  for (const auto& g : golden_cases()) {
    if (skip_image_soft_token && writes_image_soft_token(g)) {
      ++skipped;
      continue;
    }
    ++checked;
    auto ids = tok.encode(g.text, false);
    auto with_bos = tok.encode(g.text, true);
    ASSERT_TRUE(ids.ok() && with_bos.ok()) << source << ": " << (ids.ok() ? with_bos.error() : ids.error()).message;
    const std::string decoded = tok.decode(*ids);
    if (*ids != g.ids || *with_bos != g.ids_with_special || decoded != g.decoded) {
      if (++failures <= 5) {
        ADD_FAILURE() << source << ": mismatch on " << nlohmann::json(g.text).dump().substr(0, 200) << "\n  expected "
                      << nlohmann::json(g.ids).dump().substr(0, 200) << "\n  got      "
                      << nlohmann::json(*ids).dump().substr(0, 200);
      }
    }
  }
  EXPECT_EQ(failures, 0) << source;
  EXPECT_EQ(skipped, skip_image_soft_token ? 1 : 0);
  std::printf("tokenizer goldens from %s: %d of %d identical\n", source.c_str(), checked - failures, checked);
}

TEST(TokenizerGolden, FromTokenizerJson) { check_goldens(test::json_tokenizer(), "tokenizer.json", false); }

TEST(TokenizerGolden, FromSentencePieceModel) { check_goldens(test::model_tokenizer(), "tokenizer.model", true); }

TEST(TokenizerGolden, FromGgufVocabulary) {
  GEMMA_REQUIRE_REAL_MODEL();
  ASSERT_NE(test::gguf_tokenizer(), nullptr);
  check_goldens(*test::gguf_tokenizer(), "GGUF", true);
}

TEST(TokenizerGolden, ImageSoftTokenExistsOnlyInTokenizerJson) {
  EXPECT_EQ(test::json_tokenizer().vocab_size(), 262145);
  EXPECT_EQ(test::json_tokenizer().find("<image_soft_token>"), 262144);
  EXPECT_EQ(test::model_tokenizer().vocab_size(), 262144);
  EXPECT_EQ(test::model_tokenizer().find("<image_soft_token>"), std::nullopt);
}

// Same pieces for every id, same special ids, same tokens matched in raw text (added tokens) and
// same byte tokens. Kinds may differ where the files disagree: the GGUF (llama.cpp's converter) calls
// <unused0..6241> and <mask> control, tokenizer.json calls them non-special added tokens.
void check_same_vocabulary(const Tokenizer& t, const std::string& source, bool kinds_identical) {
  const Tokenizer& j = test::json_tokenizer();
  ASSERT_EQ(t.vocab_size(), 262144) << source;
  int piece_diffs = 0, kind_diffs = 0;
  auto added = [](TokenKind k) {
    return k == TokenKind::Control || k == TokenKind::UserDefined || k == TokenKind::Unknown;
  };
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    if (t.piece(id) != j.piece(id) && ++piece_diffs <= 5) ADD_FAILURE() << source << ": piece " << id << " differs";
    const TokenKind a = t.kind(id), b = j.kind(id);
    if (kinds_identical ? a != b : added(a) != added(b) || (a == TokenKind::Byte) != (b == TokenKind::Byte)) {
      if (++kind_diffs <= 5) ADD_FAILURE() << source << ": kind of " << id << " (" << j.piece(id) << ") differs";
    }
  }
  EXPECT_EQ(piece_diffs, 0);
  EXPECT_EQ(kind_diffs, 0);
  EXPECT_EQ(t.bos_id(), j.bos_id());
  EXPECT_EQ(t.eos_id(), j.eos_id());
  EXPECT_EQ(t.pad_id(), j.pad_id());
  EXPECT_EQ(t.unk_id(), j.unk_id());
  EXPECT_EQ(t.start_of_turn_id(), j.start_of_turn_id());
  EXPECT_EQ(t.end_of_turn_id(), j.end_of_turn_id());
}

TEST(TokenizerGolden, SentencePieceVocabularyEqualsTokenizerJson) {
  check_same_vocabulary(test::model_tokenizer(), "tokenizer.model", true);
}

TEST(TokenizerGolden, GgufVocabularyEqualsTokenizerJson) {
  GEMMA_REQUIRE_REAL_MODEL();
  ASSERT_NE(test::gguf_tokenizer(), nullptr);
  check_same_vocabulary(*test::gguf_tokenizer(), "GGUF", false);
  // llama.cpp stores the runs of '▁' (ids 138..167) as runs of spaces; the loader restores them.
  EXPECT_EQ(test::gguf_tokenizer()->piece(138), "\xE2\x96\x81\xE2\x96\x81");
  EXPECT_EQ(test::gguf_tokenizer()->kind(105), TokenKind::Control);  // <start_of_turn>
  EXPECT_EQ(test::gguf_tokenizer()->kind(6), TokenKind::Control);    // <unused0>: user-defined in the json
  EXPECT_EQ(test::json_tokenizer().kind(6), TokenKind::UserDefined);
}

// Streaming every golden case token by token reproduces decode().
TEST(TokenizerGolden, StreamingDecodeEqualsDecode) {
  const Tokenizer& t = test::json_tokenizer();
  for (const auto& g : golden_cases()) {
    Utf8StreamDecoder d;
    std::string out;
    for (int32_t id : g.ids) out += d.push(t.token_bytes(id));
    out += d.flush();
    EXPECT_EQ(out, g.decoded) << nlohmann::json(g.text).dump().substr(0, 100);
  }
}

}  // namespace
}  // namespace gemma

// The GGUF loader on small hand-built metadata: llama.cpp's SentencePiece vocabulary ("llama",
// ranked by score), the merge-list variant ("gemma4"), and broken metadata.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "support/gguf_builder.h"
#include "tokenizer/tokenizer.h"

namespace gemma {
namespace {

using Ids = std::vector<int32_t>;

struct Vocab {
  std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "  "};
  std::vector<int32_t> types = {3, 3, 3, 3, 3, 4};  // "  ": user-defined, stored by llama.cpp with spaces
  std::vector<float> scores = {0, 0, 0, 0, 0, 0};
  Vocab() {
    for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 6, 0);      // ids 6..261
    add("a", 1, 0), add("b", 1, 0), add("c", 1, 0), add("\xE2\x96\x81", 1, 0);  // 262..265
    add("ab", 1, -1), add("bc", 1, -2), add("abc", 1, -3);                      // 266..268
  }
  void add(std::string t, int32_t type, float score) {
    tokens.push_back(std::move(t)), types.push_back(type), scores.push_back(score);
  }
};

Result<Tokenizer> load(const test::GgufBuilder& b) {
  auto bytes = std::make_shared<std::string>(b.bytes());
  GE_ASSIGN(auto f,
            GgufFile::parse({reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()}, "tiny.gguf", bytes));
  return Tokenizer::from_gguf(*f);
}

test::GgufBuilder builder(const Vocab& v, const std::string& model = "llama", uint32_t bos = 2) {
  test::GgufBuilder b;
  b.kv_str("tokenizer.ggml.model", model);
  b.kv_str_array("tokenizer.ggml.tokens", v.tokens);
  b.kv_f32_array("tokenizer.ggml.scores", v.scores);
  b.kv_i32_array("tokenizer.ggml.token_type", v.types);
  b.kv_u32("tokenizer.ggml.bos_token_id", bos);
  b.kv_u32("tokenizer.ggml.eos_token_id", 1);
  b.kv_u32("tokenizer.ggml.unknown_token_id", 3);
  b.kv_u32("tokenizer.ggml.padding_token_id", 0);
  b.kv_bool("tokenizer.ggml.add_space_prefix", false);
  return b;
}

Ids enc(const Tokenizer& t, std::string_view text) {
  auto r = t.encode(text, false);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : Ids{};
}

TEST(GgufVocab, ScoresRankMerges) {
  auto t = load(builder(Vocab{}));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->bos_id(), 2);
  EXPECT_EQ(t->kind(3), TokenKind::Unknown);  // llama.cpp calls <unk> control
  EXPECT_EQ(enc(*t, "abc"), (Ids{268}));
  EXPECT_EQ(enc(*t, "bcab"), (Ids{267, 266}));
  EXPECT_EQ(enc(*t, "<start_of_turn>a\xC3\xA9"), (Ids{4, 262, 6 + 0xC3, 6 + 0xA9}));
}

TEST(GgufVocab, UserDefinedSpacesBecomeSpaceMarks) {
  auto t = load(builder(Vocab{}));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->piece(5), "\xE2\x96\x81\xE2\x96\x81");
  EXPECT_EQ(t->find("  "), std::nullopt);
  EXPECT_EQ(enc(*t, "a  b"), (Ids{262, 5, 263}));  // spaces, after normalization
  EXPECT_EQ(enc(*t,
                "a\xE2\x96\x81\xE2\x96\x81"
                "b"),
            (Ids{262, 5, 263}));  // written as '▁▁'
  EXPECT_EQ(t->decode(Ids{262, 5, 263}), "a  b");
}

TEST(GgufVocab, MergeListVariant) {
  test::GgufBuilder b = builder(Vocab{}, "gemma4");
  b.kv_str_array("tokenizer.ggml.merges", {"b c", "a b", "a bc"});
  auto t = load(b);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{268}));  // b c first (rank 0), then a bc
  EXPECT_EQ(enc(*t, "cab"), (Ids{264, 266}));
}

TEST(GgufVocab, BrokenMetadataGivesErrors) {
  EXPECT_FALSE(load(builder(Vocab{}, "gpt2")).ok());
  EXPECT_FALSE(load(builder(Vocab{}, "gemma4")).ok());  // no merges
  test::GgufBuilder bad_merge = builder(Vocab{}, "gemma4");
  bad_merge.kv_str_array("tokenizer.ggml.merges", {"abc"});
  EXPECT_FALSE(load(bad_merge).ok());
  Vocab short_types;
  short_types.types.pop_back();
  EXPECT_FALSE(load(builder(short_types)).ok());
  Vocab short_scores;
  short_scores.scores.pop_back();
  EXPECT_FALSE(load(builder(short_scores)).ok());
  Vocab bad_byte;
  bad_byte.add("<0xG0>", 6, 0);
  EXPECT_FALSE(load(builder(bad_byte)).ok());
  auto far_bos = load(builder(Vocab{}, "llama", 1u << 31));
  ASSERT_FALSE(far_bos.ok());
  EXPECT_NE(far_bos.error().message.find("out of range"), std::string::npos) << far_bos.error().message;
  test::GgufBuilder no_tokens;
  no_tokens.kv_str("tokenizer.ggml.model", "llama");
  EXPECT_FALSE(load(no_tokens).ok());
}

}  // namespace
}  // namespace gemma

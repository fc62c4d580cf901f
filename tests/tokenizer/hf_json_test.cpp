// The tokenizer.json loader on small hand-written files (expected ids from HF `tokenizers` 0.23),
// and malformed or hostile files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace gemma {
namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

json added_token(int id, const std::string& content, bool special, bool normalized = false) {
  return {{"id", id},        {"content", content}, {"special", special},  {"normalized", normalized},
          {"lstrip", false}, {"rstrip", false},    {"single_word", false}};
}

// A small BPE tokenizer.json in Gemma 3's shape.
json small_json() {
  json vocab = {{"<pad>", 0},
                {"<eos>", 1},
                {"<bos>", 2},
                {"<unk>", 3},
                {"a", 4},
                {"b", 5},
                {"c", 6},
                {"\xE2\x96\x81", 7},
                {"ab", 8},
                {"bc", 9},
                {"abc", 10},
                {"\xE2\x96\x81"
                 "a",
                 11},
                {"<0xC3>", 12},
                {"<0xA9>", 13}};
  return {{"version", "1.0"},
          {"added_tokens", json::array({added_token(2, "<bos>", true)})},
          {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}},
          {"pre_tokenizer",
           {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "MergedWithPrevious"}, {"invert", false}}},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", "<unk>"},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", true},
            {"byte_fallback", true},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", json::array({json::array({"a", "b"}), json::array({"b", "c"}), json::array({"ab", "c"}),
                                    json::array({"\xE2\x96\x81", "a"})})}}}};
}

Result<Tokenizer> load(const json& j) { return Tokenizer::from_hf_json(j.dump(), "small.json"); }

Ids enc(const Tokenizer& t, std::string_view text) {
  auto r = t.encode(text, false);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : Ids{};
}

TEST(HfJson, SmallBpe) {
  auto t = load(small_json());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{10}));
  EXPECT_EQ(enc(*t, "bcab"), (Ids{9, 8}));
  EXPECT_EQ(enc(*t, "a b"), (Ids{4, 7, 5}));
  EXPECT_EQ(enc(*t, "\xC3\xA9"), (Ids{12, 13}));  // é: both bytes exist
  EXPECT_EQ(enc(*t, "\xC3\xBC"), (Ids{3}));       // ü: <0xBC> is missing, so <unk>
  EXPECT_EQ(enc(*t, "xxab"), (Ids{3, 8}));        // fuse_unk
  EXPECT_EQ(enc(*t, "x \xC3\xA9"), (Ids{3, 7, 12, 13}));
  EXPECT_EQ(enc(*t, "a<bos>c"), (Ids{4, 2, 6}));
  EXPECT_EQ(t->decode(Ids{11, 12, 13, 2}), " a\xC3\xA9<bos>");
}

TEST(HfJson, MergeRankAndDuplicates) {
  json j = small_json();
  j["model"]["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"})});
  auto t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{4, 9}));  // rank, not position, decides
  // HF keeps the last of duplicate merges: (b, c) now ranks after (a, b).
  j["model"]["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"}), json::array({"b", "c"})});
  t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{8, 6}));
  // The legacy "a b" string form.
  j["model"]["merges"] = json::array({"b c", "a b"});
  t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{4, 9}));
}

TEST(HfJson, ModelOptions) {
  json j = small_json();
  j["model"]["fuse_unk"] = false;
  auto t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "xxab"), (Ids{3, 3, 8}));
  j = small_json();
  j["model"]["merges"] = json::array({json::array({"a", "b"})});
  t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{8, 6}));
  j["model"]["ignore_merges"] = true;  // a stretch that is a whole piece is that piece
  t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{10}));
}

// HF's Prepend normalizer (Gemma 1's first tokenizer.json) applies to every stretch between
// added tokens, not once per text.
TEST(HfJson, PrependNormalizer) {
  json j = small_json();
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, j["normalizer"]})}};
  auto t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "a<bos>a b"), (Ids{11, 2, 11, 7, 5}));
}

TEST(HfJson, NormalizedAddedTokensMatchAfterNormalization) {
  json j = small_json();
  j["added_tokens"].push_back(added_token(14, "c a", false, true));
  auto t = load(j);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "bc ab"), (Ids{5, 14, 5}));
  EXPECT_EQ(enc(*t,
                "bc\xE2\x96\x81"
                "ab"),
            (Ids{5, 14, 5}));
}

TEST(HfJson, RefusesWhatItCannotReproduce) {
  auto refused = [](json j, const char* why) {
    auto t = load(j);
    ASSERT_FALSE(t.ok()) << why;
    EXPECT_FALSE(t.error().message.empty());
  };
  json j = small_json();
  j["normalizer"] = {{"type", "NFKC"}};
  refused(j, "NFKC");
  j = small_json();
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}};
  refused(j, "Metaspace");
  j = small_json();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}};
  refused(j, "ByteLevel");
  j = small_json();
  j["model"]["type"] = "Unigram";
  refused(j, "Unigram");
  j = small_json();
  j["model"]["dropout"] = 0.1;
  refused(j, "dropout");
  j = small_json();
  j["added_tokens"][0]["lstrip"] = true;
  refused(j, "lstrip");
}

TEST(HfJson, MalformedFilesGiveErrors) {
  const std::string good = small_json().dump();
  ASSERT_TRUE(Tokenizer::from_hf_json(good, "x").ok());
  // Every truncation.
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(Tokenizer::from_hf_json(good.substr(0, n), "x").ok()) << n;
  auto bad = [](json j, const char* why) { EXPECT_FALSE(load(j).ok()) << why; };
  json j = small_json();
  j["model"]["vocab"]["a"] = "4";
  bad(j, "string id");
  j = small_json();
  j["model"]["vocab"]["a"] = -4;
  bad(j, "negative id");
  j = small_json();
  j["model"]["vocab"]["a"] = 1.5;
  bad(j, "float id");
  j = small_json();
  j["model"]["vocab"]["a"] = json::array({4});
  bad(j, "array id");
  j = small_json();
  j["model"]["vocab"]["zz"] = uint64_t{1} << 40;
  bad(j, "huge id");
  j = small_json();
  j["model"]["vocab"]["zz"] = 4;
  bad(j, "two tokens, one id");
  j = small_json();
  j["model"]["merges"].push_back(json::array({"a", "b", "c"}));
  bad(j, "3-part merge");
  j = small_json();
  j["model"]["merges"].push_back(json::array({"a"}));
  bad(j, "1-part merge");
  j = small_json();
  j["model"]["merges"].push_back(7);
  bad(j, "number merge");
  j = small_json();
  j["model"]["merges"].push_back("nospace");
  bad(j, "string merge without space");
  j = small_json();
  j["model"]["merges"].push_back(json::array({"a", "zz"}));
  bad(j, "merge outside the vocab");
  j = small_json();
  j["model"]["merges"].push_back(json::array({"c", "c"}));
  bad(j, "merge into a token outside the vocab");
  j = small_json();
  j["model"]["merges"] = json::array();
  bad(j, "no merges");
  j = small_json();
  j["added_tokens"].push_back({{"content", "<x>"}});
  bad(j, "added token without id");
  j = small_json();
  j["added_tokens"].push_back(added_token(-1, "<x>", true));
  bad(j, "negative added id");
  j = small_json();
  j["added_tokens"].push_back(added_token(5, "<not b>", true));
  bad(j, "added token renames a vocab id");
  j = small_json();
  j["model"]["vocab"].erase("<bos>");
  j["added_tokens"] = json::array();
  bad(j, "no <bos>");
  for (const char* text : {"", "{}", "[]", "null", "{\"model\": []}", "{\"model\": {\"vocab\": {}}}", "\"model\"",
                           "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", {}]]}}"}) {
    EXPECT_FALSE(Tokenizer::from_hf_json(text, "x").ok()) << text;
  }
  EXPECT_FALSE(Tokenizer::from_hf_json(std::string(100000, '['), "x").ok());  // nesting bomb
  std::string not_utf8 = good;
  not_utf8.replace(not_utf8.find("<unk>"), 5, "<\xFF\xFEk>");
  EXPECT_FALSE(Tokenizer::from_hf_json(not_utf8, "x").ok());
}

}  // namespace
}  // namespace gemma

// The SentencePiece loader: BPE-by-score semantics on a tiny hand-built model (expected ids from
// the sentencepiece library, 0.2.3), and hostile or truncated ModelProtos.
#include <cmath>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "proto_writer.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"
#include "util/zstd_file.h"

namespace gemma {
namespace {

using Ids = std::vector<int32_t>;
using test::ProtoWriter;

enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

ProtoWriter piece(const std::string& text, int type, float score = 0) {
  ProtoWriter p;
  p.bytes(1, text).fixed32(2, score).varint(3, static_cast<uint64_t>(type));
  return p;
}

struct TinyModel {
  bool dummy_prefix = false;
  bool remove_extra_whitespaces = false;
  bool byte_fallback = true;
  int model_type = 2;  // BPE
  float ab_score = -1;

  // 0 <pad> 1 <eos> 2 <bos> 3 <unk> 4 <sep>, 5..260 <0x00>..<0xFF>, then 261.. the normal pieces.
  std::string bytes() const {
    ProtoWriter m;
    m.message(1, piece("<pad>", kControl)).message(1, piece("<eos>", kControl)).message(1, piece("<bos>", kControl));
    m.message(1, piece("<unk>", kUnknown)).message(1, piece("<sep>", kUserDefined));
    for (int b = 0; b < 256; ++b) m.message(1, piece(fmt::format("<0x{:02X}>", b), kByte));
    const std::pair<const char*, float> normal[] = {{"a", 0},
                                                    {"b", 0},
                                                    {"c", 0},
                                                    {"\xE2\x96\x81", 0},
                                                    {"ab", ab_score},
                                                    {"bc", -1},
                                                    {"abc", -3},
                                                    {"\xE2\x96\x81"
                                                     "a",
                                                     -2},
                                                    {"ca", -5},
                                                    {"\xE2\x96\x81\xE2\x96\x81", -0.5f}};
    for (auto [p, s] : normal) m.message(1, piece(p, kNormal, s));
    ProtoWriter trainer;
    trainer.varint(3, static_cast<uint64_t>(model_type)).varint(35, byte_fallback).varint(40, 3).varint(41, 2);
    trainer.varint(42, 1).varint(43, 0);
    m.message(2, trainer);
    ProtoWriter normalizer;
    normalizer.bytes(1, "identity").varint(3, dummy_prefix).varint(4, remove_extra_whitespaces).varint(5, 1);
    m.message(3, normalizer);
    return m.str();
  }
};

Result<Tokenizer> load(const std::string& bytes) {
  return Tokenizer::from_sentencepiece({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "tiny.model");
}

Ids enc(const Tokenizer& t, std::string_view text) {
  auto r = t.encode(text, false);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : Ids{};
}

TEST(SentencePiece, MergesByScoreLeftmostFirst) {
  auto t = load(TinyModel{}.bytes());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->vocab_size(), 271);
  EXPECT_EQ(t->bos_id(), 2);
  EXPECT_EQ(t->unk_id(), 3);
  EXPECT_EQ(enc(*t, "abc"), (Ids{267}));  // ab and bc tie: the left one first, then abc
  EXPECT_EQ(enc(*t, "bca"), (Ids{266, 261}));
  EXPECT_EQ(enc(*t, "a b"), (Ids{261, 264, 262}));
  EXPECT_EQ(enc(*t, " ab"), (Ids{264, 265}));
  EXPECT_EQ(enc(*t, "\xC3\xA9"), (Ids{200, 174}));  // é: byte fallback
  EXPECT_EQ(enc(*t, "x<sep>ab"), (Ids{125, 4, 265}));
  EXPECT_EQ(enc(*t, "abcabc"), (Ids{267, 267}));
  EXPECT_EQ(enc(*t, "  a"), (Ids{270, 261}));
  EXPECT_EQ(enc(*t, "bcab"), (Ids{266, 265}));
  EXPECT_EQ(enc(*t, "cab"), (Ids{263, 265}));
  EXPECT_EQ(enc(*t, ""), (Ids{}));
  // Unlike SentencePiece, a literal control token is that token (HF's behaviour).
  EXPECT_EQ(enc(*t, "a<bos>"), (Ids{261, 2}));
  EXPECT_EQ(t->decode(enc(*t, " ab<sep>\xC3\xA9")), " ab<sep>\xC3\xA9");
}

TEST(SentencePiece, HigherScoreWins) {
  TinyModel m;
  m.ab_score = -4;  // now below bc (-1)
  auto t = load(m.bytes());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{267}));       // bc first, then a+bc = abc
  EXPECT_EQ(enc(*t, "cab"), (Ids{263, 265}));  // ca (-5) loses to ab (-4)
  EXPECT_EQ(enc(*t, "bcab"), (Ids{266, 265}));
}

TEST(SentencePiece, DummyPrefix) {
  TinyModel m;
  m.dummy_prefix = true;
  auto t = load(m.bytes());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t, "abc"), (Ids{264, 267}));
  EXPECT_EQ(enc(*t, "a b"), (Ids{268, 264, 262}));
  EXPECT_EQ(enc(*t, " ab"), (Ids{270, 265}));
  EXPECT_EQ(enc(*t, "x<sep>ab"), (Ids{264, 125, 4, 265}));
  EXPECT_EQ(enc(*t, "  a"), (Ids{270, 268}));
  EXPECT_EQ(enc(*t, ""), (Ids{}));
}

// Without byte pieces, a run of unknown characters is one <unk> (as sentencepiece does).
TEST(SentencePiece, WithoutByteFallbackUnknownRunsAreOneUnk) {
  ProtoWriter m;
  m.message(1, piece("<pad>", kControl)).message(1, piece("<eos>", kControl)).message(1, piece("<bos>", kControl));
  m.message(1, piece("<unk>", kUnknown)).message(1, piece("<sep>", kUserDefined));
  for (const char* p : {"a", "b", "c", "\xE2\x96\x81"}) m.message(1, piece(p, kNormal));
  m.message(1, piece("ab", kNormal, -1));
  m.message(2, ProtoWriter().varint(3, 2).varint(35, 0).varint(40, 3).varint(41, 2).varint(42, 1).varint(43, 0));
  m.message(3, ProtoWriter().varint(3, 0).varint(4, 0));
  auto t = load(m.str());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(enc(*t,
                "x\xC3\xA9"
                "ab"),
            (Ids{3, 9}));
  EXPECT_EQ(enc(*t,
                "ax\xC3\xA9"
                "b"),
            (Ids{5, 3, 6}));
}

TEST(SentencePiece, RefusesWhatItCannotReproduce) {
  TinyModel unigram;
  unigram.model_type = 1;
  EXPECT_FALSE(load(unigram.bytes()).ok());
  TinyModel collapse;
  collapse.remove_extra_whitespaces = true;
  auto r = load(collapse.bytes());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("remove_extra_whitespaces"), std::string::npos);
  // The proto default of remove_extra_whitespaces is true: a model that omits it is refused too.
  ProtoWriter bare;
  bare.message(1, piece("<bos>", kControl)).message(1, piece("<eos>", kControl)).message(2, ProtoWriter().varint(3, 2));
  EXPECT_FALSE(load(bare.str()).ok());
  ProtoWriter charsmap;
  charsmap.message(1, piece("<bos>", kControl))
      .message(1, piece("<eos>", kControl))
      .message(2, ProtoWriter().varint(3, 2));
  charsmap.message(3, ProtoWriter().bytes(2, "\x01\x02").varint(4, 0));
  EXPECT_FALSE(load(charsmap.str()).ok());
}

TEST(SentencePiece, HostileModelsGiveErrors) {
  const std::string good = TinyModel{}.bytes();
  ASSERT_TRUE(load(good).ok());
  EXPECT_FALSE(load("").ok());
  EXPECT_FALSE(load("{\"model\": 1}").ok());
  EXPECT_FALSE(load(std::string("\x0a\xff\xff\xff\xff\x0f\x01", 7)).ok());                   // length past the end
  EXPECT_FALSE(load(std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11)).ok());  // 2^64-1 length
  EXPECT_FALSE(load(std::string("\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 13)).ok());  // varint too long
  EXPECT_FALSE(load(std::string("\x03", 1)).ok());                                                   // field 0
  EXPECT_FALSE(load(std::string("\x0b\x0c", 2)).ok());                                               // a group
  EXPECT_FALSE(load(std::string("\x0f", 1)).ok());                                                   // wire type 7
  // Piece-level problems.
  auto with_piece = [&](const ProtoWriter& p) { return ProtoWriter().raw(good).message(1, p).str(); };
  EXPECT_FALSE(load(with_piece(piece("x", 9))).ok());                                   // unknown type
  EXPECT_FALSE(load(with_piece(piece("<0xZZ>", kByte))).ok());                          // byte piece that names no byte
  EXPECT_FALSE(load(with_piece(piece(std::string(70000, 'a'), kNormal))).ok());         // > 64 KiB
  EXPECT_TRUE(load(with_piece(piece("zz", kNormal, NAN))).ok());                        // NaN scores sort last, no UB
  EXPECT_TRUE(load(with_piece(piece(std::string("\xFF\xFE", 2), kUserDefined))).ok());  // not UTF-8: never matches
  // Special ids out of range fall back to the names; without <bos> at all the model is refused.
  ProtoWriter far;
  far.raw(good).message(2, ProtoWriter().varint(41, 1000000).varint(42, uint64_t(-7)));
  auto f = load(far.str());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->bos_id(), 2);
  EXPECT_EQ(f->eos_id(), 1);
}

// Every prefix and every single-byte corruption of a small model: an error or a usable tokenizer,
// never a crash (ASan/UBSan builds check the "never").
TEST(SentencePiece, TruncatedAndCorruptedModelsNeverCrash) {
  const std::string good = TinyModel{}.bytes();
  int loaded = 0;
  for (size_t n = 0; n < good.size(); ++n) {
    auto t = load(good.substr(0, n));
    if (t.ok()) {
      ++loaded;
      (void)t->encode("ab c<bos>\xC3\xA9", true);
    }
  }
  EXPECT_EQ(loaded, 0);  // the specs come last, and a model without them is refused
  for (size_t i = 0; i < good.size(); i += 7) {
    for (uint8_t x : {0x01, 0x80, 0xFF}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ x);
      auto t = load(bad);
      if (!t.ok()) continue;
      auto ids = t->encode("ab c<bos>\xC3\xA9 <sep>", true);
      if (ids.ok()) (void)t->decode(*ids);
    }
  }
}

TEST(SentencePiece, TruncatedRealModelIsAnError) {
  auto bytes = read_file_maybe_zstd(test::fixture("tokenizer/tokenizer.model.zst"));
  ASSERT_TRUE(bytes.ok());
  for (size_t n : {size_t{1}, size_t{2}, size_t{1001}, bytes->size() / 2 + 1, bytes->size() - 1}) {
    auto t = load(bytes->substr(0, n));
    EXPECT_FALSE(t.ok()) << n;
  }
}

}  // namespace
}  // namespace gemma

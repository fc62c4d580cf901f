// Behaviour of the Gemma 3 tokenizer that the golden cases do not pin down one by one: special
// ids, <bos>, literal special tokens (from every source), byte fallback, decoding, streaming,
// invalid input, speed. Expected ids were checked with HF `tokenizers`.
#include <chrono>

#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer_fixtures.h"

namespace gemma {
namespace {

using Ids = std::vector<int32_t>;

Ids enc(const Tokenizer& t, std::string_view text, bool bos = false) {
  auto r = t.encode(text, bos);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : Ids{};
}

TEST(Tokenizer, SpecialIds) {
  const Tokenizer& t = test::json_tokenizer();
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.unk_id(), 3);
  EXPECT_EQ(t.start_of_turn_id(), 105);
  EXPECT_EQ(t.end_of_turn_id(), 106);
  EXPECT_EQ(t.find("\n\n"), 108);
  EXPECT_EQ(t.find("<0x0A>"), 238 + 0x0A);
  EXPECT_EQ(t.find("no such piece"), std::nullopt);
  EXPECT_EQ(t.kind(2), TokenKind::Control);
  EXPECT_EQ(t.kind(3), TokenKind::Unknown);
  EXPECT_EQ(t.kind(107), TokenKind::UserDefined);
  EXPECT_EQ(t.kind(238), TokenKind::Byte);
  EXPECT_EQ(t.kind(9259), TokenKind::Normal);
  // Out-of-range ids are safe to ask about.
  EXPECT_EQ(t.piece(-1), "");
  EXPECT_EQ(t.piece(t.vocab_size()), "");
  EXPECT_EQ(t.kind(1 << 30), TokenKind::Unused);
  EXPECT_EQ(t.token_bytes(-5), "");
}

TEST(Tokenizer, AddBosPrependsOnlyBos) {
  const Tokenizer& t = test::json_tokenizer();
  EXPECT_EQ(enc(t, "", true), (Ids{2}));
  EXPECT_EQ(enc(t, "", false), (Ids{}));
  EXPECT_EQ(enc(t, "Hello, my dog is cute", true), (Ids{2, 9259, 236764, 1041, 4799, 563, 12864}));
  EXPECT_EQ(enc(t, "<bos>", true), (Ids{2, 2}));  // the caller asked for both
}

// HF matches added tokens, specials included, in the raw text; SentencePiece would not. Every
// source must behave like HF.
TEST(Tokenizer, LiteralSpecialTokensFromEverySource) {
  std::vector<const Tokenizer*> sources = {&test::json_tokenizer(), &test::model_tokenizer()};
  if (test::gguf_tokenizer()) sources.push_back(test::gguf_tokenizer());
  for (const Tokenizer* t : sources) {
    EXPECT_EQ(enc(*t, "a<bos>b"), (Ids{236746, 2, 236763}));
    EXPECT_EQ(enc(*t, "<unk>"), (Ids{3}));
    EXPECT_EQ(enc(*t, "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"),
              (Ids{105, 2364, 107, 2202, 106, 107, 105, 4368, 107}));
    // Look-alikes are text.
    EXPECT_EQ(enc(*t, "<BOS><bos <unused6242> < bos>"), (Ids{236820, 236799, 3354, 1798, 46757, 655, 63634, 236825,
                                                             236778, 236812, 236778, 236813, 655, 25835, 236813}));
    // A byte token's name is text too.
    EXPECT_EQ(enc(*t, "<0x41>"), (Ids{236820, 236771, 236781, 236812, 236770, 236813}));
    // Runs of '▁' are added tokens; spaces become '▁' and join them.
    EXPECT_EQ(enc(*t, "\xE2\x96\x81 \xE2\x96\x81"), (Ids{139}));
    EXPECT_EQ(enc(*t, "  x"), (Ids{138, 236781}));
    EXPECT_EQ(enc(*t, std::string("\0\t\t\t", 4)), (Ids{238, 255970}));
    // The one piece with '▁' after another character: BPE must still merge across that space.
    EXPECT_EQ(enc(*t, "x> </y"), (Ids{236781, 107068, 236762}));
    EXPECT_EQ(enc(*t, "<b>bold</b> </p>"), (Ids{200, 15640, 209, 1454, 236758, 236813}));
  }
}

TEST(Tokenizer, ByteFallback) {
  const Tokenizer& t = test::json_tokenizer();
  EXPECT_EQ(enc(t, "\xF0\x9F\xAB\xA9"), (Ids{238 + 0xF0, 238 + 0x9F, 238 + 0xAB, 238 + 0xA9}));  // U+1FAE9
  EXPECT_EQ(enc(t, "line1\r\nline2"), (Ids{1257, 236770, 251, 107, 1257, 236778}));
  EXPECT_EQ(enc(t, "\xC2\xA0\xE3\x80\x80"), (Ids{432, 398, 465, 366, 366}));  // NBSP, U+3000
}

TEST(Tokenizer, DecodeRoundTripsAndMapsSpaceMark) {
  const Tokenizer& t = test::json_tokenizer();
  for (std::string_view s :
       {"Hello, world!", "  two  spaces  ", "tab\tand\nnewline\r\n", "emoji \xF0\x9F\x99\x82 and \xF0\x9F\xAB\xA9",
        "<start_of_turn>user\n<b>x</b><end_of_turn>", "\xE4\xB8\xAD\xE6\x96\x87 text"}) {
    EXPECT_EQ(t.decode(enc(t, s)), s);
  }
  EXPECT_EQ(t.decode(enc(t,
                         "a\xE2\x96\x81"
                         "b")),
            "a b");  // a literal '▁' decodes to a space, as in HF
  EXPECT_EQ(t.decode(Ids{2, 9259, 1}), "<bos>Hello<eos>");
  EXPECT_EQ(t.decode(Ids{-1, 9259, 1 << 30}), "Hello");  // out-of-range ids are skipped
}

TEST(Tokenizer, DecodeInvalidByteRunLikeHf) {
  const Tokenizer& t = test::json_tokenizer();
  const int32_t b = 238;
  EXPECT_EQ(t.decode(Ids{b + 0xE2, b + 0x82, b + 0xAC}), "\xE2\x82\xAC");  // €
  // HF's ByteFallback decoder: a run that is not valid UTF-8 gives one U+FFFD per byte token.
  EXPECT_EQ(t.decode(Ids{b + 0x41, b + 0xE2, b + 0x82}), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t.decode(Ids{b + 0xE2, 9259, b + 0x41}), "\xEF\xBF\xBDHelloA");
}

TEST(Tokenizer, TokenBytes) {
  const Tokenizer& t = test::json_tokenizer();
  EXPECT_EQ(t.token_bytes(*t.find("\xE2\x96\x81the")), " the");
  EXPECT_EQ(t.token_bytes(238 + 0xF0), "\xF0");
  EXPECT_EQ(t.token_bytes(2), "<bos>");
  EXPECT_EQ(t.token_bytes(138), "  ");
}

TEST(Tokenizer, StreamingHoldsSplitCharacters) {
  const Tokenizer& t = test::json_tokenizer();
  const Ids ids = enc(t, "\xF0\x9F\xAB\xA9 ok \xE2\x82\xAC");  // U+1FAE9 falls back to 4 byte tokens
  ASSERT_GE(ids.size(), 4u);
  Utf8StreamDecoder d;
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(d.push(t.token_bytes(id)));
  EXPECT_EQ(pieces[0], "");
  EXPECT_EQ(pieces[1], "");
  EXPECT_EQ(pieces[2], "");
  EXPECT_EQ(pieces[3], "\xF0\x9F\xAB\xA9");
  std::string all;
  for (auto& p : pieces) all += p;
  EXPECT_EQ(all + d.flush(), "\xF0\x9F\xAB\xA9 ok \xE2\x82\xAC");
  // A sequence cut short by the end of generation becomes U+FFFD on flush.
  Utf8StreamDecoder cut;
  EXPECT_EQ(cut.push(t.token_bytes(238 + 0xF0)), "");
  EXPECT_EQ(cut.flush(), "\xEF\xBF\xBD");
}

TEST(Tokenizer, RejectsInvalidUtf8NamingTheOffset) {
  const Tokenizer& t = test::json_tokenizer();
  auto r = t.encode(std::string("ok\xC3(", 4), false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("byte 2"), std::string::npos) << r.error().message;
  for (std::string_view bad :
       {"\xFF", "abc\xE2\x82", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "\x80x", "<bos>\xF0\x9F\x99"}) {
    EXPECT_FALSE(t.encode(bad, true).ok()) << bad;
    EXPECT_FALSE(test::model_tokenizer().encode(bad, false).ok()) << bad;
  }
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// One paragraph repeated with no newline: BPE runs over a single 1 MB stretch. An O(n^2) merge
// loop takes minutes here; ours takes well under 0.1 s in a Release build.
TEST(Tokenizer, EncodesOneMegabyteWithoutNewlinesQuickly) {
  const std::string para =
      "The quick brown fox jumps over the lazy dog. Lorem ipsum dolor sit amet, 123456 consectetur; "
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88 "
      "\xC3\x9Cn\xC3\xAF"
      "c\xC3\xB6"
      "d\xC3\xA9 emoji \xF0\x9F\x99\x82\xF0\x9F\xAB\xA9 code: for (int i = 0; i < n; ++i) { x += i; } ";
  const size_t size = kSanitized ? (1u << 17) : (1u << 20);
  std::string text;
  while (text.size() < size) text += para;
  for (const Tokenizer* t : {&test::json_tokenizer(), &test::model_tokenizer()}) {
    const auto t0 = std::chrono::steady_clock::now();
    auto ids = t->encode(text, true);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(t->decode(*ids), "<bos>" + text);
    std::printf("tokenizer: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", text.size(), ids->size(), s,
                static_cast<double>(text.size()) / s / 1e6);
    if (!kSanitized) { EXPECT_LT(s, 1.0); }
  }
}

}  // namespace
}  // namespace gemma

#include "tokenizer/utf8.h"

#include <gtest/gtest.h>

namespace gemma {
namespace {

TEST(Utf8, FindsFirstInvalidByte) {
  EXPECT_FALSE(utf8_first_invalid("plain ascii and ünïcode 🙂").has_value());
  EXPECT_EQ(utf8_first_invalid("ab\xFF"), 2u);
  EXPECT_EQ(utf8_first_invalid("\xE2\x82"), 0u);           // truncated
  EXPECT_EQ(utf8_first_invalid("x\xF4\x90\x80\x80"), 1u);  // above U+10FFFF
}

TEST(Utf8, StreamDecoderReplacesInvalidAndWaitsForIncomplete) {
  Utf8StreamDecoder d;
  EXPECT_EQ(d.push("\xE2"), "");
  EXPECT_EQ(d.push("\x82"), "");
  EXPECT_EQ(d.push("\xAC!"), "\xE2\x82\xAC!");
  EXPECT_EQ(d.push("\xFFx"), "\xEF\xBF\xBDx");
  EXPECT_EQ(d.push("\xC3"), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
  // A lead byte whose next byte can never complete it is replaced at once (E0 80: overlong;
  // ED A0: a surrogate), not held.
  EXPECT_EQ(d.push("\xE0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(d.push("\xED\xA0"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(d.push("\xF0\x9F"), "");
  EXPECT_EQ(d.push("\x99\x82"), "\xF0\x9F\x99\x82");
  EXPECT_EQ(d.flush(), "");
}

}  // namespace
}  // namespace gemma

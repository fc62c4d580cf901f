// The one bounded zstd decoder: whole frames, concatenated frames, and every way a frame can be
// wrong ends in a corrupt-input error, never in output past the cap.
#include "util/zstd_file.h"

#include <zstd.h>

#include <gtest/gtest.h>

namespace gemma {
namespace {

std::string compress(const std::string& s) {
  std::string out(ZSTD_compressBound(s.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), s.data(), s.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(Zstd, DecodesFramesUpToTheCap) {
  const std::string text(300000, 'a');  // more than one output window
  const std::string frames = compress(text) + compress("tail");
  auto all = zstd_decompress(bytes(frames), text.size() + 4);
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(*all, text + "tail");
  std::string dst(text.size(), '\0');
  auto n = zstd_decompress_into(bytes(compress(text)), {reinterpret_cast<uint8_t*>(dst.data()), dst.size()});
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, text.size());
  EXPECT_EQ(dst, text);
  auto empty = zstd_decompress({}, 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
}

TEST(Zstd, CorruptTruncatedAndOversizedAreCorruptInput) {
  const std::string text(5000, 'b');
  const std::string frame = compress(text);
  struct Case {
    std::string data;
    uint64_t cap;
    const char* needle;
  };
  const Case cases[] = {
      {"not a zstd frame at all", 1 << 20, "corrupt zstd data"},
      {frame.substr(0, frame.size() / 2), 1 << 20, "truncated zstd frame"},
      {frame, text.size() - 1, "more than 4999 bytes"},
      {frame, 0, "more than 0 bytes"},
  };
  for (const Case& c : cases) {
    auto r = zstd_decompress(bytes(c.data), c.cap);
    ASSERT_FALSE(r.ok()) << c.needle;
    EXPECT_EQ(r.error().kind, ErrorKind::kCorruptInput) << r.error().message;
    EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << r.error().message;
    std::string dst(static_cast<size_t>(c.cap), '\0');
    auto n = zstd_decompress_into(bytes(c.data), {reinterpret_cast<uint8_t*>(dst.data()), dst.size()});
    ASSERT_FALSE(n.ok()) << c.needle;
    EXPECT_EQ(n.error().kind, ErrorKind::kCorruptInput) << n.error().message;
    EXPECT_NE(n.error().message.find(c.needle), std::string::npos) << n.error().message;
  }
  EXPECT_TRUE(zstd_level_valid(3));
  EXPECT_FALSE(zstd_level_valid(1000));
}

}  // namespace
}  // namespace gemma

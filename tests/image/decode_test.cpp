// Decoding against PIL: every fixture in tests/fixtures/images/decode.json decodes to exactly the
// RGB bytes PIL gives through HF's load_image (alpha dropped) and through convert_to_rgb (alpha
// composited on white), EXIF orientation applied; broken files give the error kind PIL's failure
// corresponds to.
#include <gtest/gtest.h>

#include <cstring>

#include "image/decode.h"
#include "image_test_util.h"

namespace gemma::image {
namespace {

using test::fixture;
using test::read_bytes;
using test::read_json;

size_t count_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) n += a[i] != b[i];
  return n;
}

TEST(ImageDecode, EveryFormatAndModeMatchesPil) {
  const auto manifest = read_json("images/decode.json");
  ASSERT_GE(manifest["images"].size(), 40u);
  for (const auto& c : manifest["images"]) {
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    for (AlphaPolicy policy : {AlphaPolicy::kDrop, AlphaPolicy::kCompositeWhite}) {
      const bool drop = policy == AlphaPolicy::kDrop;
      DecodeOptions options;
      options.alpha = policy;
      auto img = load_image_file(fixture(file), options);
      ASSERT_TRUE(img.ok()) << img.error().message;
      ASSERT_EQ(img->width, c["width"].get<int>());
      ASSERT_EQ(img->height, c["height"].get<int>());
      const auto want = read_bytes(fixture(c[drop ? "drop" : "white"].get<std::string>()));
      ASSERT_EQ(want.size(), img->rgb.size());
      if (drop && !c["exact_drop"].get<bool>()) {
        // A transparent GIF: stb_image leaves transparent pixels black where PIL keeps the palette
        // colour; the composite (checked exactly below) agrees, so only those pixels may differ.
        auto white = load_image_file(fixture(file), DecodeOptions{.alpha = AlphaPolicy::kCompositeWhite});
        ASSERT_TRUE(white.ok());
        size_t transparent = 0;
        for (size_t p = 0; p < img->pixels(); ++p) {
          const bool black = img->rgb[3 * p] == 0 && img->rgb[3 * p + 1] == 0 && img->rgb[3 * p + 2] == 0;
          if (std::memcmp(&img->rgb[3 * p], &want[3 * p], 3) != 0) {
            EXPECT_TRUE(black) << "pixel " << p;
            ++transparent;
          }
        }
        EXPECT_GT(transparent, 0u);  // the fixture does have transparent pixels
        continue;
      }
      EXPECT_EQ(count_diff(img->rgb, want), 0u) << (drop ? "drop" : "composite");
    }
  }
}

TEST(ImageDecode, ExifOrientationRotatesAndSwapsSides) {
  // exif1..8.jpg hold the same 23x17 picture; 5..8 come out 17x23.
  auto base = load_image_file(fixture("images/decode/exif1.jpg"));
  ASSERT_TRUE(base.ok());
  for (int o = 1; o <= 8; ++o) {
    auto img = load_image_file(fixture("images/decode/exif" + std::to_string(o) + ".jpg"));
    ASSERT_TRUE(img.ok()) << img.error().message;
    EXPECT_EQ(img->width, o >= 5 ? 17 : 23) << o;
    // Without orientation every file decodes to the unrotated picture.
    auto raw = load_image_file(fixture("images/decode/exif" + std::to_string(o) + ".jpg"),
                               DecodeOptions{.apply_exif_orientation = false});
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(raw->rgb, base->rgb) << o;
    EXPECT_EQ(apply_orientation(*raw, o).rgb, img->rgb) << o;
  }
}

TEST(ImageDecode, ExifOrientationParser) {
  const uint8_t le[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0};
  EXPECT_EQ(exif_orientation(le), 6);
  const uint8_t be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 3, 0, 0};
  EXPECT_EQ(exif_orientation(be), 3);
  const uint8_t bad_offset[] = {'I', 'I', 42, 0, 0xff, 0xff, 0, 0};
  EXPECT_EQ(exif_orientation(bad_offset), 1);
  const uint8_t out_of_range[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 9, 0, 0, 0};
  EXPECT_EQ(exif_orientation(out_of_range), 1);
  EXPECT_EQ(exif_orientation({}), 1);
}

TEST(ImageDecode, BrokenFilesGiveErrors) {
  const auto manifest = read_json("images/decode.json");
  ASSERT_GE(manifest["broken"].size(), 9u);
  for (const auto& c : manifest["broken"]) {
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    auto img = load_image_file(fixture(file));
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(error_kind_name(img.error().kind), c["kind"].get<std::string>()) << img.error().message;
    EXPECT_NE(img.error().message.find(file), std::string::npos) << img.error().message;
  }
}

TEST(ImageDecode, EveryPrefixOfEveryFileIsRefusedOrDecoded) {
  // Truncation at every length must never crash (the sanitizer build checks memory safety).
  for (const char* name : {"rgba16.png", "progressive.jpg", "lossy_alpha.webp", "p.bmp", "p_trns.gif", "exif6.png"}) {
    const auto bytes = read_bytes(fixture(std::string("images/decode/") + name));
    ASSERT_FALSE(bytes.empty());
    size_t refused = 0;
    for (size_t n = 0; n < bytes.size(); n += 1 + n / 64) {
      auto img = decode_image(std::span<const uint8_t>(bytes.data(), n));
      if (!img.ok()) ++refused;
    }
    EXPECT_GT(refused, 0u) << name;
  }
}

TEST(ImageDecode, LimitsAreCheckedBeforeDecoding) {
  DecodeOptions small;
  small.max_side = 16;
  auto img = load_image_file(fixture("images/decode/rgb.png"), small);  // 23x17
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(img.error().kind, ErrorKind::kInvalidArgument);
  DecodeOptions few;
  few.max_pixels = 100;
  for (const char* name : {"rgb.png", "baseline420.jpg", "lossy.webp", "rgb.bmp", "p.gif"}) {
    auto r = load_image_file(fixture(std::string("images/decode/") + name), few);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidArgument) << name;
  }
  auto missing = load_image_file(fixture("images/decode/does_not_exist.png"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);
}

TEST(ImageDecode, SniffsByContent) {
  EXPECT_EQ(sniff_format(read_bytes(fixture("images/decode/rgb.png"))), ImageFormat::kPng);
  EXPECT_EQ(sniff_format(read_bytes(fixture("images/decode/gray.jpg"))), ImageFormat::kJpeg);
  EXPECT_EQ(sniff_format(read_bytes(fixture("images/decode/lossy.webp"))), ImageFormat::kWebp);
  EXPECT_EQ(sniff_format(read_bytes(fixture("images/decode/l.bmp"))), ImageFormat::kBmp);
  EXPECT_EQ(sniff_format(read_bytes(fixture("images/decode/anim.gif"))), ImageFormat::kGif);
  EXPECT_EQ(sniff_format(std::vector<uint8_t>{}), ImageFormat::kUnknown);
}

}  // namespace
}  // namespace gemma::image

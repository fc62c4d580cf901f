// Gemma 3 preprocessing against HF's Gemma3ImageProcessorPil (tests/fixtures/images/preprocess.json):
// the resized images (full image and pan-and-scan crops) equal HF's byte for byte, and the float
// pixel values equal HF's bit for bit (memcmp), for up- and downscaling, several aspect ratios,
// image sizes 64, 224 and 896.
#include <gtest/gtest.h>

#include <cstring>

#include "image/decode.h"
#include "image/preprocess.h"
#include "image/resize.h"
#include "image_test_util.h"

namespace gemma::image {
namespace {

using test::fixture;
using test::read_bytes;
using test::read_json;

std::vector<float> read_f32(const std::string& relative) {
  const auto b = read_bytes(fixture(relative));
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

TEST(ImagePreprocess, PixelValueLutMatchesHf) {
  const auto lut = read_f32("images/pre/lut.f32");
  ASSERT_EQ(lut.size(), 256u);
  Image all;  // 16x16 holding 0..255, the script's LUT image
  all.width = all.height = 16;
  for (int v = 0; v < 256; ++v) all.rgb.insert(all.rgb.end(), {uint8_t(v), uint8_t(v), uint8_t(v)});
  ProcessorConfig config;
  config.image_size = 16;
  const auto pv = pixel_values(all, config);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(std::memcmp(pv.data() + 256 * c, lut.data(), 256 * 4), 0) << c;
}

TEST(ImagePreprocess, MatchesHfExactly) {
  const auto cases = read_json("images/preprocess.json");
  const auto lut = read_f32("images/pre/lut.f32");
  ASSERT_EQ(lut.size(), 256u);
  ASSERT_GE(cases.size(), 14u);
  int crops_seen = 0;
  for (const auto& c : cases) {
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    auto img = load_image_file(fixture(file));
    ASSERT_TRUE(img.ok()) << img.error().message;
    ProcessorConfig config;
    config.image_size = c["image_size"];
    PanAndScanOptions pas;
    if (c.contains("pan_and_scan")) {
      pas.enabled = true;
      pas.min_crop_size = c["pan_and_scan"]["min_crop_size"];
      pas.max_crops = c["pan_and_scan"]["max_crops"];
      pas.min_ratio = c["pan_and_scan"]["min_ratio"];
      auto boxes = pan_and_scan_boxes(img->width, img->height, pas);
      ASSERT_TRUE(boxes.ok());
      ASSERT_EQ(boxes->size(), c["crop_shapes"].size());
      for (size_t k = 0; k < boxes->size(); ++k) {
        EXPECT_EQ((*boxes)[k].width, c["crop_shapes"][k][0].get<int>()) << k;
        EXPECT_EQ((*boxes)[k].height, c["crop_shapes"][k][1].get<int>()) << k;
      }
    }
    auto pre = preprocess(*img, config, pas);
    ASSERT_TRUE(pre.ok()) << pre.error().message;
    EXPECT_EQ(pre->num_crops, c["num_crops"].get<int>());
    ASSERT_EQ(pre->pixel_values.size(), c["images"].size());
    crops_seen += pre->num_crops;
    const size_t plane = static_cast<size_t>(config.image_size) * config.image_size;
    for (size_t k = 0; k < pre->pixel_values.size(); ++k) {
      // HF's resized bytes, through the LUT (which the generator checked is exactly HF's mapping),
      // are HF's pixel values; compare as bytes.
      auto want = load_image_file(fixture(c["images"][k].get<std::string>()));
      ASSERT_TRUE(want.ok());
      ASSERT_EQ(want->pixels(), plane);
      std::vector<float> hf(plane * 3);
      for (size_t p = 0; p < plane; ++p)
        for (int ch = 0; ch < 3; ++ch) hf[ch * plane + p] = lut[want->rgb[3 * p + ch]];
      ASSERT_EQ(pre->pixel_values[k].size(), hf.size());
      size_t diff = 0;
      for (size_t i = 0; i < hf.size(); ++i) diff += std::memcmp(&hf[i], &pre->pixel_values[k][i], 4) != 0;
      EXPECT_EQ(diff, 0u) << "image " << k << " of " << hf.size() << " values";
    }
    if (c.contains("pixel_values")) {  // HF's float32 tensor itself, no LUT in between
      const auto hf = read_f32(c["pixel_values"].get<std::string>());
      ASSERT_EQ(hf.size(), pre->pixel_values[0].size());
      EXPECT_EQ(std::memcmp(hf.data(), pre->pixel_values[0].data(), hf.size() * 4), 0);
    }
  }
  EXPECT_GE(crops_seen, 13);
}

TEST(ImagePreprocess, PanAndScanBoxes) {
  PanAndScanOptions o;
  o.enabled = true;
  // 800x300 with HF's defaults: 3 crops of 267 wide, the last cut at the edge to 266.
  auto b = pan_and_scan_boxes(800, 300, o);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 3u);
  EXPECT_EQ((*b)[2].x, 534);
  EXPECT_EQ((*b)[2].width, 266);
  // Not elongated enough, or crops under the minimum: none.
  EXPECT_TRUE(pan_and_scan_boxes(600, 520, o)->empty());
  EXPECT_TRUE(pan_and_scan_boxes(400, 100, o)->empty());  // crops of 200 < 256
  // Portrait, capped by max_crops.
  o.min_crop_size = 10;
  auto t = pan_and_scan_boxes(20, 200, o);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size(), 4u);
  EXPECT_EQ((*t)[3].y, 150);
  // Options HF divides by zero on.
  o.min_crop_size = 0;
  EXPECT_FALSE(pan_and_scan_boxes(800, 300, o).ok());
  // A layout whose last crop would be empty (HF would fail resizing it).
  o.min_crop_size = 2;
  EXPECT_FALSE(pan_and_scan_boxes(9, 2, o).ok());
}

TEST(ImagePreprocess, PromptTextMatchesHf) {
  const auto cases = read_json("images/prompt.json");
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases)
    EXPECT_EQ(image_prompt_text(c["tokens"], c["num_crops"]), c["text"].get<std::string>()) << c["num_crops"];
}

TEST(ImagePreprocess, ResizeEdgeCases) {
  Image one;
  one.width = one.height = 1;
  one.rgb = {10, 20, 30};
  auto big = resize_bilinear(one, 5, 3);
  ASSERT_TRUE(big.ok());
  for (size_t p = 0; p < big->pixels(); ++p) EXPECT_EQ(big->rgb[3 * p + 2], 30);
  EXPECT_FALSE(resize_bilinear(one, 0, 3).ok());
  EXPECT_FALSE(resize_bilinear(Image{}, 3, 3).ok());
  auto same = resize_bilinear(one, 1, 1);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->rgb, one.rgb);
}

}  // namespace
}  // namespace gemma::image

namespace gemma::image {
namespace {

// Pillow 12.2's resize (tests/fixtures/images/pre12): kPillow12 reproduces it exactly; where Pillow 13
// runs the vertical pass first the two differ, so the version choice is real.
TEST(ImagePreprocess, Pillow12PassOrder) {
  const auto cases = test::read_json("images/pre12.json");
  ASSERT_EQ(cases.size(), 4u);
  int differing = 0;
  for (const auto& c : cases) {
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    auto img = load_image_file(test::fixture(file));
    auto want = load_image_file(test::fixture(c["pillow12"].get<std::string>()));
    ASSERT_TRUE(img.ok() && want.ok());
    const int n = c["size"];
    auto old_order = resize_bilinear(*img, n, n, PillowVersion::kPillow12);
    auto new_order = resize_bilinear(*img, n, n, PillowVersion::kPillow13);
    ASSERT_TRUE(old_order.ok() && new_order.ok());
    EXPECT_EQ(old_order->rgb, want->rgb);
    const bool vertical_first = img->height - n > 0 && img->height - n > 2 * (img->width - n);
    EXPECT_EQ(new_order->rgb != want->rgb, vertical_first);
    differing += vertical_first;
  }
  EXPECT_EQ(differing, 2);
}

}  // namespace
}  // namespace gemma::image

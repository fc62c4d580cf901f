// The image prompt layout (runtime/multimodal.h) against HF's Gemma3Processor: the ids of prompts
// holding images, raw and through the chat template, with and without pan-and-scan, on the real
// Gemma 3 tokenizer (tests/fixtures/images/prompt_ids.json, tools/fixtures_image_prompt.py).
#include "runtime/multimodal.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "image/decode.h"
#include "runtime/prompt.h"
#include "support/test_support.h"

namespace gemma {
namespace {

const Tokenizer& real_tokenizer() {
  static const Tokenizer tok = [] {
    auto t = Tokenizer::from_file(test::fixture("tokenizer/tokenizer.json.zst"));
    if (!t.ok()) {
      ADD_FAILURE() << t.error().message;
      std::abort();
    }
    return std::move(*t);
  }();
  return tok;
}

nlohmann::json cases() {
  std::ifstream f(test::fixture("images/prompt_ids.json"));
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// The prompt text a front end renders for a case: raw text as given, chat messages through the
// chat template with each message's image parts turned into leading markers (place_image_markers).
std::string render_case(const nlohmann::json& c) {
  if (c.contains("text")) {
    auto t = place_image_markers(c["text"].get<std::string>(), static_cast<int>(c["images"].size()));
    EXPECT_TRUE(t.ok());
    return t.ok() ? *t : "";
  }
  std::vector<ChatMessage> messages;
  for (const auto& m : c["messages"]) {
    int n_images = 0;
    std::string text;
    for (const auto& p : m["content"]) {
      if (p["type"] == "image") ++n_images;
      if (p["type"] == "text") text += p["text"].get<std::string>();
    }
    auto t = place_image_markers(text, n_images);
    EXPECT_TRUE(t.ok());
    messages.push_back({m["role"].get<std::string>(), t.ok() ? *t : ""});
  }
  auto r = render_chat(messages);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : "";
}

TEST(ImagePrompt, IdsEqualHfGemma3Processor) {
  const Tokenizer& tok = real_tokenizer();
  auto ids = image_token_ids(tok);
  ASSERT_TRUE(ids.ok()) << ids.error().message;
  EXPECT_EQ(ids->boi, 255999);
  EXPECT_EQ(ids->eoi, 256000);
  EXPECT_EQ(ids->soft, 262144);
  const nlohmann::json all = cases();
  ASSERT_GE(all.size(), 7u);
  int with_crops = 0;
  for (const auto& c : all) {
    SCOPED_TRACE(c["name"].get<std::string>());
    image::PanAndScanOptions pas;
    if (!c["pan_and_scan"].is_null()) {
      pas.enabled = true;
      pas.min_crop_size = c["pan_and_scan"]["min_crop_size"];
      pas.max_crops = c["pan_and_scan"]["max_crops"];
      pas.min_ratio = c["pan_and_scan"]["min_ratio"];
    }
    // Crops from the decoded images, as the CLI computes them, must be HF's.
    std::vector<int> crops;
    for (const auto& f : c["images"]) {
      auto img = image::load_image_file(test::fixture(f.get<std::string>()));
      ASSERT_TRUE(img.ok()) << img.error().message;
      auto n = count_crops(img->width, img->height, pas);
      ASSERT_TRUE(n.ok()) << n.error().message;
      crops.push_back(*n);
    }
    EXPECT_EQ(crops, c["num_crops"].get<std::vector<int>>());
    for (int n : crops) with_crops += n > 0;
    auto p = tokenize_image_prompt(tok, *ids, render_case(c), crops, c["tokens_per_image"], true);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ(p->ids, c["input_ids"].get<std::vector<int32_t>>());
    // The runs are where HF's token_type_ids mark image tokens, one per image and crop.
    const auto tt = c["token_type_ids"].get<std::vector<int>>();
    std::vector<int> starts;
    for (size_t i = 0; i < tt.size(); ++i)
      if (tt[i] == 1 && (i == 0 || tt[i - 1] == 0)) starts.push_back(static_cast<int>(i));
    EXPECT_EQ(p->soft_offsets, starts);
    EXPECT_EQ(p->image_tokens(), std::count(tt.begin(), tt.end(), 1));
  }
  EXPECT_GE(with_crops, 2) << "the fixture must exercise pan-and-scan";
}

// A vocabulary without <image_soft_token> (the tiny test models put image_token_index past the
// tokenizer): the ids are the same as when the tokenizer has it, soft tokens given by id.
TEST(ImagePrompt, SoftTokenOutsideTheTokenizerGivesTheSameLayout) {
  const Tokenizer& tok = real_tokenizer();
  auto real = image_token_ids(tok);
  ASSERT_TRUE(real.ok());
  ImageTokenIds fake = *real;
  fake.soft = 7;  // not the tokenizer's soft piece: tokenized piecewise
  const std::string text = "Compare\n<start_of_image> and<start_of_image>\nwhich?";
  const int crops[] = {0, 2};
  auto a = tokenize_image_prompt(tok, *real, text, crops, 4, true);
  auto b = tokenize_image_prompt(tok, fake, text, crops, 4, true);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->ids.size(), b->ids.size());
  for (size_t i = 0; i < a->ids.size(); ++i) EXPECT_EQ(a->ids[i] == real->soft ? 7 : a->ids[i], b->ids[i]) << i;
  EXPECT_EQ(a->soft_offsets, b->soft_offsets);
  EXPECT_EQ(a->soft_offsets.size(), 4u);
}

TEST(ImagePrompt, MarkersAndImagesMustAgree) {
  auto none = place_image_markers("  Compare these ", 2);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "<start_of_image><start_of_image>Compare these");
  auto same = place_image_markers("a <start_of_image> b", 1);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, "a <start_of_image> b");
  auto more = place_image_markers("<start_of_image><start_of_image>", 1);
  ASSERT_FALSE(more.ok());
  EXPECT_NE(more.error().message.find("2 <start_of_image> markers but 1 image was given"), std::string::npos)
      << more.error().message;
  auto fewer = place_image_markers("<start_of_image>", 3);
  ASSERT_FALSE(fewer.ok());
  EXPECT_NE(fewer.error().message.find("1 <start_of_image> marker but 3 images were given"), std::string::npos);
  EXPECT_FALSE(place_image_markers("<image_soft_token>", 0).ok());
  const int one[] = {0};
  EXPECT_FALSE(
      tokenize_image_prompt(real_tokenizer(), *image_token_ids(real_tokenizer()), "no marker", one, 4, true).ok());
}

TEST(ImagePrompt, ContextCountsImageTokens) {
  const Tokenizer& tok = real_tokenizer();
  const int one[] = {0};
  auto p = tokenize_image_prompt(tok, *image_token_ids(tok), "<start_of_image>Describe.", one, 256, true);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->image_tokens(), 256);
  EXPECT_TRUE(check_image_prompt_fits(*p, 0, static_cast<int>(p->ids.size()) + 1).ok());
  Status st = check_image_prompt_fits(*p, 0, 200);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("256 of them for 1 image"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("longer than the context of 200"), std::string::npos);
  EXPECT_FALSE(check_image_prompt_fits(*p, 8000, 8192).ok());  // earlier chat turns count too
}

// encode_image_prompt places each image's and crop's tower output at its run, in prompt order,
// with the pixels of the preprocessed image (the encoder here returns a digest of its input).
TEST(ImagePrompt, EmbeddingsGoToTheirRuns) {
  const Tokenizer& tok = real_tokenizer();
  auto wide = image::load_image_file(test::fixture("images/pre/pas_default_800x300.png"));
  auto small = image::load_image_file(test::fixture("images/pre/up_40x30.png"));
  ASSERT_TRUE(wide.ok() && small.ok());
  image::PanAndScanOptions pas;
  pas.enabled = true;
  const int crops[] = {*count_crops(wide->width, wide->height, pas), *count_crops(small->width, small->height, pas)};
  ASSERT_EQ(crops[0], 3);
  ASSERT_EQ(crops[1], 0);
  auto p = tokenize_image_prompt(tok, *image_token_ids(tok), "<start_of_image>x<start_of_image>", crops, 4, true);
  ASSERT_TRUE(p.ok());
  image::ProcessorConfig pc;
  pc.image_size = 16;
  const int hidden = 3;
  std::vector<std::vector<float>> seen;
  ImageEncoder enc = [&](std::span<const float> px) -> Result<std::vector<float>> {
    seen.emplace_back(px.begin(), px.end());
    return std::vector<float>(4 * hidden, static_cast<float>(seen.size()));
  };
  const image::Image imgs[] = {*wide, *small};
  auto runs = encode_image_prompt(*p, imgs, pc, pas, hidden, enc);
  ASSERT_TRUE(runs.ok()) << runs.error().message;
  ASSERT_EQ(runs->size(), 5u);
  for (size_t i = 0; i < runs->size(); ++i) {
    EXPECT_EQ((*runs)[i].offset, p->soft_offsets[i]);
    EXPECT_EQ((*runs)[i].values.front(), static_cast<float>(i + 1));
  }
  auto pre = image::preprocess(*wide, pc, pas);
  ASSERT_TRUE(pre.ok());
  ASSERT_EQ(pre->pixel_values.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(seen[i], pre->pixel_values[i]) << i;
  // A tower answering with the wrong width is an error, not a misplaced run.
  ImageEncoder bad = [](std::span<const float>) -> Result<std::vector<float>> { return std::vector<float>(5); };
  EXPECT_FALSE(encode_image_prompt(*p, imgs, pc, pas, hidden, bad).ok());
}

}  // namespace
}  // namespace gemma

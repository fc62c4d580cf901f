// Prompts with images (Gemma 3): the token layout HF's Gemma3Processor builds, and the embedding
// runs the engine feeds at the soft-token positions. The steps, in the order a front end calls them
// so that every cheap check comes before any expensive work:
//   1. place_image_markers: the user's text with one `<start_of_image>` marker per image (given by
//      the user, in order, or put before the text as HF's chat template puts image parts first);
//   2. count_crops on each decoded image (pan-and-scan needs only its size);
//   3. tokenize_image_prompt: each marker replaced by image::image_prompt_text() (the
//      "\n\n<start_of_image>" soft x N "<end_of_image>\n\n" sequence, with HF's pan-and-scan text
//      around the crops) BEFORE tokenizing, so neighbouring newlines merge into one token as in
//      HF's ids; then check_image_prompt_fits against the context, all before the tower is loaded
//      when the checkpoint's config gives tokens_per_image;
//   4. encode_image_prompt: each image and crop preprocessed (image/preprocess.h), run through the
//      vision tower (a callback, so this layer does not depend on the tower's), and placed as one
//      PromptEmbeddings run at its soft tokens. One run per image or crop: HF's mask makes the soft
//      tokens of one image (a crop is its own image) see each other, and nothing else both ways.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "image/image.h"
#include "image/preprocess.h"
#include "model/config.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace gemma {

inline constexpr std::string_view kImageMarker = "<start_of_image>";
inline constexpr std::string_view kImageSoftToken = "<image_soft_token>";
inline constexpr std::string_view kEndOfImage = "<end_of_image>";

// The three ids of the image layout: begin/end of image and the soft-token placeholder.
struct ImageTokenIds {
  int32_t boi = -1, eoi = -1, soft = -1;
};
// From the tokenizer's pieces (as HF's processor takes them); a piece the tokenizer lacks is taken
// from the checkpoint's config (boi_token_index, eoi_token_index, image_token_index; -1: none),
// as tiny test models whose small vocabulary has no such pieces need.
Result<ImageTokenIds> image_token_ids(const Tokenizer& tok, const VisionConfig* config = nullptr);

// Occurrences of <start_of_image> in text.
int count_image_markers(std::string_view text);

// `text` holding exactly n_images markers is returned as it is; without markers, n_images markers
// are put in front of the trimmed text with nothing between, as HF's Gemma 3 chat template renders
// image parts before the text part of a user turn. Any other count is an error naming both counts.
// Literal <image_soft_token> text is refused (HF would count it as an image's token and fail).
Result<std::string> place_image_markers(std::string_view text, int n_images);

// Crops pan-and-scan takes of an image of this size (0 when disabled or when HF takes none).
Result<int> count_crops(int width, int height, const image::PanAndScanOptions& pan_and_scan);

struct ImagePrompt {
  std::vector<int32_t> ids;       // the whole prompt, soft tokens as ImageTokenIds::soft
  std::vector<int> soft_offsets;  // first soft token of each image and crop, in prompt order
  int tokens_per_image = 0;       // soft tokens per image or crop
  int n_images = 0;               // images (markers) in the prompt
  int image_tokens() const { return static_cast<int>(soft_offsets.size()) * tokens_per_image; }
};

// `text` (the rendered prompt, chat template applied, with one marker per image) with marker i
// replaced by image::image_prompt_text(tokens_per_image, num_crops[i]), tokenized as HF tokenizes
// the processor's text (add_bos: <bos> first, as the processor's tokenizer call adds it).
Result<ImagePrompt> tokenize_image_prompt(const Tokenizer& tok, const ImageTokenIds& ids, std::string_view text,
                                          std::span<const int> num_crops, int tokens_per_image, bool add_bos);

// The prompt (already_used positions before it, e.g. earlier chat turns) must fit in n_ctx; the
// error counts the image tokens so the user sees why a short prompt is too long.
Status check_image_prompt_fits(const ImagePrompt& prompt, int already_used, int n_ctx);

// One preprocessed image or crop in, [tokens_per_image, text_hidden] projected embeddings out.
using ImageEncoder = std::function<Result<std::vector<float>>(std::span<const float> pixels)>;

// Preprocesses images[i] (with the crops the layout was built for), encodes every image and crop
// and returns the runs for Request::embeddings, sorted by offset.
Result<std::vector<PromptEmbeddings>> encode_image_prompt(const ImagePrompt& prompt,
                                                          std::span<const image::Image> images,
                                                          const image::ProcessorConfig& processor,
                                                          const image::PanAndScanOptions& pan_and_scan, int text_hidden,
                                                          const ImageEncoder& encode);

}  // namespace gemma

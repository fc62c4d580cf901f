#include "runtime/multimodal.h"

#include <fmt/format.h>

#include "runtime/prompt.h"

namespace gemma {

namespace {

size_t count_of(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string_view::npos; p = text.find(needle, p + needle.size())) ++n;
  return n;
}

}  // namespace

Result<ImageTokenIds> image_token_ids(const Tokenizer& tok, const VisionConfig* config) {
  auto pick = [&](std::string_view piece, int config_id) -> Result<int32_t> {
    if (auto id = tok.find(piece)) return *id;
    if (config_id >= 0) return static_cast<int32_t>(config_id);
    return invalid_argument(
        "the tokenizer has no {} token and the checkpoint names none: not a Gemma 3 vision "
        "tokenizer",
        piece);
  };
  ImageTokenIds ids;
  GE_ASSIGN(ids.boi, pick(kImageMarker, config ? config->boi_token : -1));
  GE_ASSIGN(ids.eoi, pick(kEndOfImage, config ? config->eoi_token : -1));
  GE_ASSIGN(ids.soft, pick(kImageSoftToken, config ? config->image_token : -1));
  return ids;
}

int count_image_markers(std::string_view text) { return static_cast<int>(count_of(text, kImageMarker)); }

Result<std::string> place_image_markers(std::string_view text, int n_images) {
  if (count_of(text, kImageSoftToken) > 0)
    return invalid_argument("the prompt contains {} text; give images with --image instead", kImageSoftToken);
  const int markers = count_image_markers(text);
  if (markers == n_images) return std::string(text);
  if (markers > 0)
    return invalid_argument("the prompt has {} {} marker{} but {} image{} given", markers, kImageMarker,
                            markers == 1 ? "" : "s", n_images, n_images == 1 ? " was" : "s were");
  std::string out;
  for (int i = 0; i < n_images; ++i) out += kImageMarker;
  return out + trim(std::string(text));
}

Result<int> count_crops(int width, int height, const image::PanAndScanOptions& pan_and_scan) {
  if (!pan_and_scan.enabled) return 0;
  GE_ASSIGN(auto boxes, image::pan_and_scan_boxes(width, height, pan_and_scan));
  return static_cast<int>(boxes.size());
}

Result<ImagePrompt> tokenize_image_prompt(const Tokenizer& tok, const ImageTokenIds& ids, std::string_view text,
                                          std::span<const int> num_crops, int tokens_per_image, bool add_bos) {
  if (tokens_per_image < 1 || tokens_per_image > (1 << 16))
    return invalid_argument("tokens per image {} out of range", tokens_per_image);
  const int markers = count_image_markers(text);
  if (markers != static_cast<int>(num_crops.size()))
    return invalid_argument("the prompt has {} {} markers for {} images", markers, kImageMarker, num_crops.size());
  if (count_of(text, kImageSoftToken) > 0)
    return invalid_argument("the prompt contains {} text; give images instead", kImageSoftToken);
  // HF's processor: each marker replaced by the image's sequence, then the whole text tokenized.
  std::string expanded;
  size_t from = 0, i = 0;
  for (size_t p = text.find(kImageMarker); p != std::string_view::npos; p = text.find(kImageMarker, from), ++i) {
    expanded.append(text.substr(from, p - from));
    expanded += image::image_prompt_text(tokens_per_image, num_crops[i]);
    from = p + kImageMarker.size();
  }
  expanded.append(text.substr(from));

  ImagePrompt out;
  out.tokens_per_image = tokens_per_image;
  out.n_images = markers;
  // The image pieces are special tokens, which split the text in HF's tokenizer; so tokenizing
  // the text between them piece by piece and putting their ids in gives the same ids as one call.
  // That is done where the tokenizer does not hold a piece under the id used (a tiny test
  // vocabulary); otherwise the whole text goes through the tokenizer at once, as in HF.
  struct Special {
    std::string_view text;
    int32_t id;
  };
  std::vector<Special> by_id;
  for (Special sp : {Special{kImageMarker, ids.boi}, Special{kEndOfImage, ids.eoi}, Special{kImageSoftToken, ids.soft}})
    if (tok.find(sp.text) != std::optional<int32_t>(sp.id)) by_id.push_back(sp);
  if (by_id.empty()) {
    GE_ASSIGN(out.ids, tok.encode(expanded, add_bos));
  } else {
    if (add_bos) out.ids.push_back(tok.bos_id());
    const std::string_view all(expanded);
    size_t seg = 0;
    for (size_t pos = 0; pos < all.size();) {
      const Special* hit = nullptr;
      for (const Special& sp : by_id)
        if (all.compare(pos, sp.text.size(), sp.text) == 0) hit = &sp;
      if (!hit) {
        ++pos;
        continue;
      }
      if (pos > seg) {
        GE_ASSIGN(auto part, tok.encode(all.substr(seg, pos - seg), false));
        out.ids.insert(out.ids.end(), part.begin(), part.end());
      }
      out.ids.push_back(hit->id);
      pos += hit->text.size();
      seg = pos;
    }
    GE_ASSIGN(auto rest, tok.encode(all.substr(seg), false));
    out.ids.insert(out.ids.end(), rest.begin(), rest.end());
  }
  // Runs: maximal stretches of soft ids, each exactly tokens_per_image long (boi/eoi between).
  for (size_t k = 0; k < out.ids.size();) {
    if (out.ids[k] != ids.soft) {
      ++k;
      continue;
    }
    size_t e = k;
    while (e < out.ids.size() && out.ids[e] == ids.soft) ++e;
    if (static_cast<int>(e - k) != tokens_per_image)
      return internal_error("an image run of {} soft tokens, expected {}", e - k, tokens_per_image);
    out.soft_offsets.push_back(static_cast<int>(k));
    k = e;
  }
  size_t expected = 0;
  for (int c : num_crops) expected += 1 + static_cast<size_t>(c);
  if (out.soft_offsets.size() != expected)
    return internal_error("{} image runs in the tokens, expected {}", out.soft_offsets.size(), expected);
  return out;
}

Status check_image_prompt_fits(const ImagePrompt& prompt, int already_used, int n_ctx) {
  const int64_t total = static_cast<int64_t>(already_used) + static_cast<int64_t>(prompt.ids.size());
  if (total <= n_ctx) return ok_status();  // as for text prompts: a full context just generates nothing
  const size_t runs = prompt.soft_offsets.size();
  return invalid_argument(
      "the prompt is {} tokens ({} of them for {} image{}{}), longer than the context of {} (raise --ctx)", total,
      prompt.image_tokens(), prompt.n_images, prompt.n_images == 1 ? "" : "s",
      runs > static_cast<size_t>(prompt.n_images) ? fmt::format(" and {} crops", runs - prompt.n_images) : "", n_ctx);
}

Result<std::vector<PromptEmbeddings>> encode_image_prompt(const ImagePrompt& prompt,
                                                          std::span<const image::Image> images,
                                                          const image::ProcessorConfig& processor,
                                                          const image::PanAndScanOptions& pan_and_scan, int text_hidden,
                                                          const ImageEncoder& encode) {
  if (static_cast<int>(images.size()) != prompt.n_images)
    return invalid_argument("{} images for a prompt laid out for {}", images.size(), prompt.n_images);
  std::vector<PromptEmbeddings> runs;
  runs.reserve(prompt.soft_offsets.size());
  const size_t rows = static_cast<size_t>(prompt.tokens_per_image);
  for (size_t i = 0; i < images.size(); ++i) {
    GE_ASSIGN(image::Preprocessed pre, image::preprocess(images[i], processor, pan_and_scan));
    for (const std::vector<float>& pixels : pre.pixel_values) {
      if (runs.size() >= prompt.soft_offsets.size())
        return internal_error("image {} gives more crops than the prompt was laid out for", i + 1);
      GE_ASSIGN(std::vector<float> values, encode(pixels));
      if (values.size() != rows * static_cast<size_t>(text_hidden))
        return internal_error("the vision tower gave {} values for an image, expected {} x {}", values.size(), rows,
                              text_hidden);
      runs.push_back({prompt.soft_offsets[runs.size()], std::move(values)});
    }
  }
  if (runs.size() != prompt.soft_offsets.size())
    return internal_error("{} images and crops encoded for {} image runs", runs.size(), prompt.soft_offsets.size());
  return runs;
}

}  // namespace gemma

#include "cli/images.h"

#include <algorithm>

#include <fmt/format.h>

#include "image/decode.h"
#include "vision/encoder.h"

namespace gemma::cli {

image::PanAndScanOptions ImageArgs::pan_and_scan_options() const {
  image::PanAndScanOptions o;
  o.enabled = pan_and_scan;
  o.min_crop_size = min_crop;
  o.max_crops = max_crops;
  o.min_ratio = min_ratio;
  return o;
}

void add_image_options(CLI::App* sub, ImageArgs& a, bool with_image_flag) {
  if (with_image_flag)
    sub->add_option("--image", a.images,
                    "An image for the prompt (repeatable; PNG, JPEG, WebP, BMP, GIF). Each <start_of_image> in the "
                    "prompt marks where the next one goes; without markers they go before the text");
  sub->add_option("--mmproj", a.mmproj, "The vision tower as llama.cpp's separate mmproj GGUF (for a GGUF model)");
  sub->add_flag("--pan-and-scan", a.pan_and_scan,
                "Also show the model crops of elongated images (HF's pan-and-scan; more tokens per image)");
  sub->add_option("--pan-and-scan-min-crop", a.min_crop, "Pan-and-scan: smallest crop side in pixels")
      ->capture_default_str();
  sub->add_option("--pan-and-scan-max-crops", a.max_crops, "Pan-and-scan: most crops per image")->capture_default_str();
  sub->add_option("--pan-and-scan-min-ratio", a.min_ratio, "Pan-and-scan: aspect ratio from which crops are taken")
      ->capture_default_str();
}

Status check_image_args(const ImageArgs& a) {
  // HF divides by the crop size and the ratio; crops must be at least 1 to be a layout at all.
  if (a.min_crop < 1 || a.min_crop > 16384) return invalid_argument("--pan-and-scan-min-crop must be 1 to 16384");
  if (a.max_crops < 1 || a.max_crops > 64) return invalid_argument("--pan-and-scan-max-crops must be 1 to 64");
  if (!(a.min_ratio >= 1.0 && a.min_ratio <= 1000.0))
    return invalid_argument("--pan-and-scan-min-ratio must be 1 to 1000");
  return ok_status();
}

Result<std::vector<image::Image>> load_images(std::span<const std::string> paths) {
  std::vector<image::Image> out;
  for (const std::string& p : paths) {
    GE_ASSIGN(image::Image img, image::load_image_file(p));  // its errors name the file
    out.push_back(std::move(img));
  }
  return out;
}

struct Vision::Impl {
  LoadedVision loaded;  // the encoder reads its tensors: declared first, destroyed last
  std::unique_ptr<VisionEncoder> encoder;
};

Vision::Vision(const Model& model, std::string model_path, std::string mmproj)
    : model_(model), model_path_(std::move(model_path)), mmproj_(std::move(mmproj)) {}
Vision::~Vision() = default;

std::optional<VisionConfig> Vision::known_config() const {
  if (impl_) return config();
  // A separate mmproj decides the tower's shape, whatever the model file says.
  if (!mmproj_.empty()) return std::nullopt;
  return model_.config().vision;
}

Status Vision::load(Backend& backend) {
  if (impl_) return ok_status();
  auto loaded = load_vision(model_path_, mmproj_);
  if (!loaded.ok()) {
    if (mmproj_.empty() && loaded.error().kind != ErrorKind::kCorruptInput) {
      const std::string& why = loaded.error().message;
      return invalid_argument(
          "this model has no vision tower ({}){}", why,
          why.find("mmproj") == std::string::npos ? "; pass --mmproj PATH with its mmproj GGUF" : "");
    }
    return loaded.error();
  }
  auto impl = std::make_unique<Impl>();
  impl->loaded = std::move(*loaded);
  if (impl->loaded.text_hidden != 0 && impl->loaded.text_hidden != model_.config().hidden)
    return invalid_argument(
        "the vision tower {} projects to width {}, but the model is {} wide: not this model's tower",
        impl->loaded.source, impl->loaded.text_hidden, model_.config().hidden);
  GE_ASSIGN(impl->encoder,
            VisionEncoder::create(impl->loaded.config, model_.config().hidden, impl->loaded.tensors, backend));
  impl_ = std::move(impl);
  return ok_status();
}

const VisionConfig& Vision::config() const { return impl_->encoder->config(); }

Result<std::vector<float>> Vision::encode(std::span<const float> pixels) { return impl_->encoder->encode(pixels); }

Status build_image_request(Vision& vision, Backend& backend, const Tokenizer& tok, const std::string& text,
                           std::span<const image::Image> images, const image::PanAndScanOptions& pan_and_scan,
                           bool add_bos, int already_used, int n_ctx, Request& req) {
  const std::optional<VisionConfig> known = vision.known_config();
  // The image token ids belong to the language model (its config.json), whichever file the tower
  // comes from.
  VisionConfig hint = known ? *known : vision.model_vision().value_or(VisionConfig{});
  // A GGUF vocabulary (llama.cpp's) stops before <image_soft_token> and an mmproj names no ids: the
  // soft id is then only a placeholder the engine never embeds (its run replaces it), so Gemma's
  // own 262144 where the embedding has that row, else <pad>.
  if (hint.image_token < 0 && !tok.find(kImageSoftToken))
    hint.image_token = vision.vocab_rows() > 262144 ? 262144 : std::max(0, tok.pad_id());
  auto token_ids = image_token_ids(tok, &hint);
  if (!token_ids.ok()) {
    // A text-only checkpoint: its tokenizer has no image tokens and its config no tower.
    if (!known && !vision.has_mmproj())
      return invalid_argument("this model has no vision tower ({}); pass --mmproj PATH with its mmproj GGUF",
                              token_ids.error().message);
    return token_ids.error();
  }
  const ImageTokenIds ids = *token_ids;
  std::vector<int> crops;
  for (const image::Image& img : images) {
    GE_ASSIGN(int n, count_crops(img.width, img.height, pan_and_scan));
    crops.push_back(n);
  }
  std::optional<ImagePrompt> prompt;
  if (known) {
    GE_ASSIGN(prompt, tokenize_image_prompt(tok, ids, text, crops, known->tokens_per_image, add_bos));
    GE_TRY(check_image_prompt_fits(*prompt, already_used, n_ctx));
  }
  GE_TRY(vision.load(backend));
  const VisionConfig& vc = vision.config();
  if (!prompt || prompt->tokens_per_image != vc.tokens_per_image) {
    GE_ASSIGN(prompt, tokenize_image_prompt(tok, ids, text, crops, vc.tokens_per_image, add_bos));
    GE_TRY(check_image_prompt_fits(*prompt, already_used, n_ctx));
  }
  image::ProcessorConfig pc;
  pc.image_size = vc.image_size;
  ImageEncoder enc = [&vision](std::span<const float> px) { return vision.encode(px); };
  GE_ASSIGN(req.embeddings, encode_image_prompt(*prompt, images, pc, pan_and_scan, vision.text_hidden(), enc));
  req.prompt = std::move(prompt->ids);
  return ok_status();
}

}  // namespace gemma::cli

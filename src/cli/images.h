// Images in `gemma run` and `gemma chat` (Gemma 3): the --image / --mmproj / --pan-and-scan
// options, and the steps from files to a Request with embedded soft tokens, ordered so that every
// cheap check comes first: the options, then each file decoded (a missing, corrupt, truncated,
// unsupported or oversized image fails here), then the prompt laid out and checked against the
// context (before the tower is even loaded when the model's config gives tokens_per_image), then
// the tower loaded (only now: text-only use never pays for it) and each image encoded.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "image/image.h"
#include "image/preprocess.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "runtime/multimodal.h"
#include "util/result.h"

namespace gemma::cli {

struct ImageArgs {
  std::vector<std::string> images;  // --image, repeatable, in prompt order
  std::string mmproj;               // --mmproj: llama.cpp's separate vision GGUF
  bool pan_and_scan = false;
  int min_crop = 256;
  int max_crops = 4;
  double min_ratio = 1.2;
  image::PanAndScanOptions pan_and_scan_options() const;
};
// Registers --mmproj and the pan-and-scan options; with_image_flag adds --image (run, not chat,
// where /image lines attach images).
void add_image_options(::CLI::App* sub, ImageArgs& a, bool with_image_flag);
Status check_image_args(const ImageArgs& a);

// Decodes the files, in order (errors name the file).
Result<std::vector<image::Image>> load_images(std::span<const std::string> paths);

// The vision tower of a session, loaded on first use, encoding on the engine's backend.
class Vision {
 public:
  Vision(const Model& model, std::string model_path, std::string mmproj);
  ~Vision();
  // tokens_per_image etc. without loading the tower, when the model's config carries them.
  std::optional<VisionConfig> known_config() const;
  // Loads the tower (once). A checkpoint without one gets "this model has no vision tower".
  Status load(Backend& backend);
  const VisionConfig& config() const;  // after load()
  Result<std::vector<float>> encode(std::span<const float> pixels);
  int text_hidden() const { return model_.config().hidden; }
  bool has_mmproj() const { return !mmproj_.empty(); }
  int vocab_rows() const { return model_.config().vocab_size; }
  const std::optional<VisionConfig>& model_vision() const { return model_.config().vision; }

 private:
  struct Impl;
  const Model& model_;
  std::string model_path_, mmproj_;
  std::unique_ptr<Impl> impl_;
};

// One prompt with images: `text` is the rendered prompt (chat template applied) holding one
// <start_of_image> marker per image; already_used positions precede it (earlier chat turns).
// Lays out, checks the context (before loading the tower when known_config() allows), loads the
// tower on `backend`, encodes, and fills req.prompt and req.embeddings.
Status build_image_request(Vision& vision, Backend& backend, const Tokenizer& tok, const std::string& text,
                           std::span<const image::Image> images, const image::PanAndScanOptions& pan_and_scan,
                           bool add_bos, int already_used, int n_ctx, Request& req);

}  // namespace gemma::cli

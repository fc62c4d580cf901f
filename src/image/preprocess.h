// The Gemma 3 image processor as HF's Gemma3ImageProcessor (PIL backend) computes it, from an RGB
// image (decode.h) to pixel_values: optional pan-and-scan crops of the image; then each of
// [image, crops...] resized to image_size x image_size with PIL bilinear (resize.h), rescaled by
// rescale_factor (in double, then cast to float32, as HF's rescale does), normalised
// (x - mean) / std in float32, and laid out channels-first (3 planes of image_size^2 floats).
#pragma once

#include <string>
#include <vector>

#include "image/image.h"
#include "image/resize.h"
#include "util/result.h"

namespace gemma::image {

struct ProcessorConfig {
  int image_size = 896;  // vision_config.image_size: the square the tower sees
  double rescale_factor = 1.0 / 255.0;
  float mean[3] = {0.5f, 0.5f, 0.5f};
  float std[3] = {0.5f, 0.5f, 0.5f};
  PillowVersion pillow = kDefaultPillow;  // whose resize to reproduce (resize.h)
};

// HF's pan_and_scan parameters and defaults (Gemma3Processor's images_kwargs).
struct PanAndScanOptions {
  bool enabled = false;
  int min_crop_size = 256;
  int max_crops = 4;
  double min_ratio = 1.2;  // the aspect ratio from which crops are taken
};

struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};

// HF's crop boxes for an image of width x height, row-major; the last crop in a row or column is
// cut at the image edge (HF slices a numpy array past its end). Empty when the image is not
// elongated enough or the crops would be smaller than min_crop_size. An error for options HF
// would divide by zero on, or for a layout whose last crop would be empty (HF fails there too).
Result<std::vector<CropBox>> pan_and_scan_boxes(int width, int height, const PanAndScanOptions& options);

Result<Image> crop(const Image& in, const CropBox& box);

// One resized image's pixel values, CHW float32; the image must already be image_size square.
std::vector<float> pixel_values(const Image& resized, const ProcessorConfig& config);

struct Preprocessed {
  // [the whole image, crops...], each 3 * image_size * image_size floats, CHW.
  std::vector<std::vector<float>> pixel_values;
  int num_crops = 0;
};
Result<Preprocessed> preprocess(const Image& image, const ProcessorConfig& config,
                                const PanAndScanOptions& pan_and_scan = {});

// The text HF's Gemma3Processor puts in place of one image's marker: the image sequence
// "\n\n<start_of_image>" + "<image_soft_token>" x tokens_per_image + "<end_of_image>\n\n", and with
// crops "Here is the original image " SEQ " and here are some crops to help you see better "
// followed by num_crops copies of SEQ joined by spaces.
std::string image_prompt_text(int tokens_per_image, int num_crops);

}  // namespace gemma::image

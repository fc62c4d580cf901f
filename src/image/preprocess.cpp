#include "image/preprocess.h"

#include <cmath>
#include <cstring>

#include "image/resize.h"

namespace gemma::image {

Result<std::vector<CropBox>> pan_and_scan_boxes(int width, int height, const PanAndScanOptions& o) {
  if (o.min_crop_size < 1 || o.max_crops < 1 || !(o.min_ratio > 0))
    return invalid_argument("pan and scan: min crop size and max crops must be >= 1 and min ratio > 0 (got {}, {}, {})",
                            o.min_crop_size, o.max_crops, o.min_ratio);
  if (width < 1 || height < 1) return invalid_argument("pan and scan of an empty {}x{} image", width, height);
  // HF's arithmetic: Python float divisions, floor(x + 0.5) rounding, ceil for the crop size.
  const double w = width, h = height;
  int crops_w = 1, crops_h = 1;
  if (width >= height) {
    if (w / h < o.min_ratio) return std::vector<CropBox>{};
    crops_w = static_cast<int>(std::floor(w / h + 0.5));
    crops_w = std::min(static_cast<int>(std::floor(w / o.min_crop_size)), crops_w);
    crops_w = std::min(o.max_crops, std::max(2, crops_w));
  } else {
    if (h / w < o.min_ratio) return std::vector<CropBox>{};
    crops_h = static_cast<int>(std::floor(h / w + 0.5));
    crops_h = std::min(static_cast<int>(std::floor(h / o.min_crop_size)), crops_h);
    crops_h = std::min(o.max_crops, std::max(2, crops_h));
  }
  const int crop_w = static_cast<int>(std::ceil(w / crops_w));
  const int crop_h = static_cast<int>(std::ceil(h / crops_h));
  if (std::min(crop_w, crop_h) < o.min_crop_size) return std::vector<CropBox>{};
  std::vector<CropBox> boxes;
  for (int i = 0; i < crops_h; ++i) {
    for (int j = 0; j < crops_w; ++j) {
      CropBox b;
      b.x = crop_w * j;
      b.y = crop_h * i;
      b.width = std::min(crop_w, width - b.x);
      b.height = std::min(crop_h, height - b.y);
      if (b.width < 1 || b.height < 1)
        return invalid_argument("pan and scan of a {}x{} image: crop {} would be empty (min crop size {})", width,
                                height, boxes.size(), o.min_crop_size);
      boxes.push_back(b);
    }
  }
  return boxes;
}

Result<Image> crop(const Image& in, const CropBox& b) {
  if (b.x < 0 || b.y < 0 || b.width < 1 || b.height < 1 || b.x + b.width > in.width || b.y + b.height > in.height)
    return invalid_argument("crop {}x{}+{}+{} outside a {}x{} image", b.width, b.height, b.x, b.y, in.width, in.height);
  Image out;
  out.width = b.width;
  out.height = b.height;
  out.rgb.resize(out.pixels() * 3);
  for (int y = 0; y < b.height; ++y)
    std::memcpy(out.rgb.data() + static_cast<size_t>(y) * b.width * 3, in.pixel(b.x, b.y + y),
                static_cast<size_t>(b.width) * 3);
  return out;
}

std::vector<float> pixel_values(const Image& img, const ProcessorConfig& config) {
  const size_t plane = img.pixels();
  std::vector<float> out(plane * 3);
  for (int c = 0; c < 3; ++c) {
    // HF: image.astype(float64) * scale, cast to float32; then (x - mean) / std in float32.
    float lut[256];
    for (int v = 0; v < 256; ++v) {
      const float r = static_cast<float>(static_cast<double>(v) * config.rescale_factor);
      lut[v] = (r - config.mean[c]) / config.std[c];
    }
    float* dst = out.data() + plane * c;
    for (size_t i = 0; i < plane; ++i) dst[i] = lut[img.rgb[3 * i + c]];
  }
  return out;
}

Result<Preprocessed> preprocess(const Image& image, const ProcessorConfig& config, const PanAndScanOptions& pas) {
  if (config.image_size < 1 || config.image_size > 16384)
    return invalid_argument("image size {} out of range", config.image_size);
  Preprocessed out;
  std::vector<CropBox> boxes;
  if (pas.enabled) { GE_ASSIGN(boxes, pan_and_scan_boxes(image.width, image.height, pas)); }
  GE_ASSIGN(Image full, resize_bilinear(image, config.image_size, config.image_size, config.pillow));
  out.pixel_values.push_back(pixel_values(full, config));
  for (const CropBox& b : boxes) {
    GE_ASSIGN(Image part, crop(image, b));
    GE_ASSIGN(Image resized, resize_bilinear(part, config.image_size, config.image_size, config.pillow));
    out.pixel_values.push_back(pixel_values(resized, config));
  }
  out.num_crops = static_cast<int>(boxes.size());
  return out;
}

std::string image_prompt_text(int tokens_per_image, int num_crops) {
  std::string seq = "\n\n<start_of_image>";
  for (int i = 0; i < tokens_per_image; ++i) seq += "<image_soft_token>";
  seq += "<end_of_image>\n\n";
  if (num_crops <= 0) return seq;
  std::string text = "Here is the original image " + seq + " and here are some crops to help you see better ";
  for (int i = 0; i < num_crops; ++i) {
    if (i > 0) text += " ";
    text += seq;
  }
  return text;
}

}  // namespace gemma::image

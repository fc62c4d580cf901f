// Fuzzes image decoding (PNG, JPEG, WebP, BMP, GIF through their libraries and our header checks,
// RGB conversion, EXIF orientation) and, for what decodes, the Gemma 3 preprocessing (pan-and-scan
// crops, PIL bilinear resize). The first byte picks the alpha policy and whether EXIF applies.
// Limits are small (1 Mpixel) so the fuzzer looks for bugs, not for large allocations.
#include <cstdint>

#include "image/decode.h"
#include "image/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemma::image;
  if (size < 1) return 0;
  DecodeOptions options;
  options.alpha = (data[0] & 1) ? AlphaPolicy::kCompositeWhite : AlphaPolicy::kDrop;
  options.apply_exif_orientation = (data[0] & 2) == 0;
  options.max_side = 4096;
  options.max_pixels = 1 << 20;
  auto img = decode_image({data + 1, size - 1}, options, "fuzz");
  if (!img.ok()) return 0;
  if (img->rgb.size() != img->pixels() * 3) __builtin_trap();
  ProcessorConfig config;
  config.image_size = 16;
  PanAndScanOptions pas;
  pas.enabled = true;
  pas.min_crop_size = 4;
  auto pre = preprocess(*img, config, pas);
  if (pre.ok() && pre->pixel_values.size() != static_cast<size_t>(pre->num_crops) + 1) __builtin_trap();
  return 0;
}

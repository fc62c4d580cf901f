// Internal to the image layer: one decoder per library, each producing the image in the mode PIL
// would open it in, reduced to 8 bits (see decode.h for the rules), before RGB conversion.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "image/decode.h"
#include "util/result.h"

namespace gemma::image::detail {

struct RawImage {
  int width = 0;
  int height = 0;
  int channels = 0;           // 1 L, 2 LA, 3 RGB, 4 RGBA; 8 bits each, interleaved
  std::vector<uint8_t> data;  // height * width * channels
  std::vector<uint8_t> exif;  // the EXIF blob the file carries, if any (TIFF header first)

  size_t pixels_count() const { return static_cast<size_t>(width) * static_cast<size_t>(height); }
};

// Refuses a header's size before anything is allocated for it.
Status check_dimensions(uint64_t width, uint64_t height, const DecodeOptions& options, const std::string& source);

// keep_transparency: expand PNG tRNS keys/palette alpha into an alpha channel (only the
// composite policy looks at it; convert("RGB") ignores transparency).
Result<RawImage> decode_png(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source);
Result<RawImage> decode_jpeg(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source);
Result<RawImage> decode_webp(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source);
// BMP and GIF (first frame), through stb_image.
Result<RawImage> decode_stb(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source);

}  // namespace gemma::image::detail

// Image files to RGB: PNG, JPEG (baseline and progressive), WebP, BMP and GIF (first frame), the
// formats HF's processors see through PIL. The result is what `transformers.image_utils.load_image`
// hands the Gemma 3 processor: PIL's Image.open, then ImageOps.exif_transpose, then convert("RGB").
//   - grayscale, palette and 1/2/4/16-bit inputs become RGB as PIL's convert("RGB") makes them
//     (16-bit grayscale is clipped to 255, PIL's I;16 -> RGB rule; 16-bit colour keeps the high byte);
//   - alpha is dropped (AlphaPolicy::kDrop, load_image's convert("RGB")); kCompositeWhite instead
//     composites on white, what the processor's own convert_to_rgb does when given an RGBA PIL image;
//   - the EXIF orientation tag (JPEG APP1, PNG eXIf, WebP EXIF) is applied as exif_transpose does.
// Every size comes from the file, so it is checked against DecodeOptions' limits from the header,
// before any pixel buffer is allocated; malformed bytes give kCorruptInput, never a crash.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "image/image.h"
#include "util/result.h"

namespace gemma::image {

enum class ImageFormat { kUnknown, kPng, kJpeg, kWebp, kBmp, kGif };
const char* image_format_name(ImageFormat format);
// The format from the first bytes (magic numbers), not from a file name.
ImageFormat sniff_format(std::span<const uint8_t> bytes);

enum class AlphaPolicy {
  kDrop,            // load_image: convert("RGB") ignores alpha and transparency keys
  kCompositeWhite,  // Gemma3 processor's convert_to_rgb on an RGBA image: alpha_composite over white
};

struct DecodeOptions {
  AlphaPolicy alpha = AlphaPolicy::kDrop;
  bool apply_exif_orientation = true;
  // Decompression-bomb limits, checked against the header before decoding.
  int max_side = 16384;
  uint64_t max_pixels = uint64_t{1} << 28;
  // Input larger than this is refused before parsing (the CLI and server read whole files).
  uint64_t max_file_bytes = uint64_t{1} << 30;
};

// `source` names the input in error messages (a path, "request image 2", ...).
Result<Image> decode_image(std::span<const uint8_t> bytes, const DecodeOptions& options = {},
                           const std::string& source = "image");
Result<Image> load_image_file(const std::string& path, const DecodeOptions& options = {});

// EXIF orientation (1..8) from a TIFF-structured EXIF blob (with or without the "Exif\0\0" prefix);
// 1 when absent or unreadable, as PIL treats it.
int exif_orientation(std::span<const uint8_t> exif);
// Applies an orientation as PIL.ImageOps.exif_transpose does (2 mirror, 3 rotate 180, 4 flip,
// 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise).
Image apply_orientation(const Image& in, int orientation);

}  // namespace gemma::image

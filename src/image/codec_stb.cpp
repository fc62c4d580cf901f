// BMP and GIF through stb_image (Debian's libstb-dev): one small, widely used header covers both,
// with its decoders compiled into this unit only (STBI_ONLY_*), static (no symbols leak) and built
// with our sanitizers. Not used for PNG/JPEG: libpng and libjpeg-turbo are the reference decoders
// and PIL's own, which is what exactness against HF needs.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS 65536
#include <stb/stb_image.h>

#include <cstring>
#include <memory>

#include "image/codecs.h"

namespace gemma::image::detail {

Result<RawImage> decode_stb(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source) {
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return invalid_argument("{}: file too large", source);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, n = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &n))
    return corrupt_input("{}: bad image header: {}", source, stbi_failure_reason());
  GE_TRY(check_dimensions(static_cast<uint64_t>(w), static_cast<uint64_t>(h), options, source));
  // BMP: 3 channels, or 4 for 32-bit files. GIF: always RGBA, transparent pixels (0,0,0,0).
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, len, &w, &h, &n, 0), stbi_image_free);
  if (!pixels) return corrupt_input("{}: bad image: {}", source, stbi_failure_reason());
  if (n < 1 || n > 4 || w <= 0 || h <= 0) return corrupt_input("{}: bad image layout", source);
  RawImage out;
  out.width = w;
  out.height = h;
  out.channels = n;
  out.data.assign(pixels.get(), pixels.get() + static_cast<size_t>(w) * h * n);
  return out;
}

}  // namespace gemma::image::detail

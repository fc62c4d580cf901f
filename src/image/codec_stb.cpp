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
namespace {

uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t{p[3]} << 24); }

// stb_image reads past the end of a truncated BMP as zeros; PIL refuses it ("image file is
// truncated"). An uncompressed BMP's size follows from its header: pixel data offset + rows x stride.
Status check_bmp_size(std::span<const uint8_t> b, const std::string& source) {
  if (b.size() < 26) return corrupt_input("{}: bad BMP: file is truncated", source);
  const uint64_t offset = le32(&b[10]);
  const uint32_t header = le32(&b[14]);
  uint64_t w = 0, h = 0, bpp = 0, compression = 0;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
    w = b[18] | (b[19] << 8);
    h = b[20] | (b[21] << 8);
    bpp = b[24] | (b[25] << 8);
  } else {
    if (b.size() < 34) return corrupt_input("{}: bad BMP: file is truncated", source);
    const int32_t sw = static_cast<int32_t>(le32(&b[18])), sh = static_cast<int32_t>(le32(&b[22]));
    w = sw < 0 ? 0 - static_cast<int64_t>(sw) : sw;
    h = sh < 0 ? 0 - static_cast<int64_t>(sh) : sh;  // negative: rows stored top-down
    bpp = b[28] | (b[29] << 8);
    compression = le32(&b[30]);
  }
  if (compression == 0 || compression == 3 || compression == 6) {  // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
    const uint64_t stride = (w * bpp + 31) / 32 * 4;
    if (w > (1u << 20) || h > (1u << 20) || offset + stride * h > b.size())
      return corrupt_input("{}: bad BMP: file is truncated", source);
  }
  return ok_status();
}

// stb_image also decodes a GIF whose first image stops short (missing LZW data reads as zeros);
// PIL refuses it. Walks the block structure up to the end of the first image's data.
Status check_gif_first_frame(std::span<const uint8_t> b, const std::string& source) {
  const Error truncated = corrupt_input("{}: bad GIF: file is truncated", source);
  size_t pos = 13;  // header and logical screen descriptor
  if (b.size() < pos) return truncated;
  if (b[10] & 0x80) pos += 3u << ((b[10] & 7) + 1);  // global colour table
  auto skip_sub_blocks = [&]() {
    while (pos < b.size()) {
      const size_t n = b[pos++];
      if (n == 0) return true;
      pos += n;
    }
    return false;
  };
  while (pos < b.size()) {
    const uint8_t tag = b[pos++];
    if (tag == 0x21) {  // extension: label, then data sub-blocks
      if (++pos > b.size() || !skip_sub_blocks()) return truncated;
    } else if (tag == 0x2C) {  // image descriptor, optional local table, LZW code size, data
      if (pos + 9 > b.size()) return truncated;
      const uint8_t flags = b[pos + 8];
      pos += 9;
      if (flags & 0x80) pos += 3u << ((flags & 7) + 1);
      if (++pos > b.size() || !skip_sub_blocks()) return truncated;
      return ok_status();
    } else {
      return corrupt_input("{}: bad GIF: no image before block 0x{:02x}", source, tag);
    }
  }
  return truncated;
}

}  // namespace

Result<RawImage> decode_stb(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source) {
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return invalid_argument("{}: file too large", source);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, n = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &n))
    return corrupt_input("{}: bad image header: {}", source, stbi_failure_reason());
  GE_TRY(check_dimensions(static_cast<uint64_t>(w), static_cast<uint64_t>(h), options, source));
  if (sniff_format(bytes) == ImageFormat::kBmp) GE_TRY(check_bmp_size(bytes, source));
  if (sniff_format(bytes) == ImageFormat::kGif) GE_TRY(check_gif_first_frame(bytes, source));
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

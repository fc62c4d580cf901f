#include "image/decode.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "image/codecs.h"

namespace gemma::image {

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kUnknown: break;
  }
  return "unknown";
}

ImageFormat sniff_format(std::span<const uint8_t> b) {
  auto starts = [&](const char* magic, size_t n, size_t at = 0) {
    return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return ImageFormat::kPng;
  if (starts("\xff\xd8\xff", 3)) return ImageFormat::kJpeg;
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return ImageFormat::kWebp;
  if (starts("BM", 2)) return ImageFormat::kBmp;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return ImageFormat::kGif;
  return ImageFormat::kUnknown;
}

namespace detail {

Status check_dimensions(uint64_t width, uint64_t height, const DecodeOptions& options, const std::string& source) {
  if (width == 0 || height == 0) return corrupt_input("{}: image has zero size ({}x{})", source, width, height);
  if (width > static_cast<uint64_t>(options.max_side) || height > static_cast<uint64_t>(options.max_side) ||
      width * height > options.max_pixels)
    return invalid_argument("{}: image of {}x{} pixels is over the limit ({} a side, {} pixels)", source, width, height,
                            options.max_side, options.max_pixels);
  return ok_status();
}

}  // namespace detail

namespace {

// PIL's Image.alpha_composite(white, rgba) for one pixel, in its integer arithmetic
// (libImaging/AlphaComposite.c, 7 extra bits of precision, rounded divisions by 255).
inline void composite_on_white(const uint8_t* rgba, uint8_t* rgb) {
  const uint32_t sa = rgba[3];
  if (sa == 0) {
    rgb[0] = rgb[1] = rgb[2] = 255;
    return;
  }
  constexpr uint32_t kBits = 7;
  const uint32_t blend = 255 * (255 - sa);  // the background's alpha is 255
  const uint32_t outa255 = sa * 255 + blend;
  const uint32_t coef1 = sa * 255 * 255 * (1u << kBits) / outa255;
  const uint32_t coef2 = 255 * (1u << kBits) - coef1;
  for (int c = 0; c < 3; ++c) {
    uint32_t t = rgba[c] * coef1 + 255 * coef2 + (0x80u << kBits);
    t = ((t >> 8) + t) >> 8;
    rgb[c] = static_cast<uint8_t>(t >> kBits);
  }
}

Image to_rgb(const detail::RawImage& raw, AlphaPolicy alpha) {
  Image out;
  out.width = raw.width;
  out.height = raw.height;
  const size_t n = raw.pixels_count();
  out.rgb.resize(n * 3);
  const uint8_t* s = raw.data.data();
  uint8_t* d = out.rgb.data();
  const bool composite = alpha == AlphaPolicy::kCompositeWhite;
  switch (raw.channels) {
    case 1:
      for (size_t i = 0; i < n; ++i) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
      break;
    case 2:
      for (size_t i = 0; i < n; ++i) {
        if (composite) {
          const uint8_t rgba[4] = {s[2 * i], s[2 * i], s[2 * i], s[2 * i + 1]};
          composite_on_white(rgba, d + 3 * i);
        } else {
          d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[2 * i];
        }
      }
      break;
    case 3: std::memcpy(d, s, n * 3); break;
    case 4:
      for (size_t i = 0; i < n; ++i) {
        if (composite) {
          composite_on_white(s + 4 * i, d + 3 * i);
        } else {
          std::memcpy(d + 3 * i, s + 4 * i, 3);
        }
      }
      break;
    default: break;  // decoders only produce 1..4
  }
  return out;
}

uint32_t read_u16(const uint8_t* p, bool le) { return le ? (p[0] | (p[1] << 8)) : ((p[0] << 8) | p[1]); }
uint32_t read_u32(const uint8_t* p, bool le) {
  return le ? (uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24))
            : ((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]});
}

}  // namespace

int exif_orientation(std::span<const uint8_t> exif) {
  if (exif.size() >= 6 && std::memcmp(exif.data(), "Exif\0\0", 6) == 0) exif = exif.subspan(6);
  if (exif.size() < 8) return 1;
  const uint8_t* p = exif.data();
  bool le;
  if (p[0] == 'I' && p[1] == 'I') {
    le = true;
  } else if (p[0] == 'M' && p[1] == 'M') {
    le = false;
  } else {
    return 1;
  }
  if (read_u16(p + 2, le) != 42) return 1;
  const uint64_t ifd = read_u32(p + 4, le);
  if (ifd + 2 > exif.size()) return 1;
  const uint32_t count = read_u16(p + ifd, le);
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t e = ifd + 2 + uint64_t{i} * 12;
    if (e + 12 > exif.size()) return 1;
    if (read_u16(p + e, le) != 0x0112) continue;
    const uint32_t type = read_u16(p + e + 2, le);
    uint32_t v = 0;
    if (type == 3) {  // SHORT
      v = read_u16(p + e + 8, le);
    } else if (type == 4) {  // LONG
      v = read_u32(p + e + 8, le);
    } else {
      return 1;
    }
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

Image apply_orientation(const Image& in, int orientation) {
  if (orientation < 2 || orientation > 8) return in;
  const int w = in.width, h = in.height;
  const bool swap = orientation >= 5;  // 5..8 exchange width and height
  Image out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.rgb.resize(in.rgb.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the source pixel that lands at (x, y)
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                  // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x, sy = h - 1 - y; break;  // ROTATE_180
        case 4: sy = h - 1 - y; break;                  // FLIP_TOP_BOTTOM
        case 5: sx = y, sy = x; break;                  // TRANSPOSE
        case 6: sx = y, sy = h - 1 - x; break;          // ROTATE_270 (90 clockwise)
        case 7: sx = w - 1 - y, sy = h - 1 - x; break;  // TRANSVERSE
        case 8: sx = w - 1 - y, sy = x; break;          // ROTATE_90 (counter-clockwise)
        default: break;
      }
      std::memcpy(out.rgb.data() + (static_cast<size_t>(y) * out.width + x) * 3, in.pixel(sx, sy), 3);
    }
  }
  return out;
}

Result<Image> decode_image(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source) {
  if (bytes.size() > options.max_file_bytes)
    return invalid_argument("{}: image file of {} bytes is over the limit of {}", source, bytes.size(),
                            options.max_file_bytes);
  const ImageFormat format = sniff_format(bytes);
  Result<detail::RawImage> raw =
      unsupported("{}: not an image in a supported format (PNG, JPEG, WebP, BMP, GIF)", source);
  switch (format) {
    case ImageFormat::kPng: raw = detail::decode_png(bytes, options, source); break;
    case ImageFormat::kJpeg: raw = detail::decode_jpeg(bytes, options, source); break;
    case ImageFormat::kWebp: raw = detail::decode_webp(bytes, options, source); break;
    case ImageFormat::kBmp:
    case ImageFormat::kGif: raw = detail::decode_stb(bytes, options, source); break;
    case ImageFormat::kUnknown: break;
  }
  if (!raw.ok()) return std::move(raw).error();
  Image rgb = to_rgb(*raw, options.alpha);
  if (options.apply_exif_orientation && !raw->exif.empty()) {
    const int orientation = exif_orientation(raw->exif);
    if (orientation != 1) rgb = apply_orientation(rgb, orientation);
  }
  return rgb;
}

Result<Image> load_image_file(const std::string& path, const DecodeOptions& options) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return not_found("{}: cannot open image file", path);
  if (std::fseek(f.get(), 0, SEEK_END) != 0) return internal_error("{}: cannot seek", path);
  const long size = std::ftell(f.get());
  if (size < 0) return internal_error("{}: cannot tell the file size", path);
  if (static_cast<uint64_t>(size) > options.max_file_bytes)
    return invalid_argument("{}: image file of {} bytes is over the limit of {}", path, size, options.max_file_bytes);
  std::rewind(f.get());
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && std::fread(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
    return internal_error("{}: read failed", path);
  return decode_image(bytes, options, path);
}

}  // namespace gemma::image

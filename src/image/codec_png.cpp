// PNG through libpng (the reference decoder, the one PIL's own PNG reader follows bit for bit for
// the modes below). The low-level API, not png_image_*: the simplified API linearises 16-bit
// samples with gamma, where PIL keeps the high byte.
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <memory>

#include "image/codecs.h"

namespace gemma::image::detail {
namespace {

struct PngCtx {
  std::span<const uint8_t> in;
  size_t pos = 0;
  const DecodeOptions* options = nullptr;
  const std::string* source = nullptr;
  std::string error;          // set by the error callback or a check, before longjmp/return
  bool size_refused = false;  // error is a size limit (invalid argument), not corrupt bytes
  RawImage out;
  bool clip16 = false;        // 16-bit grayscale: PIL's I;16 -> L clips each sample to 255
  std::vector<uint8_t> wide;  // 16-bit rows before clipping
  std::vector<png_bytep> rows;
  png_structp png = nullptr;
  png_infop info = nullptr;
  png_infop end_info = nullptr;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngCtx*>(png_get_error_ptr(png));
  ctx->error = msg ? msg : "libpng error";
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}  // PIL ignores libpng-level warnings too

void on_read(png_structp png, png_bytep data, size_t length) {
  auto* ctx = static_cast<PngCtx*>(png_get_io_ptr(png));
  if (length > ctx->in.size() - ctx->pos) png_error(png, "file is truncated");
  std::memcpy(data, ctx->in.data() + ctx->pos, length);
  ctx->pos += length;
}

void take_exif(PngCtx* ctx, png_infop info) {
#ifdef PNG_eXIf_SUPPORTED
  png_uint_32 n = 0;
  png_bytep exif = nullptr;
  if (ctx->out.exif.empty() && png_get_eXIf_1(ctx->png, info, &n, &exif) && exif && n > 0)
    ctx->out.exif.assign(exif, exif + n);
#endif
}

// Everything between setjmp and the last libpng call lives in *ctx: no local with a destructor
// is skipped by the longjmp.
bool decode(PngCtx* ctx) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_set_read_fn(ctx->png, ctx, on_read);
  // Bound what libpng itself allocates for ancillary chunks (zTXt, iCCP, ...).
  png_set_chunk_malloc_max(ctx->png, 16u << 20);
  png_read_info(ctx->png, ctx->info);
  png_uint_32 width = 0, height = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(ctx->png, ctx->info, &width, &height, &depth, &color, &interlace, nullptr, nullptr);
  Status st = check_dimensions(width, height, *ctx->options, *ctx->source);
  if (!st.ok()) {
    ctx->error = st.error().message;
    ctx->size_refused = true;
    return false;
  }
  const bool composite = ctx->options->alpha == AlphaPolicy::kCompositeWhite;
  const bool has_trns = png_get_valid(ctx->png, ctx->info, PNG_INFO_tRNS) != 0;
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);  // x255/x85/x17, as PIL
  // Transparency keys matter only to the composite policy, and only at 8 bits or less (PIL keeps a
  // 16-bit key that convert("RGBA") never matches against its 8-bit samples).
  if (composite && has_trns && depth <= 8) png_set_tRNS_to_alpha(ctx->png);
  ctx->clip16 = depth == 16 && color == PNG_COLOR_TYPE_GRAY;
  if (depth == 16 && !ctx->clip16) png_set_strip_16(ctx->png);  // high byte, as PIL's "RGB;16B" etc.
  if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(ctx->png);
  png_read_update_info(ctx->png, ctx->info);
  const int channels = png_get_channels(ctx->png, ctx->info);
  const size_t rowbytes = png_get_rowbytes(ctx->png, ctx->info);
  if (channels < 1 || channels > 4 || rowbytes != static_cast<size_t>(width) * channels * (ctx->clip16 ? 2 : 1)) {
    ctx->error = "unexpected PNG row layout";
    return false;
  }
  ctx->out.width = static_cast<int>(width);
  ctx->out.height = static_cast<int>(height);
  ctx->out.channels = channels;
  std::vector<uint8_t>& buf = ctx->clip16 ? ctx->wide : ctx->out.data;
  buf.resize(rowbytes * height);
  ctx->rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) ctx->rows[y] = buf.data() + rowbytes * y;
  png_read_image(ctx->png, ctx->rows.data());
  take_exif(ctx, ctx->info);
  png_read_end(ctx->png, ctx->end_info);  // an eXIf chunk may follow the image data
  take_exif(ctx, ctx->end_info);
  return true;
}

}  // namespace

Result<RawImage> decode_png(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source) {
  auto ctx = std::make_unique<PngCtx>();
  ctx->in = bytes;
  ctx->options = &options;
  ctx->source = &source;
  ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx.get(), on_error, on_warning);
  if (!ctx->png) return resource_exhausted("{}: cannot create a PNG reader", source);
  ctx->info = png_create_info_struct(ctx->png);
  ctx->end_info = png_create_info_struct(ctx->png);
  const bool ok = ctx->info && ctx->end_info && decode(ctx.get());
  png_destroy_read_struct(&ctx->png, &ctx->info, &ctx->end_info);
  if (!ok) {
    if (ctx->size_refused) return invalid_argument("{}", ctx->error);
    return corrupt_input("{}: bad PNG: {}", source, ctx->error);
  }
  if (ctx->clip16) {
    const size_t n = ctx->out.pixels_count();
    ctx->out.data.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const unsigned v = (unsigned{ctx->wide[2 * i]} << 8) | ctx->wide[2 * i + 1];  // PNG is big-endian
      ctx->out.data[i] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
  return std::move(ctx->out);
}

}  // namespace gemma::image::detail

// JPEG through libjpeg-turbo, the library PIL itself decodes JPEG with: same default IDCT (islow)
// and fancy upsampling, so the RGB samples agree with PIL's. Baseline and progressive.
#include <csetjmp>
#include <cstddef>
#include <cstdio>  // jpeglib.h needs size_t and FILE declared first
#include <cstring>
#include <memory>

#include <jpeglib.h>
// jerror.h after jpeglib.h: the message codes (JWRN_JPEG_EOF)
#include <jerror.h>

#include "image/codecs.h"

namespace gemma::image::detail {
namespace {

// A hostile progressive file can hold thousands of tiny scans, each re-walking the whole
// coefficient buffer; real encoders write about ten.
constexpr int kMaxScans = 1000;

struct JpegCtx {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr jerr;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  std::span<const uint8_t> in;
  const DecodeOptions* options = nullptr;
  const std::string* source = nullptr;
  std::string error;
  bool size_refused = false;
  bool unsupported = false;
  RawImage out;
};

void on_error(j_common_ptr cinfo) {
  auto* ctx = reinterpret_cast<JpegCtx*>(cinfo->client_data);
  char msg[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, msg);
  ctx->error = msg;
  std::longjmp(ctx->jump, 1);
}

// Warnings (level -1) are mostly recoverable corruption PIL also accepts, except a premature end of
// data: libjpeg pads the missing scans with grey, where PIL reports a truncated file.
void on_message(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* ctx = reinterpret_cast<JpegCtx*>(cinfo->client_data);
    ctx->error = "file is truncated";
    std::longjmp(ctx->jump, 1);
  }
}

void on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor) {
    auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
    if (d->input_scan_number > kMaxScans) {
      auto* ctx = reinterpret_cast<JpegCtx*>(cinfo->client_data);
      ctx->error = "too many progressive scans";
      std::longjmp(ctx->jump, 1);
    }
  }
}

// PIL reads 4-channel JPEGs as "CMYK;I" (Adobe's inverted convention: every sample inverted) and
// converts to RGB with libImaging's cmyk2rgb: nk = 255 - k, channel = nk - round(c * nk / 255).
void cmyk_to_rgb(RawImage* img) {
  const size_t n = img->pixels_count();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &img->data[4 * i];
    const int k = 255 - p[3];  // CMYK;I
    const int nk = 255 - k;
    uint8_t rgb[3];
    for (int c = 0; c < 3; ++c) {
      const int t = (255 - p[c]) * nk + 128;
      const int v = nk - (((t >> 8) + t) >> 8);
      rgb[c] = static_cast<uint8_t>(v < 0 ? 0 : v);
    }
    std::memcpy(&img->data[3 * i], rgb, 3);  // in place: pixel i's RGB ends before pixel i's CMYK starts
  }
  img->data.resize(n * 3);
  img->channels = 3;
}

// All state lives in *ctx, so the longjmp skips no destructor.
bool decode(JpegCtx* ctx) {
  if (setjmp(ctx->jump)) return false;
  jpeg_create_decompress(&ctx->cinfo);
  ctx->cinfo.progress = &ctx->progress;
  jpeg_mem_src(&ctx->cinfo, ctx->in.data(), static_cast<unsigned long>(ctx->in.size()));
  jpeg_save_markers(&ctx->cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&ctx->cinfo, TRUE);
  Status st = check_dimensions(ctx->cinfo.image_width, ctx->cinfo.image_height, *ctx->options, *ctx->source);
  if (!st.ok()) {
    ctx->error = st.error().message;
    ctx->size_refused = true;
    return false;
  }
  // PIL reads the first APP1 that starts "Exif\0\0".
  for (jpeg_saved_marker_ptr m = ctx->cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      ctx->out.exif.assign(m->data + 6, m->data + m->data_length);
      break;
    }
  }
  switch (ctx->cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: ctx->cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: ctx->cinfo.out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: ctx->cinfo.out_color_space = JCS_CMYK; break;  // converted to RGB below, as PIL does
    default:
      ctx->error = "JPEG colour space is not supported";
      ctx->unsupported = true;
      return false;
  }
  jpeg_start_decompress(&ctx->cinfo);
  const int channels = ctx->cinfo.output_components;
  if ((channels != 1 && channels != 3 && channels != 4) || ctx->cinfo.output_width != ctx->cinfo.image_width ||
      ctx->cinfo.output_height != ctx->cinfo.image_height) {
    ctx->error = "unexpected JPEG output layout";
    return false;
  }
  ctx->out.width = static_cast<int>(ctx->cinfo.output_width);
  ctx->out.height = static_cast<int>(ctx->cinfo.output_height);
  ctx->out.channels = channels;
  const size_t stride = static_cast<size_t>(ctx->out.width) * channels;
  ctx->out.data.resize(stride * ctx->out.height);
  while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
    JSAMPROW row = ctx->out.data.data() + stride * ctx->cinfo.output_scanline;
    if (jpeg_read_scanlines(&ctx->cinfo, &row, 1) != 1) {
      ctx->error = "file is truncated";
      return false;
    }
  }
  jpeg_finish_decompress(&ctx->cinfo);
  if (channels == 4) cmyk_to_rgb(&ctx->out);
  return true;
}

}  // namespace

Result<RawImage> decode_jpeg(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source) {
  auto ctx = std::make_unique<JpegCtx>();
  ctx->in = bytes;
  ctx->options = &options;
  ctx->source = &source;
  ctx->cinfo.err = jpeg_std_error(&ctx->jerr);
  ctx->jerr.error_exit = on_error;
  ctx->jerr.emit_message = on_message;
  ctx->progress.progress_monitor = on_progress;
  ctx->cinfo.client_data = ctx.get();
  const bool ok = decode(ctx.get());
  jpeg_destroy_decompress(&ctx->cinfo);
  if (!ok) {
    if (ctx->size_refused) return invalid_argument("{}", ctx->error);
    if (ctx->unsupported) return unsupported("{}: {}", source, ctx->error);
    return corrupt_input("{}: bad JPEG: {}", source, ctx->error);
  }
  return std::move(ctx->out);
}

}  // namespace gemma::image::detail

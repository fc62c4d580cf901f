// WebP through libwebp (Google's reference codec, which PIL also links). Still images only: an
// animated file gives its first frame, as PIL's Image.open does.
#include <webp/decode.h>
#include <webp/demux.h>

#include <memory>

#include "image/codecs.h"

namespace gemma::image::detail {

Result<RawImage> decode_webp(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& source) {
  WebPData data{bytes.data(), bytes.size()};
  std::unique_ptr<WebPDemuxer, void (*)(WebPDemuxer*)> demux(WebPDemux(&data), WebPDemuxDelete);
  if (!demux) return corrupt_input("{}: bad WebP: cannot parse the container", source);
  const uint32_t width = WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_WIDTH);
  const uint32_t height = WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_HEIGHT);
  GE_TRY(check_dimensions(width, height, options, source));
  RawImage out;
  WebPChunkIterator chunk;
  if (WebPDemuxGetChunk(demux.get(), "EXIF", 1, &chunk)) {
    out.exif.assign(chunk.chunk.bytes, chunk.chunk.bytes + chunk.chunk.size);
    WebPDemuxReleaseChunkIterator(&chunk);
  }
  WebPIterator frame;
  if (!WebPDemuxGetFrame(demux.get(), 1, &frame)) return corrupt_input("{}: bad WebP: no image frame", source);
  WebPBitstreamFeatures features;
  const VP8StatusCode probe = WebPGetFeatures(frame.fragment.bytes, frame.fragment.size, &features);
  const bool frame_fills_canvas = frame.x_offset == 0 && frame.y_offset == 0 &&
                                  frame.width == static_cast<int>(width) && frame.height == static_cast<int>(height);
  const uint8_t* fragment = frame.fragment.bytes;
  const size_t fragment_size = frame.fragment.size;
  const bool alpha = frame.has_alpha != 0;
  WebPDemuxReleaseIterator(&frame);
  if (probe != VP8_STATUS_OK) return corrupt_input("{}: bad WebP: bitstream header (status {})", source, int{probe});
  if (!frame_fills_canvas || features.width != static_cast<int>(width) || features.height != static_cast<int>(height))
    return unsupported("{}: WebP whose first frame does not fill the canvas", source);
  out.width = static_cast<int>(width);
  out.height = static_cast<int>(height);
  out.channels = alpha ? 4 : 3;
  const size_t stride = static_cast<size_t>(width) * out.channels;
  out.data.resize(stride * height);
  // Non-premultiplied RGBA, as PIL's decoder asks for; the same fancy upsampling of chroma.
  const uint8_t* ok =
      alpha ? WebPDecodeRGBAInto(fragment, fragment_size, out.data.data(), out.data.size(), static_cast<int>(stride))
            : WebPDecodeRGBInto(fragment, fragment_size, out.data.data(), out.data.size(), static_cast<int>(stride));
  if (!ok) return corrupt_input("{}: bad WebP: image data", source);
  return out;
}

}  // namespace gemma::image::detail

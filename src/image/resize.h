// PIL's Image.resize((w, h), Image.BILINEAR) (reducing_gap None, no box), bit for bit: the resize
// HF's PIL-backed image processors use. A port of the algorithm of Pillow's libImaging/Resample.c,
// not a float bilinear: the triangle filter's support grows by the scale factor when shrinking
// (so a downscale antialiases), each output pixel's weights are computed in double, normalised,
// then rounded to 22-bit fixed point; a horizontal pass (only over the rows the vertical pass will
// read) then a vertical one, each rounding and clipping to 8 bits; a pass whose size does not
// change is skipped (so is the whole resize when nothing changes).
#pragma once

#include "image/image.h"
#include "util/result.h"

namespace gemma::image {

// width, height >= 1; the input must hold at least one pixel.
Result<Image> resize_bilinear(const Image& in, int width, int height);

}  // namespace gemma::image

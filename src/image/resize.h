// PIL's Image.resize((w, h), Image.BILINEAR) (reducing_gap None, no box), bit for bit: the resize
// HF's PIL-backed image processors use. A port of the algorithm of Pillow's libImaging/Resample.c,
// not a float bilinear: the triangle filter's support grows by the scale factor when shrinking
// (so a downscale antialiases), each output pixel's weights are computed in double, normalised,
// then rounded to 22-bit fixed point; a horizontal pass (only over the rows the vertical pass will
// read) then a vertical one, each rounding and clipping to 8 bits; a pass whose size does not
// change is skipped (so is the whole resize when nothing changes).
// The pass order depends on Pillow's version, and the results differ in the last bit: Pillow 13.0
// runs the vertical pass first when the height shrinks by more than twice as many pixels as the
// width does ((in_h - h) > 0 and (in_h - h) > 2 (in_w - w)); Pillow 12 and older always run the
// horizontal pass first.
#pragma once

#include "image/image.h"
#include "util/result.h"

namespace gemma::image {

enum class PillowVersion { kPillow12, kPillow13 };
// The Pillow whose output the engine reproduces by default: the version HF's processors run with
// today (13.0, checked with transformers 5.25).
constexpr PillowVersion kDefaultPillow = PillowVersion::kPillow13;

// width, height >= 1; the input must hold at least one pixel.
Result<Image> resize_bilinear(const Image& in, int width, int height, PillowVersion pillow = kDefaultPillow);

}  // namespace gemma::image

#include "image/resize.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace gemma::image {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's PRECISION_BITS: 8 bits result, 2 for overflow

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // per output pixel: first input index, number of inputs
  std::vector<int32_t> k;   // per output pixel: ksize fixed-point weights
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size), in the same
// arithmetic (float box edges, double weights, the same rounding of the window's ends).
Coeffs precompute(int in_size, int out_size) {
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;  // bilinear's support is 1
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  const double inv_filterscale = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bilinear_filter((x + xmin - center + 0.5) * inv_filterscale);
      ww += w[x];
    }
    if (ww != 0.0) {
      for (int x = 0; x < xmax; ++x) w[x] /= ww;
    }
    int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = w[x] * (1 << kPrecisionBits);
      k[x] = static_cast<int32_t>(w[x] < 0 ? -0.5 + v : 0.5 + v);
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

// PIL's clip8: the accumulator's integer part, clamped to a byte (its lookup table does the same).
inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Rows [row0, row0 + rows) of `in`, resampled horizontally to out_w.
void horizontal(const uint8_t* in, int in_w, int row0, int rows, const Coeffs& c, int out_w, uint8_t* out) {
  for (int yy = 0; yy < rows; ++yy) {
    const uint8_t* line = in + (static_cast<size_t>(row0) + yy) * in_w * 3;
    uint8_t* dst = out + static_cast<size_t>(yy) * out_w * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = c.bounds[2 * xx], xmax = c.bounds[2 * xx + 1];
      const int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < xmax; ++x) {
        const uint8_t* p = line + static_cast<size_t>(x + xmin) * 3;
        s0 += p[0] * k[x];
        s1 += p[1] * k[x];
        s2 += p[2] * k[x];
      }
      dst[3 * xx] = clip8(s0);
      dst[3 * xx + 1] = clip8(s1);
      dst[3 * xx + 2] = clip8(s2);
    }
  }
}

// Vertical pass; bounds index rows of `in` counted from `row_offset`.
void vertical(const uint8_t* in, int w, const Coeffs& c, int row_offset, int out_h, uint8_t* out) {
  const size_t stride = static_cast<size_t>(w) * 3;
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = c.bounds[2 * yy] - row_offset, ymax = c.bounds[2 * yy + 1];
    const int32_t* k = &c.k[static_cast<size_t>(yy) * c.ksize];
    uint8_t* dst = out + static_cast<size_t>(yy) * stride;
    for (size_t i = 0; i < stride; ++i) {
      int32_t s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) s += in[(static_cast<size_t>(ymin) + y) * stride + i] * k[y];
      dst[i] = clip8(s);
    }
  }
}

}  // namespace

Result<Image> resize_bilinear(const Image& in, int width, int height, PillowVersion pillow) {
  if (width < 1 || height < 1) return invalid_argument("resize to {}x{}: sizes must be positive", width, height);
  if (in.width < 1 || in.height < 1 || in.rgb.size() != in.pixels() * 3)
    return invalid_argument("resize of an empty or inconsistent {}x{} image", in.width, in.height);
  if (width > (1 << 16) || height > (1 << 16)) return invalid_argument("resize to {}x{}: too large", width, height);
  const bool need_h = width != in.width;
  const bool need_v = height != in.height;
  if (!need_h && !need_v) return in;  // PIL returns a copy
  // Pillow 13's ImagingResampleInner: vertical first when the height shrinks much more.
  const int64_t shrink_v = int64_t{in.height} - height, shrink_h = int64_t{in.width} - width;
  const bool horizontal_first = pillow == PillowVersion::kPillow12 || !(shrink_v > 0 && shrink_v > shrink_h * 2);
  Image out;
  if (horizontal_first) {
    const Coeffs cv = precompute(in.height, height);
    // Rows the vertical pass reads: only those are resampled horizontally.
    const int first = cv.bounds[0];
    const int last = cv.bounds[2 * (height - 1)] + cv.bounds[2 * (height - 1) + 1];
    Image tmp;
    const Image* src = &in;
    int row_offset = 0;
    if (need_h) {
      const Coeffs ch = precompute(in.width, width);
      tmp.width = width;
      tmp.height = last - first;
      tmp.rgb.resize(tmp.pixels() * 3);
      horizontal(in.rgb.data(), in.width, first, tmp.height, ch, width, tmp.rgb.data());
      if (!need_v) return tmp;  // first == 0 and last == height: all rows
      src = &tmp;
      row_offset = first;
    }
    out.width = src->width;
    out.height = height;
    out.rgb.resize(out.pixels() * 3);
    vertical(src->rgb.data(), src->width, cv, row_offset, height, out.rgb.data());
    return out;
  }
  // Vertical first (need_v holds here: the height shrinks).
  const Coeffs cv = precompute(in.height, height);
  Image tmp;
  tmp.width = in.width;
  tmp.height = height;
  tmp.rgb.resize(tmp.pixels() * 3);
  vertical(in.rgb.data(), in.width, cv, 0, height, tmp.rgb.data());
  if (!need_h) return tmp;
  const Coeffs ch = precompute(in.width, width);
  out.width = width;
  out.height = height;
  out.rgb.resize(out.pixels() * 3);
  horizontal(tmp.rgb.data(), tmp.width, 0, height, ch, width, out.rgb.data());
  return out;
}

}  // namespace gemma::image

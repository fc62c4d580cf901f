// An 8-bit RGB image in memory, the common currency of the image layer: every decoder ends here
// (after conversion to RGB and EXIF orientation) and the Gemma 3 preprocessor starts here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gemma::image {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height rows of width pixels, R G B interleaved, no row padding

  size_t pixels() const { return static_cast<size_t>(width) * static_cast<size_t>(height); }
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

}  // namespace gemma::image

// Encode time of one image through the vision tower (patch embedding, encoder, pooling,
// projection), for tools/bench_vision.py. Usage:
//   build/bench/vision_bench --mmproj MMPROJ.gguf --image IMG.png [--threads N] [--rounds R] [--precise]
// Prints one line per round, "encode_ms <ms>", after a line with the tower's shape. Decoding and
// preprocessing are timed apart ("preprocess_ms"): llama.cpp's 'image slice encoded in' covers
// the tower only, so encode_ms is the number to set beside it.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "image/decode.h"
#include "image/preprocess.h"
#include "kernels/cpu/cpu_backend.h"
#include "vision/encoder.h"

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int fail(const std::string& what) {
  std::fprintf(stderr, "vision_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mmproj, image_path;
  int threads = 0, rounds = 3;
  bool precise = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--mmproj" && has_value) mmproj = argv[++i];
    else if (a == "--image" && has_value) image_path = argv[++i];
    else if (a == "--threads" && has_value) threads = std::atoi(argv[++i]);
    else if (a == "--rounds" && has_value) rounds = std::atoi(argv[++i]);
    else if (a == "--precise") precise = true;
    else return fail("usage: vision_bench --mmproj PATH --image PATH [--threads N] [--rounds R] [--precise]");
  }
  if (mmproj.empty() || image_path.empty() || rounds < 1) return fail("--mmproj and --image are required");
  auto loaded = gemma::load_vision("", mmproj);
  if (!loaded.ok()) return fail(loaded.error().message);
  gemma::CpuOptions options;
  options.precise = precise;
  gemma::CpuBackend backend(threads > 0 ? threads : 0, options);
  auto enc = gemma::VisionEncoder::create(loaded->config, loaded->text_hidden, loaded->tensors, backend);
  if (!enc.ok()) return fail(enc.error().message);
  const gemma::VisionConfig& c = loaded->config;
  std::printf(
      "tower image %d patch %d hidden %d layers %d heads %d ffn %d tokens %d text_hidden %d threads %d isa %s\n",
      c.image_size, c.patch_size, c.hidden, c.n_layers, c.n_heads, c.ffn, c.tokens_per_image, loaded->text_hidden,
      backend.n_threads(), backend.name());
  auto t0 = std::chrono::steady_clock::now();
  auto decoded = gemma::image::load_image_file(image_path);
  if (!decoded.ok()) return fail(decoded.error().message);
  gemma::image::ProcessorConfig pc;
  pc.image_size = c.image_size;
  auto pre = gemma::image::preprocess(*decoded, pc);
  if (!pre.ok()) return fail(pre.error().message);
  std::printf("preprocess_ms %.1f\n", ms_since(t0));
  for (int r = 0; r < rounds; ++r) {
    t0 = std::chrono::steady_clock::now();
    auto out = (*enc)->encode(pre->pixel_values[0]);
    if (!out.ok()) return fail(out.error().message);
    std::printf("encode_ms %.1f\n", ms_since(t0));
    std::fflush(stdout);
  }
  return 0;
}

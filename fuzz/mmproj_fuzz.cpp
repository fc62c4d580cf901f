// Fuzzes the llama.cpp mmproj reader (GGUF header, clip.* metadata, the v.* / mm.* tensor table)
// and, for what loads, building the vision encoder over it, which checks every tensor's shape and
// extent against the config. Encoding is not run: a fuzzed config may describe a large tower.
#include <cstdint>
#include <memory>

#include "kernels/cpu/cpu_backend.h"
#include "vision/encoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto v = gemma::load_mmproj({data, size}, "fuzz", nullptr);
  if (!v.ok()) return 0;
  const gemma::VisionConfig& c = v->config;
  if (c.image_size <= 0 || c.patch_size <= 0 || c.tokens_per_image <= 0) __builtin_trap();
  // Bound the encoder's activation reservation (address space only) to what the fuzzer tolerates.
  if (static_cast<int64_t>(c.n_patches()) * (c.hidden * 6 + c.ffn) > (int64_t{1} << 26)) return 0;
  gemma::CpuBackend backend(1);
  auto enc = gemma::VisionEncoder::create(c, v->text_hidden, v->tensors, backend);
  if (enc.ok() && (*enc)->tokens_per_image() != c.tokens_per_image) __builtin_trap();
  return 0;
}

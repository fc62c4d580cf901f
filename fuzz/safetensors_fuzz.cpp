// Fuzzes the safetensors reader (JSON header, offsets, shapes, tiling of the data section).
#include <cstdint>

#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gemma::TensorSet ts;
  if (!gemma::parse_safetensors({data, size}, "fuzz.safetensors", nullptr, ts).ok()) return 0;
  for (const auto& [name, t] : ts.all())
    if (t.nbytes && (t.data < data || t.data + t.nbytes > data + size)) __builtin_trap();
  return 0;
}

// Fuzzes the GGUF reader: header, metadata of every type, tensor table, and the typed getters.
#include <cstdint>
#include <memory>

#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = gemma::GgufFile::parse({data, size}, "fuzz.gguf", nullptr);
  if (!f.ok()) return 0;
  for (const auto& [key, value] : (*f)->metadata()) {
    (void)(*f)->get_uint(key);
    (void)(*f)->get_float(key);
    (void)(*f)->get_string(key);
    (void)(*f)->get_string_array(key);
    (void)(*f)->get_float_array(key);
    (void)(*f)->get_int_array(key);
  }
  // Every tensor view must lie inside the input.
  for (const auto& [name, t] : (*f)->tensors().all())
    if (t.nbytes && (t.data < data || t.data + t.nbytes > data + size)) __builtin_trap();
  return 0;
}

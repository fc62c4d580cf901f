// Fuzzes the torch.save reader: the ZIP container, the pickle interpreter, persistent ids and the
// tensor bounds. Every input is also run as a bare pickle, so the interpreter is reached directly.
#include <cstdint>
#include <vector>

#include "formats/torch/pickle.h"
#include "formats/torch/torch_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  (void)gemma::Pickle::parse(bytes, "fuzz.pkl", gemma::PickleLimits{1 << 16, 1 << 16});
  auto tensors = gemma::parse_torch_tensors(bytes, "fuzz.pt");
  if (tensors.ok()) {
    // Every accepted tensor must read only inside its record (ASan checks the gather).
    for (const gemma::TorchTensor& t : *tensors) {
      if (t.storage.data() < data || t.storage.data() + t.storage.size() > data + size) __builtin_trap();
      if (t.nbytes() > (uint64_t{1} << 24)) continue;
      std::vector<uint8_t> out(t.nbytes() + 1);
      t.gather(out.data());
    }
  }
  gemma::TensorSet ts;
  if (!gemma::parse_torch_checkpoint(bytes, "fuzz.pt", nullptr, ts).ok()) return 0;
  for (const auto& [name, t] : ts.all())
    if (t.nbytes && t.data >= data && t.data < data + size && t.data + t.nbytes > data + size) __builtin_trap();
  return 0;
}

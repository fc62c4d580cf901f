// Writes a safetensors file (docs/spec/formats.md §3.1): an 8-byte header length, the JSON header padded
// with spaces to a multiple of 8, then the tensors back to back.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/dtype.h"
#include "util/result.h"

namespace gemma {

class SafetensorsWriter {
 public:
  using Fill = std::function<Status(uint8_t* dst)>;
  // type: F32, F16 or BF16 (the float types the format names).
  Status add_tensor(const std::string& name, DType type, std::vector<int64_t> shape, Fill fill);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  Status write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    Fill fill;
  };
  std::vector<Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace gemma

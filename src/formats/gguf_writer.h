// Writes GGUF v3 files (docs/spec/formats.md §5.1): metadata, a tensor table, then 32-byte aligned data.
// Tensor bytes are produced on demand while writing, so a conversion never holds two copies of
// the weights in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/dtype.h"
#include "util/result.h"

namespace gemma {

class GgufWriter {
 public:
  void set_u32(const std::string& key, uint32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_bool_array(const std::string& key, const std::vector<bool>& v);

  // shape is row-major (outermost first); fill(dst) writes exactly the tensor's bytes.
  using Fill = std::function<Status(uint8_t* dst)>;
  Status add_tensor(const std::string& name, DType type, std::vector<int64_t> shape, Fill fill);

  Status write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    Fill fill;
  };
  std::string kv_;
  uint64_t n_kv_ = 0;
  std::vector<Entry> tensors_;
};

}  // namespace gemma

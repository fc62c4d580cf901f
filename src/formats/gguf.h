// GGUF v2/v3 reader (docs/spec/formats.md §5): metadata, tensor table, and tensors as views into a memory
// map. Hand-written because ggml's own reader would pull in ggml; the format is small and every
// read is bounds-checked (fuzz/gguf_fuzz.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor_set.h"
#include "util/mapped_file.h"
#include "util/result.h"

namespace gemma {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::U8;
  // Scalars: exactly one of these is meaningful, by type.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string_view s;  // points into the mapped file
  // Arrays: element type, count and the raw bytes (elements decoded on demand).
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  std::span<const uint8_t> raw;
};

class GgufFile {
 public:
  // Parses the header, metadata and tensor table of `path`; validates every tensor's type, shape
  // and extent against the file. Errors name the file and the offending key or tensor. `pages`:
  // where the tensors' bytes live (the file's mapping, or a copy on 2 MiB pages).
  static Result<std::shared_ptr<GgufFile>> open(const std::string& path, FilePages pages = FilePages::kMapped);
  // Same, from bytes already in memory (the fuzz target); `owner` keeps them alive.
  static Result<std::shared_ptr<GgufFile>> parse(std::span<const uint8_t> bytes, std::string name,
                                                 std::shared_ptr<const void> owner);

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters: nullopt if absent; an error if present with an unusable type.
  Result<std::optional<uint64_t>> get_uint(std::string_view key) const;
  Result<std::optional<double>> get_float(std::string_view key) const;
  Result<std::optional<bool>> get_bool(std::string_view key) const;
  Result<std::optional<std::string>> get_string(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;

  const TensorSet& tensors() const { return tensors_; }
  TensorSet& tensors() { return tensors_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint64_t data_offset_ = 0;
  uint64_t size_ = 0;
  std::map<std::string, GgufValue, std::less<>> kv_;
  TensorSet tensors_;
};

}  // namespace gemma

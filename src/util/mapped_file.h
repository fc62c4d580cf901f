// A read-only memory map of a whole file. Weights are used in place from the map wherever the
// format stores them in a layout our kernels read (GGUF, safetensors), so loading is cheap and the
// page cache is shared between processes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/result.h"

namespace gemma {

class MappedFile {
 public:
  // Opens and maps `path`. Errors name the path and the reason (missing, a directory, empty...).
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

// Reads a whole (small) file into a string; for JSON configs and the like.
Result<std::string> read_text_file(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace gemma

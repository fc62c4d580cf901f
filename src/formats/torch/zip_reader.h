// The ZIP container of torch.save (docs/spec/formats.md §2.1, §8.1-8.3): stored entries only, each entry's
// data a contiguous range of the file, so entries are spans of the memory map and nothing is
// copied. Sizes and offsets come from the central directory (torch's local headers leave them 0
// and set the data-descriptor flag); ZIP64 records are honoured wherever present.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace gemma {

struct ZipEntry {
  std::string name;          // as stored: "<archive>/data/0"
  uint64_t data_offset = 0;  // file offset of the first data byte
  uint64_t size = 0;         // bytes (stored: compressed size == uncompressed size)
};

class ZipReader {
 public:
  // Parses the central directory of `bytes` and every entry's local header. Rejects what a torch
  // archive never holds: compressed or encrypted entries, multi-disk archives, unsafe names
  // (absolute, "..", empty components, backslashes, NUL), duplicates, data past the central
  // directory. Errors name `source` and the byte offset of the offending record.
  static Result<ZipReader> open(std::span<const uint8_t> bytes, const std::string& source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry named exactly `name`, or nullptr.
  const ZipEntry* find(std::string_view name) const;
  // The entry's data: a view of the bytes given to open().
  std::span<const uint8_t> data(const ZipEntry& e) const {
    return bytes_.subspan(static_cast<size_t>(e.data_offset), static_cast<size_t>(e.size));
  }

 private:
  std::span<const uint8_t> bytes_;
  std::vector<ZipEntry> entries_;
  std::vector<size_t> by_name_;  // indices into entries_, sorted by name
};

}  // namespace gemma

// A read-only memory map of a whole file. Weights are used in place from the map wherever the
// format stores them in a layout our kernels read (GGUF, safetensors), either in the file's own
// pages or in a copy on 2 MiB pages (FilePages), which decode streams faster.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/result.h"

namespace gemma {

// Where a mapped file's bytes live.
enum class FilePages {
  // The file's own mapping: instant start, the page cache shared between processes, but mostly
  // 4 KiB pages (2 MiB only where the kernel cached the file in 2 MiB folios).
  kMapped,
  // Read into anonymous memory on 2 MiB pages (transparent huge pages, MADV_HUGEPAGE): decode,
  // which streams every weight once a token, runs 1.03-1.2x faster (fewer TLB misses, and the
  // hardware prefetchers are not stopped at every 4 KiB boundary). Costs a read of the file at
  // load and the page cache is not shared. Falls back to kMapped where Linux has THP off, or where
  // the file is over 90% of the memory available (a copy cannot be paged back to the file).
  kHuge,
};

class MappedFile {
 public:
  // Opens and maps `path`. Errors name the path and the reason (missing, a directory, empty...).
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path, FilePages pages = FilePages::kMapped);
  // Same, but where the 2 MiB-page copy is granted only the byte ranges in `wanted` (file offsets,
  // [begin, end), clamped to the file) are read; the rest of the copy is never touched, so it
  // stays zero and costs no memory (a 2 MiB page holding part of a wanted range is still faulted
  // in whole). For a checkpoint whose vision tower a text-only load does not need. Mapped, the
  // whole file is mapped as usual: untouched file pages cost nothing either.
  struct Range {
    uint64_t begin, end;
  };
  static Result<std::shared_ptr<MappedFile>> open_ranges(const std::string& path, FilePages pages,
                                                         std::span<const Range> wanted);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Whether the bytes are a copy on 2 MiB pages (kHuge granted) rather than the file's mapping.
  bool huge_pages() const { return huge_; }
  // Bytes read from the file into the copy (0 when mapped): the file's size, or less with open_ranges.
  uint64_t copied_bytes() const { return copied_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size, void* map, size_t map_bytes, bool huge)
      : path_(std::move(path)), data_(data), size_(size), map_(map), map_bytes_(map_bytes), huge_(huge) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
  void* map_;  // what munmap releases: the file's mapping or the anonymous reservation
  size_t map_bytes_;
  bool huge_;
  uint64_t copied_ = 0;
};

// Whether Linux grants transparent huge pages to MADV_HUGEPAGE regions (THP not "never").
bool huge_pages_available();

// MemAvailable from /proc/meminfo (free memory plus what the kernel can reclaim, the page cache
// included), or SIZE_MAX where it cannot be read: what a load may plan to occupy.
size_t available_memory();

// An open descriptor (the caller closes it) on a regular file, and the file's size.
struct RegularFile {
  int fd;
  uint64_t size;
};
// Opens `path` for reading if it is a regular file. A FIFO, a device (/dev/zero) or a directory is
// an error, never a read that blocks or does not end.
Result<RegularFile> open_regular_file(const std::string& path);

// Reads a whole (small) regular file into a string; for JSON configs and the like.
// Larger than max_bytes is an error (a config is kilobytes, tokenizer.json tens of megabytes).
Result<std::string> read_text_file(const std::string& path, uint64_t max_bytes = uint64_t{256} << 20);

bool file_exists(const std::string& path);

}  // namespace gemma

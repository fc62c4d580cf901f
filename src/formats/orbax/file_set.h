// The files of a checkpoint directory, seen through a small interface so that the OCDBT, zarr and
// Orbax readers run unchanged on a real directory (memory-mapped) or on an in-memory set of files
// (the fuzz target and hostile-input tests). Paths are relative, '/'-separated, never "..".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"

namespace gemma {

struct FileBytes {
  std::span<const uint8_t> bytes;
  std::shared_ptr<const void> owner;  // keeps `bytes` alive
};

class FileSet {
 public:
  virtual ~FileSet() = default;
  // The whole content of file `rel`; an error naming it if it is missing or unreadable.
  virtual Result<FileBytes> read(const std::string& rel) const = 0;
  virtual bool is_file(const std::string& rel) const = 0;
  // Names in directory `rel` ("" = the root), sorted, with whether each is a directory.
  virtual std::vector<std::pair<std::string, bool>> list(const std::string& rel) const = 0;
  // A path for messages: the real path on disk, or "<set name>/<rel>".
  virtual std::string path(const std::string& rel) const = 0;
};

// `a/b` joined with `c`; either may be empty.
std::string join_path(const std::string& a, const std::string& b);

// A path taken from a file (a data-file table) must stay inside the root: relative, no "..", no NUL.
bool is_safe_relative_path(std::string_view p);

// A directory on disk; files are memory-mapped.
std::shared_ptr<FileSet> disk_file_set(const std::string& root);

// Files held in memory, keyed by relative path; directories are implied by the paths.
std::shared_ptr<FileSet> memory_file_set(std::string name, std::map<std::string, std::string> files);

}  // namespace gemma

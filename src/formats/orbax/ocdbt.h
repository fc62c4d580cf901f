// Read-only OCDBT (tensorstore's "optionally-cooperative distributed B+tree") key/value databases,
// the store under Orbax checkpoints (docs/spec/formats.md §1.2). Only the newest version is read: the
// manifest (single, or config-only plus numbered manifest.<16 hex>) names the b-tree root, the
// tree is walked once and every key is indexed; values are views into memory-mapped data files.
// Every object is bounds-checked, CRC-32C verified and size-limited, so a hostile directory is an
// error naming the file and the problem (fuzz/orbax_fuzz.cpp feeds the parsers raw bytes).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/orbax/file_set.h"
#include "util/result.h"

namespace gemma {

// CRC-32C (Castagnoli), as OCDBT and zarr3 shard indexes use it.
uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc = 0);

struct OcdbtLimits {
  uint64_t max_manifest_bytes = uint64_t{1} << 28;  // decompressed manifest body
  uint64_t max_node_bytes = uint64_t{1} << 30;      // decompressed b-tree node (Orbax writes <= 100 MB)
};

// A byte range of a data file. `file` is the full path relative to the database directory.
struct OcdbtFileRange {
  std::string file;
  std::string transitive;  // transitive path for children of a node stored here (docs/spec/formats.md §1.2.2)
  uint64_t offset = 0;
  uint64_t length = 0;
  bool missing() const { return offset == UINT64_MAX && length == UINT64_MAX; }
};

struct OcdbtValue {
  bool out_of_line = false;
  std::string inline_bytes;  // when !out_of_line
  OcdbtFileRange range;      // when out_of_line
};

struct OcdbtConfig {
  uint8_t uuid[16] = {};
  uint8_t manifest_kind = 0;  // 0 single, 1 numbered
  uint32_t max_inline_value_bytes = 0;
  uint32_t max_decoded_node_bytes = 0;
  uint8_t version_tree_arity_log2 = 0;
  uint32_t compression = 0;  // 0 none, 1 zstd
  int32_t zstd_level = 0;
};

struct OcdbtVersion {
  uint64_t generation = 0;
  uint8_t root_height = 0;
  OcdbtFileRange root;  // missing() for an empty tree
  uint64_t num_keys = 0;
  uint64_t commit_time_ns = 0;
};

struct OcdbtManifest {
  OcdbtConfig config;
  std::vector<OcdbtVersion> versions;  // inline versions, oldest first (empty for a config-only manifest)
  size_t n_version_tree_nodes = 0;     // references to older versions (never followed)
};

struct OcdbtLeafEntry {
  std::string key;  // relative to the prefix the node inherits
  OcdbtValue value;
};

struct OcdbtChildEntry {
  std::string key;                   // relative to the prefix the node inherits
  size_t subtree_common_prefix = 0;  // bytes of `key` that the child's keys all share and omit
  OcdbtFileRange node;
  uint64_t num_keys = 0;
};

struct OcdbtBtreeNode {
  uint8_t height = 0;  // 0 = leaf
  std::vector<OcdbtLeafEntry> leaves;
  std::vector<OcdbtChildEntry> children;
};

// Checks an encoded object's envelope (magic, length, version, CRC-32C) and returns its body,
// decompressed if needed (at most max_body bytes). `what` names the object kind in errors.
Result<std::string> ocdbt_decode_envelope(std::span<const uint8_t> bytes, uint32_t magic, const char* what,
                                          const std::string& name, uint64_t max_body);

// Parses a whole manifest file. `name` is used in errors.
Result<OcdbtManifest> parse_ocdbt_manifest(std::span<const uint8_t> bytes, const std::string& name,
                                           const OcdbtLimits& limits = {});

// Parses one encoded b-tree node; `transitive` is the transitive path its data-file table extends.
Result<OcdbtBtreeNode> parse_ocdbt_btree_node(std::span<const uint8_t> bytes, const std::string& transitive,
                                              const std::string& name, const OcdbtLimits& limits = {});

// One OCDBT database (a directory holding manifest.ocdbt), newest version, fully indexed.
class OcdbtDatabase {
 public:
  static Result<std::shared_ptr<OcdbtDatabase>> open(const std::string& dir, const OcdbtLimits& limits = {});
  // The database rooted at `root` ("" = the top) of a file set.
  static Result<std::shared_ptr<OcdbtDatabase>> open(std::shared_ptr<const FileSet> files, const std::string& root,
                                                     const OcdbtLimits& limits = {});

  const std::string& dir() const { return dir_; }  // for messages
  const OcdbtManifest& manifest() const { return manifest_; }
  std::vector<std::string> keys() const;
  bool contains(std::string_view key) const { return entries_.count(key) != 0; }
  size_t size() const { return entries_.size(); }

  // The bytes stored under `key`: a view into a mapped data file (or the inline value), valid as
  // long as the database. An error if the key is absent or its range lies outside its file.
  Result<std::span<const uint8_t>> read(std::string_view key) const;
  // Where a value lives, for error messages: "<dir>/d/<id> [offset, +length)" or "inline".
  std::string describe(std::string_view key) const;

 private:
  OcdbtDatabase(std::shared_ptr<const FileSet> files, std::string root, OcdbtLimits limits)
      : files_(std::move(files)), root_(std::move(root)), dir_(files_->path(root_)), limits_(limits) {}
  Result<std::span<const uint8_t>> map_range(const OcdbtFileRange& r, const char* what) const;
  Status walk(const OcdbtFileRange& ref, int expected_height, const std::string& inherited, const std::string& min_key,
              int depth);

  std::shared_ptr<const FileSet> files_;
  std::string root_;
  std::string dir_;
  OcdbtLimits limits_;
  OcdbtManifest manifest_;
  std::map<std::string, OcdbtValue, std::less<>> entries_;
  std::set<std::string> visited_;  // nodes walked ("file@offset"): rejects cycles and shared subtrees
  mutable std::mutex mu_;
  mutable std::map<std::string, FileBytes> data_files_;  // data files opened so far
};

}  // namespace gemma

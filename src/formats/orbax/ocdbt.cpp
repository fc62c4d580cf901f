#include "formats/orbax/ocdbt.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include "util/byte_reader.h"
#include "util/zstd_file.h"

namespace gemma {

namespace {

constexpr uint32_t kManifestMagic = 0x0cdb3a2a;
constexpr uint32_t kBtreeNodeMagic = 0x0cdb20de;
constexpr uint64_t kMaxPathLength = 65535;
constexpr uint64_t kMaxKeyLength = 65535;
constexpr uint64_t kMaxNodeArity = 1024 * 1024;
constexpr uint64_t kMaxInlineValueLength = 1024 * 1024;
constexpr uint64_t kMaxOffset = static_cast<uint64_t>(INT64_MAX);

// CRC-32C is hand-written: it is 15 lines, libzstd does not export one, and a dependency (abseil,
// crc32c) for checksumming a few manifests and nodes is not worth it. Reflected polynomial 0x82F63B78.
constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Reads a varint that must fit `max` (tensorstore decodes most fields as 32- or 16-bit varints).
uint64_t read_varint_max(ByteReader& r, uint64_t max) {
  const uint64_t v = r.read_varint();
  if (v > max) r.fail();
  return v;
}

struct DataFile {
  std::string base;  // transitive path + base_path: the transitive path of nodes read from this file
  std::string full;  // transitive path + base_path + relative_path, relative to the database root
};

// Data-file table (docs/spec/formats.md §1.2.2). Paths are prefix-compressed against the previous path.
bool read_data_file_table(ByteReader& r, const std::string& transitive, std::vector<DataFile>& files,
                          std::string& why) {
  const uint64_t n = r.read_varint();
  if (!r.ok()) return false;
  if (n > r.remaining()) {  // each file takes at least two length bytes
    why = fmt::format("data-file table claims {} files in {} bytes", n, r.remaining());
    return false;
  }
  std::vector<uint64_t> prefix(n, 0), suffix(n), base(n);
  for (uint64_t i = 1; i < n; ++i) prefix[i] = read_varint_max(r, kMaxPathLength);
  for (uint64_t i = 0; i < n; ++i) suffix[i] = read_varint_max(r, kMaxPathLength);
  for (uint64_t i = 0; i < n; ++i) base[i] = read_varint_max(r, kMaxPathLength);
  if (!r.ok()) return false;
  files.assign(n, {});
  std::string prev;
  for (uint64_t i = 0; i < n; ++i) {
    if (prefix[i] > prev.size()) {
      why =
          fmt::format("data file {}: prefix length {} exceeds the previous path ({} bytes)", i, prefix[i], prev.size());
      return false;
    }
    std::string path = prev.substr(0, prefix[i]);
    path += r.take_string(suffix[i]);
    if (!r.ok()) return false;
    if (path.size() + transitive.size() > kMaxPathLength || base[i] > path.size()) {
      why = fmt::format("data file {}: invalid path or base-path length", i);
      return false;
    }
    files[i].base = transitive + path.substr(0, base[i]);
    files[i].full = transitive + path;
    prev = std::move(path);
  }
  return true;
}

// Reads n data-file references as OCDBT lays them out: n file ids, n offsets, n lengths.
bool read_ranges(ByteReader& r, const std::vector<DataFile>& files, std::vector<OcdbtFileRange>& out,
                 bool allow_missing, std::string& why) {
  std::vector<uint64_t> ids(out.size());
  for (auto& id : ids) id = r.read_varint();
  for (auto& o : out) o.offset = r.read_varint();
  for (auto& o : out) o.length = r.read_varint();
  if (!r.ok()) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    if (ids[i] >= files.size()) {
      why = fmt::format("data file id {} is outside the table of {} files", ids[i], files.size());
      return false;
    }
    out[i].file = files[ids[i]].full;
    out[i].transitive = files[ids[i]].base;
    if (allow_missing && out[i].missing()) continue;
    if (out[i].offset > kMaxOffset || out[i].length > kMaxOffset - out[i].offset) {
      why = fmt::format("invalid offset/length pair {}/{} in {}", out[i].offset, out[i].length, out[i].file);
      return false;
    }
  }
  return true;
}

}  // namespace

uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc) {
  crc = ~crc;
  for (uint8_t b : bytes) crc = kCrcTable[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

Result<std::string> ocdbt_decode_envelope(std::span<const uint8_t> bytes, uint32_t magic, const char* what,
                                          const std::string& name, uint64_t max_body) {
  if (bytes.size() < 16)
    return corrupt_input("{}: {} is {} bytes, shorter than the 16-byte OCDBT envelope (truncated)", name, what,
                         bytes.size());
  const uint32_t got = read_be32(bytes.data());
  if (got != magic) return corrupt_input("{}: {} has bad magic 0x{:08x} (expected 0x{:08x})", name, what, got, magic);
  ByteReader r(bytes);
  r.skip(4);
  const uint64_t length = r.read<uint64_t>();
  if (length != bytes.size())
    return corrupt_input("{}: {} header says {} bytes but it has {} (truncated or corrupt)", name, what, length,
                         bytes.size());
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  const uint32_t computed = crc32c(bytes.first(bytes.size() - 4));
  if (stored != computed)
    return corrupt_input("{}: {} CRC-32C mismatch (stored 0x{:08x}, computed 0x{:08x}): corrupt data", name, what,
                         stored, computed);
  ByteReader h(bytes.subspan(12, bytes.size() - 16));
  const uint64_t version = h.read_varint();
  const uint64_t compression = h.read_varint();
  if (!h.ok()) return corrupt_input("{}: {} header is malformed", name, what);
  if (version != 0) return unsupported("{}: {} has format version {}, only 0 is supported", name, what, version);
  auto rest = bytes.subspan(12 + h.pos(), h.remaining());
  if (compression == 0) {
    if (rest.size() > max_body) return corrupt_input("{}: {} body exceeds {} bytes", name, what, max_body);
    return std::string(reinterpret_cast<const char*>(rest.data()), rest.size());
  }
  if (compression != 1) return corrupt_input("{}: {} has unknown compression format {}", name, what, compression);
  auto body = zstd_decompress(rest, max_body);
  if (!body.ok()) return with_context(std::move(body).error(), fmt::format("{}: {}", name, what));
  return std::move(body).value();
}

Result<OcdbtManifest> parse_ocdbt_manifest(std::span<const uint8_t> bytes, const std::string& name,
                                           const OcdbtLimits& limits) {
  GE_ASSIGN(std::string body,
            ocdbt_decode_envelope(bytes, kManifestMagic, "manifest", name, limits.max_manifest_bytes));
  ByteReader r({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
  OcdbtManifest m;
  OcdbtConfig& c = m.config;
  for (uint8_t& b : c.uuid) b = r.read<uint8_t>();
  c.manifest_kind = r.read<uint8_t>();
  c.max_inline_value_bytes = static_cast<uint32_t>(read_varint_max(r, UINT32_MAX));
  c.max_decoded_node_bytes = static_cast<uint32_t>(read_varint_max(r, UINT32_MAX));
  c.version_tree_arity_log2 = r.read<uint8_t>();
  c.compression = static_cast<uint32_t>(read_varint_max(r, UINT32_MAX));
  if (!r.ok()) return corrupt_input("{}: manifest config is truncated", name);
  if (c.manifest_kind > 1) return corrupt_input("{}: manifest has unknown manifest_kind {}", name, c.manifest_kind);
  if (c.version_tree_arity_log2 == 0 || c.version_tree_arity_log2 > 16)
    return corrupt_input("{}: manifest version_tree_arity_log2 {} is outside [1, 16]", name, c.version_tree_arity_log2);
  if (c.compression > 1) return corrupt_input("{}: manifest has unknown compression method {}", name, c.compression);
  if (c.compression == 1) {
    c.zstd_level = r.read<int32_t>();
    if (!r.ok()) return corrupt_input("{}: manifest config is truncated", name);
    if (!zstd_level_valid(c.zstd_level))
      return corrupt_input("{}: manifest zstd level {} is out of range", name, c.zstd_level);
  }
  if (c.manifest_kind == 1) {  // config only: the versions are in manifest.<generation>
    if (!r.at_end()) return corrupt_input("{}: config-only manifest has {} trailing bytes", name, r.remaining());
    return m;
  }
  std::vector<DataFile> files;
  std::string why;
  if (!read_data_file_table(r, "", files, why))
    return corrupt_input("{}: manifest data-file table is {}", name, why.empty() ? "truncated" : "invalid: " + why);

  // Inline version-tree leaf entries: the newest versions (docs/spec/formats.md §1.2.3).
  const uint64_t n = r.read_varint();
  if (!r.ok()) return corrupt_input("{}: manifest is truncated in the version list", name);
  if (n == 0 || n > (uint64_t{1} << c.version_tree_arity_log2))
    return corrupt_input("{}: manifest lists {} versions, expected 1 to {}", name, n,
                         uint64_t{1} << c.version_tree_arity_log2);
  if (n > r.remaining()) return corrupt_input("{}: manifest is truncated in the version list", name);
  m.versions.resize(n);
  for (auto& v : m.versions) v.generation = r.read_varint();
  for (auto& v : m.versions) v.root_height = r.read<uint8_t>();
  std::vector<OcdbtFileRange> roots(n);
  if (!read_ranges(r, files, roots, /*allow_missing=*/true, why))
    return corrupt_input("{}: manifest version list is {}", name, why.empty() ? "truncated" : "invalid: " + why);
  for (auto& v : m.versions) v.num_keys = r.read_varint();
  for (uint64_t i = 0; i < n; ++i) (void)r.read_varint();  // num_tree_bytes
  for (uint64_t i = 0; i < n; ++i) (void)r.read_varint();  // num_indirect_value_bytes
  for (auto& v : m.versions) v.commit_time_ns = r.read<uint64_t>();
  if (!r.ok()) return corrupt_input("{}: manifest is truncated in the version list", name);
  for (uint64_t i = 0; i < n; ++i) {
    m.versions[i].root = std::move(roots[i]);
    if (m.versions[i].generation == 0 || (i > 0 && m.versions[i].generation <= m.versions[i - 1].generation))
      return corrupt_input("{}: manifest version generations are not increasing", name);
    if (m.versions[i].root.missing() && m.versions[i].root_height != 0)
      return corrupt_input("{}: manifest has an empty version with root height {}", name, m.versions[i].root_height);
  }

  // References to version-tree nodes holding older versions: parsed to validate, never followed.
  const uint64_t max_height = 63 / c.version_tree_arity_log2 - 1;
  const uint64_t nv = r.read_varint();
  if (!r.ok() || nv > max_height || nv > r.remaining())
    return corrupt_input("{}: manifest version-tree node list is malformed", name);
  std::vector<OcdbtFileRange> nodes(nv);
  for (uint64_t i = 0; i < nv; ++i) (void)r.read_varint();  // generation_number
  if (!read_ranges(r, files, nodes, /*allow_missing=*/false, why))
    return corrupt_input("{}: manifest version-tree node list is {}", name,
                         why.empty() ? "truncated" : "invalid: " + why);
  for (uint64_t i = 0; i < nv; ++i) (void)r.read_varint();     // num_generations
  for (uint64_t i = 0; i < nv; ++i) (void)r.read<uint64_t>();  // commit_time
  for (uint64_t i = 0; i < nv; ++i) {
    const uint8_t h = r.read<uint8_t>();
    if (r.ok() && (h == 0 || h > max_height))
      return corrupt_input("{}: manifest version-tree node height {} is invalid", name, h);
  }
  if (!r.ok()) return corrupt_input("{}: manifest is truncated in the version-tree node list", name);
  if (!r.at_end()) return corrupt_input("{}: manifest has {} trailing bytes", name, r.remaining());
  m.n_version_tree_nodes = nv;
  return m;
}

Result<OcdbtBtreeNode> parse_ocdbt_btree_node(std::span<const uint8_t> bytes, const std::string& transitive,
                                              const std::string& name, const OcdbtLimits& limits) {
  GE_ASSIGN(std::string body,
            ocdbt_decode_envelope(bytes, kBtreeNodeMagic, "b-tree node", name, limits.max_node_bytes));
  ByteReader r({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
  OcdbtBtreeNode node;
  node.height = r.read<uint8_t>();
  std::vector<DataFile> files;
  std::string why;
  if (!r.ok() || !read_data_file_table(r, transitive, files, why))
    return corrupt_input("{}: b-tree node data-file table is {}", name, why.empty() ? "truncated" : "invalid: " + why);
  const uint64_t n = r.read_varint();
  if (!r.ok()) return corrupt_input("{}: b-tree node is truncated before its entries", name);
  if (n == 0 || n > kMaxNodeArity || n > r.remaining())
    return corrupt_input("{}: b-tree node has {} entries (expected 1 to {}, within its {} bytes)", name, n,
                         kMaxNodeArity, body.size());
  const bool leaf = node.height == 0;

  // Key columns: prefix lengths (shared with the previous key), suffix lengths, [subtree prefixes], suffixes.
  std::vector<uint64_t> prefix(n, 0), suffix(n), subtree(leaf ? 0 : n);
  for (uint64_t i = 1; i < n; ++i) prefix[i] = read_varint_max(r, kMaxKeyLength);
  for (uint64_t i = 0; i < n; ++i) suffix[i] = read_varint_max(r, kMaxKeyLength);
  for (auto& s : subtree) s = read_varint_max(r, kMaxKeyLength);
  if (!r.ok())
    return corrupt_input("{}: b-tree node key lengths are truncated or exceed {} bytes", name, kMaxKeyLength);
  std::vector<std::string> keys(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (i > 0 && prefix[i] > keys[i - 1].size())
      return corrupt_input("{}: b-tree key {} shares {} bytes with a {}-byte previous key", name, i, prefix[i],
                           keys[i - 1].size());
    if (prefix[i] + suffix[i] > kMaxKeyLength)
      return corrupt_input("{}: b-tree key {} exceeds {} bytes", name, i, kMaxKeyLength);
    if (i > 0) keys[i] = keys[i - 1].substr(0, prefix[i]);
    keys[i] += r.take_string(suffix[i]);
    if (!r.ok()) return corrupt_input("{}: b-tree node key bytes are truncated", name);
    if (i > 0 && keys[i] <= keys[i - 1]) return corrupt_input("{}: b-tree node keys are not in increasing order", name);
    if (!leaf && subtree[i] > keys[i].size())
      return corrupt_input("{}: b-tree entry {} subtree prefix {} exceeds its key length {}", name, i, subtree[i],
                           keys[i].size());
  }

  if (leaf) {
    std::vector<uint64_t> lengths(n);
    for (auto& l : lengths) l = r.read_varint();
    std::vector<uint8_t> kinds(n);
    for (auto& k : kinds) k = r.read<uint8_t>();
    if (!r.ok()) return corrupt_input("{}: b-tree leaf value table is truncated", name);
    node.leaves.resize(n);
    size_t n_out = 0;
    for (uint64_t i = 0; i < n; ++i) {
      if (kinds[i] > 1) return corrupt_input("{}: b-tree leaf entry {} has unknown value kind {}", name, i, kinds[i]);
      if (kinds[i] == 0 && lengths[i] > kMaxInlineValueLength)
        return corrupt_input("{}: b-tree leaf entry {} has an inline value of {} bytes (limit {})", name, i, lengths[i],
                             kMaxInlineValueLength);
      n_out += kinds[i];
    }
    std::vector<OcdbtFileRange> ranges(n_out);
    {
      // Out-of-line values: file ids, then offsets (their lengths were in the length column).
      std::vector<uint64_t> ids(n_out);
      for (auto& id : ids) id = r.read_varint();
      for (auto& o : ranges) o.offset = r.read_varint();
      if (!r.ok()) return corrupt_input("{}: b-tree leaf value references are truncated", name);
      for (size_t j = 0, k = 0; j < n; ++j) {
        if (!kinds[j]) continue;
        if (ids[k] >= files.size())
          return corrupt_input("{}: b-tree leaf value references data file {} of {}", name, ids[k], files.size());
        ranges[k].file = files[ids[k]].full;
        ranges[k].transitive = files[ids[k]].base;
        ranges[k].length = lengths[j];
        if (ranges[k].offset > kMaxOffset || ranges[k].length > kMaxOffset - ranges[k].offset)
          return corrupt_input("{}: b-tree leaf entry {} has invalid offset/length {}/{}", name, j, ranges[k].offset,
                               ranges[k].length);
        ++k;
      }
    }
    for (uint64_t i = 0, k = 0; i < n; ++i) {
      OcdbtLeafEntry& e = node.leaves[i];
      e.key = std::move(keys[i]);
      e.value.out_of_line = kinds[i] == 1;
      if (e.value.out_of_line) {
        e.value.range = std::move(ranges[k++]);
      } else {
        e.value.inline_bytes = std::string(r.take_string(lengths[i]));
        if (!r.ok()) return corrupt_input("{}: b-tree leaf inline value {} is truncated", name, i);
      }
    }
  } else {
    std::vector<OcdbtFileRange> ranges(n);
    if (!read_ranges(r, files, ranges, /*allow_missing=*/false, why))
      return corrupt_input("{}: b-tree child references are {}", name, why.empty() ? "truncated" : "invalid: " + why);
    node.children.resize(n);
    for (auto& c : node.children) c.num_keys = r.read_varint();
    for (uint64_t i = 0; i < n; ++i) (void)r.read_varint();  // num_tree_bytes
    for (uint64_t i = 0; i < n; ++i) (void)r.read_varint();  // num_indirect_value_bytes
    if (!r.ok()) return corrupt_input("{}: b-tree child statistics are truncated", name);
    for (uint64_t i = 0; i < n; ++i) {
      node.children[i].key = std::move(keys[i]);
      node.children[i].subtree_common_prefix = subtree[i];
      node.children[i].node = std::move(ranges[i]);
    }
  }
  if (!r.at_end()) return corrupt_input("{}: b-tree node has {} trailing bytes", name, r.remaining());
  return node;
}

Result<std::shared_ptr<OcdbtDatabase>> OcdbtDatabase::open(const std::string& dir, const OcdbtLimits& limits) {
  return open(disk_file_set(dir), "", limits);
}

Result<std::shared_ptr<OcdbtDatabase>> OcdbtDatabase::open(std::shared_ptr<const FileSet> files,
                                                           const std::string& root, const OcdbtLimits& limits) {
  const std::string manifest_rel = join_path(root, "manifest.ocdbt");
  if (!files->is_file(manifest_rel))
    return not_found("{}: no manifest.ocdbt (not an OCDBT database)", files->path(root));
  auto db = std::shared_ptr<OcdbtDatabase>(new OcdbtDatabase(std::move(files), root, limits));
  {
    GE_ASSIGN(FileBytes f, db->files_->read(manifest_rel));
    GE_ASSIGN(db->manifest_, parse_ocdbt_manifest(f.bytes, db->files_->path(manifest_rel), limits));
  }
  if (db->manifest_.config.manifest_kind == 1) {
    // Numbered manifests: manifest.<16 lowercase hex digits>, the largest generation is the newest.
    std::string best;
    for (const auto& [f, is_dir] : db->files_->list(root)) {
      if (is_dir || f.size() != 25 || f.compare(0, 9, "manifest.") != 0) continue;
      if (!std::all_of(f.begin() + 9, f.end(), [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)); }))
        continue;
      if (f > best) best = f;
    }
    if (best.empty())
      return not_found("{}: manifest.ocdbt is config-only but no numbered manifest.<hex> exists", db->dir_);
    const std::string numbered = join_path(root, best);
    GE_ASSIGN(FileBytes f, db->files_->read(numbered));
    GE_ASSIGN(db->manifest_, parse_ocdbt_manifest(f.bytes, db->files_->path(numbered), limits));
    if (db->manifest_.versions.empty())
      return corrupt_input("{}: numbered manifest holds no versions", db->files_->path(numbered));
  }
  const OcdbtVersion& newest = db->manifest_.versions.back();
  if (!newest.root.missing()) GE_TRY(db->walk(newest.root, newest.root_height, "", "", 0));
  db->visited_.clear();
  return db;
}

Result<std::span<const uint8_t>> OcdbtDatabase::map_range(const OcdbtFileRange& r, const char* what) const {
  if (!is_safe_relative_path(r.file))
    return corrupt_input("{}: {} refers to data file '{}', which is outside the database directory", dir_, what,
                         r.file);
  const std::string rel = join_path(root_, r.file);
  std::span<const uint8_t> bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_files_.find(r.file);
    if (it == data_files_.end()) {
      auto f = files_->read(rel);
      if (!f.ok()) {  // a suffix rather than a prefix, but the kind (absent, unreadable) is still the file's
        Error e = std::move(f).error();
        e.message = fmt::format("{} (data file of a {} in {})", e.message, what, dir_);
        return e;
      }
      it = data_files_.emplace(r.file, std::move(f).value()).first;
    }
    bytes = it->second.bytes;
  }
  if (r.offset > bytes.size() || r.length > bytes.size() - r.offset)
    return corrupt_input("{}: {} [{}, +{}) lies outside the file ({} bytes)", files_->path(rel), what, r.offset,
                         r.length, bytes.size());
  return bytes.subspan(static_cast<size_t>(r.offset), static_cast<size_t>(r.length));
}

Status OcdbtDatabase::walk(const OcdbtFileRange& ref, int expected_height, const std::string& inherited,
                           const std::string& min_key, int depth) {
  const std::string where =
      fmt::format("{} [{}, +{})", files_->path(join_path(root_, ref.file)), ref.offset, ref.length);
  if (!visited_.insert(ref.file + "@" + std::to_string(ref.offset)).second)
    return corrupt_input("{}: b-tree node is referenced twice (a cycle in the tree)", where);
  GE_ASSIGN(auto bytes, map_range(ref, "b-tree node"));
  GE_ASSIGN(OcdbtBtreeNode node, parse_ocdbt_btree_node(bytes, ref.transitive, where, limits_));
  if (node.height != expected_height)
    return corrupt_input("{}: b-tree node has height {}, its parent expects {}", where, node.height, expected_height);
  for (OcdbtLeafEntry& e : node.leaves) {
    std::string key = inherited + e.key;
    if (key < min_key) return corrupt_input("{}: key '{}' precedes its parent's bound '{}'", where, key, min_key);
    if (key.size() > kMaxKeyLength) return corrupt_input("{}: key of {} bytes exceeds the limit", where, key.size());
    if (!entries_.emplace(std::move(key), std::move(e.value)).second)
      return corrupt_input("{}: key '{}' appears twice in the tree", where, inherited + e.key);
  }
  for (const OcdbtChildEntry& c : node.children) {
    const std::string child_min = inherited + c.key;
    if (child_min < min_key)
      return corrupt_input("{}: key '{}' precedes its parent's bound '{}'", where, child_min, min_key);
    GE_TRY(
        walk(c.node, expected_height - 1, inherited + c.key.substr(0, c.subtree_common_prefix), child_min, depth + 1));
  }
  return {};
}

std::vector<std::string> OcdbtDatabase::keys() const {
  std::vector<std::string> k;
  k.reserve(entries_.size());
  for (const auto& [key, v] : entries_) k.push_back(key);
  return k;
}

Result<std::span<const uint8_t>> OcdbtDatabase::read(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return not_found("{}: no key '{}' in the OCDBT database", dir_, key);
  const OcdbtValue& v = it->second;
  if (!v.out_of_line)
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.inline_bytes.data()), v.inline_bytes.size());
  if (v.range.length == 0) return std::span<const uint8_t>();
  return map_range(v.range, "value");
}

std::string OcdbtDatabase::describe(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return fmt::format("{} (no key '{}')", dir_, key);
  const OcdbtValue& v = it->second;
  if (!v.out_of_line) return fmt::format("{} key '{}' (inline value)", dir_, key);
  return fmt::format("{} key '{}' ({} [{}, +{}))", dir_, key, files_->path(join_path(root_, v.range.file)),
                     v.range.offset, v.range.length);
}

}  // namespace gemma

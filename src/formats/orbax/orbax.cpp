#include "formats/orbax/orbax.h"

#include <algorithm>
#include <map>
#include <new>

namespace gemma {

namespace {

constexpr int kMaxDirDepth = 64;
constexpr size_t kMaxDirEntries = 10'000'000;

// Registers the array whose metadata sits at `key` ("<name>/.zarray" or "<name>/zarr.json").
Status add_array(std::vector<OrbaxArray>& arrays, const std::string& name, bool v3, std::span<const uint8_t> text,
                 const std::string& where) {
  std::string_view s(reinterpret_cast<const char*>(text.data()), text.size());
  if (v3) {
    auto m = parse_zarr_json(s, where);
    if (!m.ok()) {
      // A group's zarr.json is not an array; Orbax does not write groups, but tolerate them.
      if (s.find("\"group\"") != std::string_view::npos) return {};
      return std::move(m).error();
    }
    arrays.push_back({name, std::move(m).value()});
  } else {
    GE_ASSIGN(auto m, parse_zarray(s, where));
    arrays.push_back({name, std::move(m)});
  }
  return {};
}

Status finish_arrays(std::vector<OrbaxArray>& arrays, const std::string& path) {
  std::sort(arrays.begin(), arrays.end(), [](const OrbaxArray& a, const OrbaxArray& b) { return a.name < b.name; });
  for (size_t i = 1; i < arrays.size(); ++i)
    if (arrays[i].name == arrays[i - 1].name)
      return corrupt_input("{}: array '{}' has both .zarray and zarr.json metadata", path, arrays[i].name);
  return {};
}

// Splits "<name>/.zarray" / "<name>/zarr.json" keys; false for anything else.
bool metadata_key(const std::string& key, std::string& name, bool& v3) {
  for (const auto& [suffix, is3] : {std::pair<std::string, bool>{"/.zarray", false}, {"/zarr.json", true}}) {
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
      name = key.substr(0, key.size() - suffix.size());
      v3 = is3;
      return true;
    }
  }
  return false;
}

// OCDBT: a merged root, or the union of the per-process databases.
class OcdbtCheckpoint : public OrbaxCheckpoint {
 public:
  static Result<std::unique_ptr<OrbaxCheckpoint>> make(std::vector<std::shared_ptr<OcdbtDatabase>> dbs, bool merged,
                                                       std::string path) {
    auto c = std::unique_ptr<OcdbtCheckpoint>(new OcdbtCheckpoint());
    c->dbs_ = std::move(dbs);
    c->merged_ = merged;
    c->path_ = std::move(path);
    std::map<std::string, bool> seen;
    for (const auto& db : c->dbs_) {
      for (const std::string& key : db->keys()) {
        std::string name;
        bool v3 = false;
        if (!metadata_key(key, name, v3) || seen.count(key)) continue;  // the first process wins
        seen[key] = true;
        GE_ASSIGN(auto text, db->read(key));
        GE_TRY(add_array(c->arrays_, name, v3, text, db->dir() + " key '" + key + "'"));
      }
    }
    GE_TRY(finish_arrays(c->arrays_, c->path_));
    return std::unique_ptr<OrbaxCheckpoint>(std::move(c));
  }

  std::string layout() const override {
    return merged_ ? "OCDBT (root manifest)"
                   : fmt::format("OCDBT ({} per-process database{})", dbs_.size(), dbs_.size() == 1 ? "" : "s");
  }

  Status read(const OrbaxArray& a, std::span<uint8_t> out) const override {
    auto fetch = [&](const std::string& chunk) -> Result<std::optional<std::span<const uint8_t>>> {
      const std::string key = a.name + "/" + chunk;
      for (const auto& db : dbs_) {
        if (!db->contains(key)) continue;
        GE_ASSIGN(auto bytes, db->read(key));
        return std::optional<std::span<const uint8_t>>(bytes);
      }
      return std::optional<std::span<const uint8_t>>();
    };
    return zarr_read_array(a.meta, fetch, out, path_ + " array '" + a.name + "'");
  }

 private:
  std::vector<std::shared_ptr<OcdbtDatabase>> dbs_;
  bool merged_ = false;
};

// The older layout: one zarr directory per array under the checkpoint directory.
class ZarrDirCheckpoint : public OrbaxCheckpoint {
 public:
  static Result<std::unique_ptr<OrbaxCheckpoint>> make(std::shared_ptr<const FileSet> files) {
    auto c = std::unique_ptr<ZarrDirCheckpoint>(new ZarrDirCheckpoint());
    c->files_ = std::move(files);
    c->path_ = c->files_->path("");
    size_t entries = 0;
    GE_TRY(c->scan("", 0, entries));
    GE_TRY(finish_arrays(c->arrays_, c->path_));
    return std::unique_ptr<OrbaxCheckpoint>(std::move(c));
  }

  std::string layout() const override { return "zarr directories"; }

  Status read(const OrbaxArray& a, std::span<uint8_t> out) const override {
    std::vector<FileBytes> pinned;  // chunk files stay mapped only while this array is read
    auto fetch = [&](const std::string& chunk) -> Result<std::optional<std::span<const uint8_t>>> {
      const std::string rel = join_path(a.name, chunk);
      if (!files_->is_file(rel)) return std::optional<std::span<const uint8_t>>();
      GE_ASSIGN(FileBytes f, files_->read(rel));
      pinned.clear();
      pinned.push_back(std::move(f));
      return std::optional<std::span<const uint8_t>>(pinned.back().bytes);
    };
    return zarr_read_array(a.meta, fetch, out, files_->path(a.name));
  }

 private:
  Status scan(const std::string& dir, int depth, size_t& entries) {
    if (depth > kMaxDirDepth)
      return corrupt_input("{}: directories nested deeper than {}", files_->path(dir), kMaxDirDepth);
    const auto list = files_->list(dir);
    entries += list.size();
    if (entries > kMaxDirEntries) return corrupt_input("{}: too many files", path_);
    for (const auto& [f, is_dir] : list) {
      if (is_dir || (f != ".zarray" && f != "zarr.json") || dir.empty()) continue;
      const std::string rel = join_path(dir, f);
      GE_ASSIGN(FileBytes text, files_->read(rel));
      const size_t before = arrays_.size();
      GE_TRY(add_array(arrays_, dir, f == "zarr.json", text.bytes, files_->path(rel)));
      if (arrays_.size() > before) return {};  // an array directory holds chunks, not more arrays
    }
    for (const auto& [f, is_dir] : list)
      if (is_dir) GE_TRY(scan(join_path(dir, f), depth + 1, entries));
    return {};
  }

  std::shared_ptr<const FileSet> files_;
};

}  // namespace

const OrbaxArray* OrbaxCheckpoint::find(const std::string& name) const {
  auto it = std::lower_bound(arrays_.begin(), arrays_.end(), name,
                             [](const OrbaxArray& a, const std::string& n) { return a.name < n; });
  return it != arrays_.end() && it->name == name ? &*it : nullptr;
}

Result<std::unique_ptr<OrbaxCheckpoint>> OrbaxCheckpoint::open(const std::string& dir,
                                                               const OrbaxReadOptions& options) {
  return open(disk_file_set(dir), options);
}

Result<std::unique_ptr<OrbaxCheckpoint>> OrbaxCheckpoint::open(std::shared_ptr<const FileSet> files,
                                                               const OrbaxReadOptions& options) {
  const std::string path = files->path("");
  if (files->is_file("manifest.ocdbt")) {
    GE_ASSIGN(auto db, OcdbtDatabase::open(files, "", options.ocdbt));
    return OcdbtCheckpoint::make({db}, true, path);
  }
  std::vector<std::shared_ptr<OcdbtDatabase>> dbs;
  for (const auto& [f, is_dir] : files->list("")) {
    if (!is_dir || f.rfind("ocdbt.process_", 0) != 0 || !files->is_file(join_path(f, "manifest.ocdbt"))) continue;
    GE_ASSIGN(auto db, OcdbtDatabase::open(files, f, options.ocdbt));
    dbs.push_back(std::move(db));
  }
  if (!dbs.empty()) return OcdbtCheckpoint::make(std::move(dbs), false, path);
  GE_ASSIGN(auto c, ZarrDirCheckpoint::make(files));
  if (c->arrays().empty())
    return not_found("{}: not an Orbax checkpoint (no manifest.ocdbt, ocdbt.process_*/ or zarr arrays)", path);
  return c;
}

Status read_orbax(const std::string& dir, TensorSet& out) { return read_orbax(disk_file_set(dir), out); }

Status read_orbax(std::shared_ptr<const FileSet> files, TensorSet& out, const OrbaxReadOptions& options) {
  GE_ASSIGN(auto ckpt, OrbaxCheckpoint::open(std::move(files), options));
  for (const OrbaxArray& a : ckpt->arrays()) {
    if (options.select && !options.select(a.name)) continue;
    if (a.meta.nbytes() > options.max_array_bytes)
      return corrupt_input("{}: array '{}' ({} bytes) exceeds the {}-byte limit", ckpt->path(), a.name, a.meta.nbytes(),
                           options.max_array_bytes);
    uint8_t* data = nullptr;
    try {
      data = out.allocate(a.meta.nbytes());
    } catch (const std::bad_alloc&) {
      return resource_exhausted("{}: cannot allocate {} bytes for array '{}'", ckpt->path(), a.meta.nbytes(), a.name);
    }
    GE_TRY(ckpt->read(a, {data, a.meta.nbytes()}));
    Tensor t;
    t.name = a.name;
    t.dtype = a.meta.dtype;
    t.shape = a.meta.shape;
    t.data = data;
    t.nbytes = a.meta.nbytes();
    out.add(std::move(t));
  }
  return {};
}

}  // namespace gemma

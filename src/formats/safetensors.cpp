#include "formats/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/shard_index.h"
#include "util/byte_reader.h"
#include "util/mapped_file.h"

namespace gemma {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit

struct DtypeName {
  const char* name;
  DType type;
};
constexpr DtypeName kDtypes[] = {{"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
                                 {"I8", DType::I8},   {"I32", DType::I32}, {"F64", DType::F64}};

}  // namespace

Status parse_safetensors(std::span<const uint8_t> bytes, const std::string& path, std::shared_ptr<const void> owner,
                         TensorSet& out) {
  ByteReader r(bytes);
  const uint64_t header_len = r.read<uint64_t>();
  if (!r.ok()) return corrupt_input("{}: not a safetensors file (shorter than 8 bytes)", path);
  if (header_len > kMaxHeaderBytes || header_len > r.remaining())
    return corrupt_input("{}: safetensors header length {} exceeds the file ({} bytes) or the 100 MB limit", path,
                         header_len, bytes.size());
  std::string_view header = r.take_string(header_len);
  // nlohmann keeps the last of two equal keys silently: the callback sees every top-level key,
  // so a name given twice is an error rather than one tensor quietly replacing the other.
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  nlohmann::json j = nlohmann::json::parse(header.begin(), header.end(), on_event, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return corrupt_input("{}: safetensors header is not a valid JSON object", path);
  if (!duplicate.empty()) return corrupt_input("{}: duplicate tensor '{}' in the header", path, duplicate);
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_len = bytes.size() - data_start;

  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) return corrupt_input("{}: __metadata__ must be an object", path);
      for (auto& [k, v] : info.items())
        if (!v.is_string()) return corrupt_input("{}: __metadata__ value '{}' is not a string", path, k);
      continue;
    }
    if (out.find(name)) return corrupt_input("{}: duplicate tensor '{}'", path, name);
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      return corrupt_input("{}: tensor '{}' lacks dtype, shape or data_offsets", path, name);
    const auto& dt = info["dtype"];
    const auto& shape = info["shape"];
    const auto& offs = info["data_offsets"];
    if (!dt.is_string() || !shape.is_array() || !offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() ||
        !offs[1].is_number_unsigned())
      return corrupt_input("{}: tensor '{}' has a malformed header entry", path, name);
    const std::string dts = dt.get<std::string>();
    auto it = std::find_if(std::begin(kDtypes), std::end(kDtypes), [&](const DtypeName& d) { return dts == d.name; });
    if (it == std::end(kDtypes)) return unsupported("{}: tensor '{}' has unsupported dtype {}", path, name, dts);
    Tensor t;
    t.name = name;
    t.dtype = it->type;
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) return corrupt_input("{}: tensor '{}' has a malformed shape", path, name);
      const uint64_t v = d.get<uint64_t>();
      if (v > (uint64_t{1} << 40) || (v > 0 && numel > (uint64_t{1} << 50) / v))
        return corrupt_input("{}: tensor '{}' has an implausible shape", path, name);
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    const uint64_t nbytes = numel * static_cast<uint64_t>(dtype_info(t.dtype).block_bytes);
    if (end < begin || end - begin != nbytes)
      return corrupt_input("{}: tensor '{}' data_offsets [{}, {}] do not match its shape {} and dtype {} ({} bytes)",
                           path, name, begin, end, t.shape_string(), dts, nbytes);
    if (end > data_len)
      return corrupt_input("{}: tensor '{}' data [{}, {}) extends past the end of the file (truncated or corrupt)",
                           path, name, begin, end);
    t.data = bytes.data() + data_start + begin;
    t.nbytes = nbytes;
    ranges.push_back({begin, end, name});
    out.add(std::move(t));
  }
  // The tensors must tile the data section exactly: no holes, no overlaps.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  uint64_t expect = 0;
  for (const Range& rg : ranges) {
    if (rg.begin != expect)
      return corrupt_input("{}: tensor '{}' starts at {} but the previous data ends at {} (overlap or hole)", path,
                           rg.name, rg.begin, expect);
    expect = rg.end;
  }
  if (expect != data_len)
    return corrupt_input("{}: data section is {} bytes but the tensors cover {}", path, data_len, expect);
  out.keep_alive(std::move(owner));
  return {};
}

Status read_safetensors(const std::string& path, TensorSet& out, FilePages pages, TensorFilter* filter) {
  if (!filter) {
    GE_ASSIGN(auto map, MappedFile::open(path, pages));
    auto bytes = map->bytes();
    return parse_safetensors(bytes, path, std::move(map), out);
  }
  // Parse the header on the file's mapping first (no tensor bytes are touched), to learn which
  // byte ranges the kept tensors occupy; then open it again, copying only those ranges.
  GE_ASSIGN(auto mapped, MappedFile::open(path, FilePages::kMapped));
  TensorSet all;
  GE_TRY(parse_safetensors(mapped->bytes(), path, mapped, all));
  std::vector<MappedFile::Range> wanted;
  uint64_t first_data = mapped->size();
  for (const auto& [name, t] : all.all()) {
    const uint64_t begin = static_cast<uint64_t>(t.data - mapped->data());
    first_data = std::min(first_data, begin);
    if (filter->keep(name)) wanted.push_back({begin, begin + t.nbytes});
  }
  wanted.push_back({0, first_data});  // the length and the JSON header (and any padding after it)
  std::shared_ptr<MappedFile> file = mapped;
  if (pages != FilePages::kMapped) {
    all = TensorSet();
    GE_ASSIGN(file, MappedFile::open_ranges(path, pages, wanted));
    GE_TRY(parse_safetensors(file->bytes(), path, file, all));  // reads only the header bytes again
  }
  for (const auto& [name, t] : all.all()) {
    if (out.find(name)) return corrupt_input("{}: duplicate tensor '{}'", path, name);
    if (filter->keep(name)) {
      out.add(t);
    } else if (filter->skipped) {
      Tensor s = t;
      s.data = nullptr;  // its bytes may not have been read
      filter->skipped->add(std::move(s));
    }
  }
  filter->copied_bytes += file->copied_bytes();
  out.keep_alive(std::move(file));
  return {};
}

Status read_safetensors_dir(const std::string& dir, TensorSet& out, FilePages pages, TensorFilter* filter) {
  namespace fs = std::filesystem;
  const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  std::error_code ec;  // the error_code overloads: a symlink loop is "absent", not an exception
  if (!fs::exists(index_path, ec)) {
    const std::string single = (fs::path(dir) / "model.safetensors").string();
    if (!fs::exists(single, ec)) return not_found("{}: no model.safetensors or model.safetensors.index.json", dir);
    return read_safetensors(single, out, pages, filter);
  }
  GE_ASSIGN(ShardIndex index, read_shard_index(index_path));
  for (auto& [shard, names] : index.names_by_shard) {
    TensorSet part;
    TensorSet skipped;
    TensorFilter shard_filter;
    if (filter) shard_filter = {filter->keep, &skipped, 0};
    GE_TRY(read_safetensors((fs::path(dir) / shard).string(), part, pages, filter ? &shard_filter : nullptr));
    for (const std::string& name : names)
      if (!part.find(name) && !skipped.find(name))
        return not_found("{}: index puts '{}' in {}, but that shard lacks it", index_path, name, shard);
    for (const auto& [name, t] : part.all()) {
      if (!index.names.count(name))
        return corrupt_input("{}: shard {} holds '{}', which the index does not list", index_path, shard, name);
      if (out.find(name)) return corrupt_input("{}: tensor '{}' appears in more than one shard", index_path, name);
      out.add(t);
    }
    for (const auto& [name, t] : skipped.all()) {
      if (!index.names.count(name))
        return corrupt_input("{}: shard {} holds '{}', which the index does not list", index_path, shard, name);
      if (out.find(name) || (filter->skipped && filter->skipped->find(name)))
        return corrupt_input("{}: tensor '{}' appears in more than one shard", index_path, name);
      if (filter->skipped) filter->skipped->add(t);
    }
    if (filter) filter->copied_bytes += shard_filter.copied_bytes;
    out.merge_owners(part);
  }
  return {};
}

}  // namespace gemma

#include "formats/torch/torch_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "formats/shard_index.h"
#include "formats/torch/zip_reader.h"
#include "util/mapped_file.h"
#include "util/printable.h"

namespace gemma {

namespace fs = std::filesystem;

namespace {

// Non-contiguous tensors are copied; stride-0 views can describe far more elements than the file
// holds, so the copies of one archive may not exceed its size plus this slack.
constexpr uint64_t kCopySlackBytes = 64ull << 20;
constexpr uint64_t kMaxNumel = uint64_t{1} << 50;

std::string shape_string(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", v[i]);
  return s + "]";
}

// Checks one tensor against its storage (docs/spec/formats.md §8.6): valid iff it has no elements or
// (offset + Σ (size_i - 1) * stride_i + 1) elements fit the storage, all in overflow-safe integers.
Status check_bounds(const TorchTensor& t, const std::string& key, uint64_t storage_bytes, const std::string& src) {
  const uint64_t elem = static_cast<uint64_t>(torch_type_info(t.type).elem_bytes);
  uint64_t numel = 1;
  for (int64_t d : t.shape)
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel) || numel > kMaxNumel)
      return corrupt_input("{}: tensor '{}' has an implausible shape {}", src, printable(t.name),
                           shape_string(t.shape));
  if (numel == 0) return {};
  uint64_t last = static_cast<uint64_t>(t.offset), span_bytes = 0;
  bool overflow = false;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    uint64_t step = 0;
    overflow |=
        __builtin_mul_overflow(static_cast<uint64_t>(t.shape[d] - 1), static_cast<uint64_t>(t.stride[d]), &step);
    overflow |= __builtin_add_overflow(last, step, &last);
  }
  overflow |= __builtin_add_overflow(last, uint64_t{1}, &last);
  overflow |= __builtin_mul_overflow(last, elem, &span_bytes);
  if (overflow || span_bytes > storage_bytes)
    return corrupt_input(
        "{}: tensor '{}' (offset {}, shape {}, stride {}) reaches past the end of its storage '{}' of {} "
        "bytes",
        src, printable(t.name), t.offset, shape_string(t.shape), shape_string(t.stride), key, storage_bytes);
  return {};
}

// The state dict: gemma_pytorch's {'model_state_dict': ...} or the top-level dict itself.
Result<const PickleValue*> state_dict(const PickleValue& root, const std::string& src) {
  if (root.kind != PickleKind::kDict) return corrupt_input("{}: data.pkl does not hold a dict (a state dict)", src);
  const PickleValue* sd = root.get("model_state_dict");
  if (!sd) return &root;
  if (sd->kind != PickleKind::kDict) return corrupt_input("{}: 'model_state_dict' is not a dict", src);
  return sd;
}

}  // namespace

int64_t TorchTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool TorchTensor::contiguous() const {
  int64_t expect = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) return true;
    if (shape[d] != 1 && stride[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

void TorchTensor::gather(uint8_t* out) const {
  const size_t elem = static_cast<size_t>(torch_type_info(type).elem_bytes);
  const int64_t n = numel();
  if (n == 0) return;
  const uint8_t* base = storage.data();
  if (shape.empty()) {
    std::memcpy(out, base + static_cast<size_t>(offset) * elem, elem);
    return;
  }
  // Odometer over every index but the last; the last dimension is one run (a memcpy if dense).
  const size_t nd = shape.size();
  const int64_t inner = shape[nd - 1], inner_stride = stride[nd - 1];
  std::vector<int64_t> idx(nd - 1, 0);
  for (int64_t row = 0, rows = n / inner; row < rows; ++row) {
    int64_t pos = offset;
    for (size_t d = 0; d + 1 < nd; ++d) pos += idx[d] * stride[d];
    if (inner_stride == 1) {
      std::memcpy(out, base + static_cast<size_t>(pos) * elem, static_cast<size_t>(inner) * elem);
      out += static_cast<size_t>(inner) * elem;
    } else {
      for (int64_t c = 0; c < inner; ++c, out += elem)
        std::memcpy(out, base + static_cast<size_t>(pos + c * inner_stride) * elem, elem);
    }
    for (size_t d = nd - 1; d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

Result<std::vector<TorchTensor>> parse_torch_tensors(std::span<const uint8_t> bytes, const std::string& src) {
  if (bytes.size() >= 2 && bytes[0] == 0x80 && bytes[1] >= 2 && bytes[1] <= 5)
    return unsupported(
        "{}: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a current "
        "torch (torch.save(torch.load(f), f))",
        src);
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "PK\x03\x04", 4) != 0)
    return corrupt_input("{}: not a torch checkpoint (no ZIP signature PK\\x03\\x04)", src);
  GE_ASSIGN(ZipReader zip, ZipReader::open(bytes, src));
  if (zip.entries().empty()) return corrupt_input("{}: empty ZIP archive", src);
  // Every entry sits in one folder, named after the file at save time; PyTorch's reader takes it
  // from the first entry (§8.3).
  const std::string& first = zip.entries()[0].name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos)
    return corrupt_input("{}: entry '{}' is not inside an archive folder", src, printable(first));
  const std::string folder = first.substr(0, slash + 1);
  for (const ZipEntry& e : zip.entries())
    if (e.name.compare(0, folder.size(), folder) != 0)
      return corrupt_input("{}: entry '{}' is outside the archive folder '{}'", src, printable(e.name),
                           printable(folder));
  if (const ZipEntry* bo = zip.find(folder + "byteorder")) {
    auto d = zip.data(*bo);
    std::string_view order(reinterpret_cast<const char*>(d.data()), d.size());
    if (order != "little" && order != "little\n")
      return unsupported("{}: byteorder is '{}'; only little-endian checkpoints are supported", src, printable(order));
  }
  const ZipEntry* pkl = zip.find(folder + "data.pkl");
  if (!pkl) return not_found("{}: no {}data.pkl in the archive", src, printable(folder));
  GE_ASSIGN(Pickle pickle, Pickle::parse(zip.data(*pkl), src + ": data.pkl"));
  GE_ASSIGN(const PickleValue* sd, state_dict(pickle.root(), src));

  std::set<std::string_view> seen;
  std::vector<TorchTensor> tensors;
  tensors.reserve(sd->dict_size());
  for (size_t i = 0; i < sd->items.size(); i += 2) {
    const PickleValue* key = sd->items[i];
    const PickleValue* value = sd->items[i + 1];
    if (key->kind != PickleKind::kString) return corrupt_input("{}: state dict has a non-string key", src);
    if (!seen.insert(key->s).second) return corrupt_input("{}: state dict names '{}' twice", src, printable(key->s));
    if (value->kind != PickleKind::kTensor)
      return corrupt_input("{}: state dict entry '{}' is not a tensor", src, printable(key->s));
    const TensorRef& ref = value->tensor;
    const PickleValue& storage = *ref.storage;
    const ZipEntry* rec = zip.find(folder + "data/" + storage.s);
    if (!rec)
      return not_found("{}: tensor '{}' refers to storage '{}', but the archive has no record {}data/{}", src,
                       printable(key->s), storage.s, printable(folder), storage.s);
    // The persistent id's element count must fit the record (§8.6: divide, don't multiply).
    const uint64_t storage_elem = static_cast<uint64_t>(torch_type_info(storage.type).elem_bytes);
    if (static_cast<uint64_t>(storage.i) > rec->size / storage_elem)
      return corrupt_input("{}: storage '{}' claims {} elements of {} bytes, but its record holds {} bytes", src,
                           storage.s, storage.i, storage_elem, rec->size);
    TorchTensor t;
    t.name = key->s;
    t.type = ref.type;
    t.shape = ref.shape;
    t.stride = ref.stride;
    t.offset = ref.offset;
    t.storage = zip.data(*rec);
    GE_TRY(check_bounds(t, storage.s, static_cast<uint64_t>(storage.i) * storage_elem, src));
    tensors.push_back(std::move(t));
  }
  return tensors;
}

Status parse_torch_checkpoint(std::span<const uint8_t> bytes, const std::string& src, std::shared_ptr<const void> owner,
                              TensorSet& out, std::vector<std::string>* skipped) {
  GE_ASSIGN(std::vector<TorchTensor> tensors, parse_torch_tensors(bytes, src));
  uint64_t copied = 0;
  for (const TorchTensor& t : tensors) {
    const TorchTypeInfo& info = torch_type_info(t.type);
    if (!info.dtype) {
      if (skipped) skipped->push_back(fmt::format("{} ({})", t.name, info.dtype_name));
      continue;
    }
    if (out.find(t.name)) return corrupt_input("{}: tensor '{}' appears twice", src, printable(t.name));
    Tensor ct;
    ct.name = t.name;
    ct.dtype = *info.dtype;
    ct.shape = t.shape;
    ct.nbytes = t.nbytes();
    const uint8_t* start = t.storage.data() + static_cast<size_t>(t.offset) * static_cast<size_t>(info.elem_bytes);
    if (ct.nbytes == 0) {
      ct.data = t.storage.data();
    } else if (t.contiguous() && reinterpret_cast<uintptr_t>(start) % static_cast<uintptr_t>(info.elem_bytes) == 0) {
      ct.data = start;  // a view into the map
    } else {
      if (__builtin_add_overflow(copied, ct.nbytes, &copied) || copied > bytes.size() + kCopySlackBytes)
        return corrupt_input(
            "{}: non-contiguous tensors would expand to more than {} bytes (tensor '{}', shape {}, stride "
            "{})",
            src, bytes.size() + kCopySlackBytes, printable(t.name), shape_string(t.shape), shape_string(t.stride));
      uint8_t* buf = out.allocate(ct.nbytes);
      t.gather(buf);
      ct.data = buf;
    }
    out.add(std::move(ct));
  }
  out.keep_alive(std::move(owner));
  return {};
}

namespace {

Status read_file(const std::string& path, TensorSet& out, std::vector<std::string>* skipped) {
  GE_ASSIGN(auto map, MappedFile::open(path));
  auto bytes = map->bytes();
  return parse_torch_checkpoint(bytes, path, std::move(map), out, skipped);
}

// Sharded: pytorch_model.bin.index.json maps names to shard files (plain state dicts). Like
// gemma_pytorch's loader, every tensor of every listed shard is read; the index must be right
// about the names it lists.
Status read_sharded(const std::string& index_path, TensorSet& out, std::vector<std::string>* skipped) {
  GE_ASSIGN(ShardIndex index, read_shard_index(index_path));
  if (index.names_by_shard.empty()) return corrupt_input("{}: weight_map lists no tensors", index_path);
  const fs::path dir = fs::path(index_path).parent_path();
  for (auto& [shard, names] : index.names_by_shard) {
    TensorSet part;
    std::vector<std::string> part_skipped;
    GE_TRY(read_file((dir / shard).string(), part, &part_skipped));
    for (const std::string& name : names) {
      const bool skipped_here = std::any_of(part_skipped.begin(), part_skipped.end(),
                                            [&](const std::string& s) { return s.rfind(name + " (", 0) == 0; });
      if (!part.find(name) && !skipped_here)
        return not_found("{}: index puts '{}' in {}, but that shard lacks it", index_path, name, shard);
    }
    for (const auto& [name, t] : part.all()) {
      if (out.find(name)) return corrupt_input("{}: tensor '{}' appears in more than one shard", index_path, name);
      out.add(t);
    }
    out.merge_owners(part);
    if (skipped) skipped->insert(skipped->end(), part_skipped.begin(), part_skipped.end());
  }
  return {};
}

}  // namespace

Status read_torch_checkpoint(const std::string& path, TensorSet& out, std::vector<std::string>* skipped) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const std::string index = (fs::path(path) / "pytorch_model.bin.index.json").string();
    if (!fs::exists(index, ec)) return not_found("{}: directory has no pytorch_model.bin.index.json", path);
    return read_sharded(index, out, skipped);
  }
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return read_sharded(path, out, skipped);
  return read_file(path, out, skipped);
}

}  // namespace gemma

#include "formats/gguf.h"

#include <cstring>

#include "util/byte_reader.h"

namespace gemma {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian uint32
constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;
constexpr uint64_t kMaxTensorNameBytes = 63;  // ggml's GGML_MAX_NAME (64) includes the NUL
constexpr uint32_t kMaxDims = 4;

// Size in bytes of a scalar element type, 0 for STRING/ARRAY (variable) and unknown types.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64: return 8;
    default: return 0;
  }
}

bool known_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

std::string_view read_string(ByteReader& r) {
  uint64_t n = r.read<uint64_t>();
  if (n > kMaxStringBytes) {
    r.fail();
    return {};
  }
  return r.take_string(n);
}

// Reads one scalar of type t into v (u/i/f/s). Returns false on a malformed value.
bool read_scalar(ByteReader& r, GgufType t, GgufValue& v) {
  switch (t) {
    case GgufType::U8: v.u = r.read<uint8_t>(); break;
    case GgufType::I8: v.i = r.read<int8_t>(); break;
    case GgufType::U16: v.u = r.read<uint16_t>(); break;
    case GgufType::I16: v.i = r.read<int16_t>(); break;
    case GgufType::U32: v.u = r.read<uint32_t>(); break;
    case GgufType::I32: v.i = r.read<int32_t>(); break;
    case GgufType::F32: v.f = r.read<float>(); break;
    case GgufType::BOOL: {
      uint8_t b = r.read<uint8_t>();
      if (b > 1) return false;
      v.u = b;
      break;
    }
    case GgufType::STRING: v.s = read_string(r); break;
    case GgufType::U64: v.u = r.read<uint64_t>(); break;
    case GgufType::I64: v.i = r.read<int64_t>(); break;
    case GgufType::F64: v.f = r.read<double>(); break;
    default: return false;
  }
  return r.ok();
}

// Skips over an array's elements, recording their raw span. Nested arrays are legal in the format
// but no Gemma file holds them (and ggml rejects them), so we reject them too.
bool read_array(ByteReader& r, GgufValue& v) {
  uint32_t et = r.read<uint32_t>();
  uint64_t count = r.read<uint64_t>();
  if (!r.ok() || !known_type(et) || et == static_cast<uint32_t>(GgufType::ARRAY)) return false;
  v.elem_type = static_cast<GgufType>(et);
  v.count = count;
  if (v.elem_type == GgufType::STRING) {
    if (count > r.remaining() / 8) return false;  // each string has at least its 8-byte length
    for (uint64_t k = 0; k < count; ++k) {
      read_string(r);
      if (!r.ok()) return false;
    }
  } else {
    uint64_t es = scalar_size(v.elem_type);
    if (count > r.remaining() / es) return false;
    r.skip(count * es);
  }
  return r.ok();
}

std::string type_name(GgufType t) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  uint32_t i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "unknown";
}

}  // namespace

Result<std::shared_ptr<GgufFile>> GgufFile::open(const std::string& path, FilePages pages) {
  GE_ASSIGN(auto map, MappedFile::open(path, pages));
  auto bytes = map->bytes();
  return parse(bytes, path, std::move(map));
}

Result<std::shared_ptr<GgufFile>> GgufFile::parse(std::span<const uint8_t> bytes, std::string name,
                                                  std::shared_ptr<const void> owner) {
  auto f = std::make_shared<GgufFile>();
  f->path_ = std::move(name);
  f->size_ = bytes.size();
  const std::string& path = f->path_;
  ByteReader r(bytes);

  if (bytes.size() < 4 || r.read<uint32_t>() != kMagic) return corrupt_input("{}: not a GGUF file (bad magic)", path);
  f->version_ = r.read<uint32_t>();
  if (!r.ok()) return corrupt_input("{}: truncated GGUF header", path);
  if (f->version_ != 2 && f->version_ != 3)
    return unsupported("{}: unsupported GGUF version {} (expected 2 or 3)", path, f->version_);
  uint64_t n_tensors = r.read<uint64_t>();
  uint64_t n_kv = r.read<uint64_t>();
  if (!r.ok()) return corrupt_input("{}: truncated GGUF header", path);
  // Each entry needs at least 8 bytes; reject counts the file cannot possibly hold.
  if (n_kv > r.remaining() / 8 || n_tensors > r.remaining() / 8)
    return corrupt_input("{}: corrupt GGUF header: {} tensors and {} metadata keys cannot fit in {} bytes", path,
                         n_tensors, n_kv, bytes.size());

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key = read_string(r);
    uint32_t t = r.read<uint32_t>();
    if (!r.ok()) return corrupt_input("{}: truncated metadata (key #{})", path, k);
    if (!known_type(t)) return corrupt_input("{}: metadata key '{}' has unknown type {}", path, key, t);
    GgufValue v;
    v.type = static_cast<GgufType>(t);
    size_t start = r.pos();
    bool good = v.type == GgufType::ARRAY ? read_array(r, v) : read_scalar(r, v.type, v);
    if (!good || !r.ok()) return corrupt_input("{}: malformed or truncated value of metadata key '{}'", path, key);
    if (v.type == GgufType::ARRAY) {
      // raw covers the elements only (after the 12-byte element-type + count prefix).
      v.raw = bytes.subspan(start + 12, r.pos() - start - 12);
    }
    std::string skey(key);
    if (f->kv_.count(skey)) return corrupt_input("{}: duplicate metadata key '{}'", path, key);
    f->kv_.emplace(std::move(skey), v);
  }

  uint64_t alignment = 32;
  if (const GgufValue* a = f->find("general.alignment")) {
    if (a->type != GgufType::U32 || a->u == 0 || (a->u & (a->u - 1)) != 0)
      return corrupt_input("{}: general.alignment must be a power-of-two u32", path);
    alignment = a->u;
  }

  struct Info {
    std::string name;
    std::vector<int64_t> shape;
    DType dtype;
    uint64_t offset, nbytes;
  };
  std::vector<Info> infos;
  infos.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    std::string_view tname = read_string(r);
    uint32_t n_dims = r.read<uint32_t>();
    if (!r.ok()) return corrupt_input("{}: truncated tensor table (tensor #{})", path, k);
    if (tname.size() > kMaxTensorNameBytes)
      return corrupt_input("{}: tensor #{} name is longer than {} bytes", path, k, kMaxTensorNameBytes);
    if (n_dims == 0 || n_dims > kMaxDims)
      return corrupt_input("{}: tensor '{}' has {} dimensions (1 to {} allowed)", path, tname, n_dims, kMaxDims);
    uint64_t ne[kMaxDims] = {1, 1, 1, 1};
    for (uint32_t d = 0; d < n_dims; ++d) ne[d] = r.read<uint64_t>();
    uint32_t ggml_type = r.read<uint32_t>();
    uint64_t offset = r.read<uint64_t>();
    if (!r.ok()) return corrupt_input("{}: truncated tensor table (tensor '{}')", path, tname);
    auto dtype = dtype_from_ggml(ggml_type);
    if (!dtype) return unsupported("{}: tensor '{}' has unsupported ggml type {}", path, tname, ggml_type);
    // Element count with overflow checks; every dimension must be positive.
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      if (ne[d] == 0 || ne[d] > (uint64_t{1} << 40) || numel > (uint64_t{1} << 50) / ne[d])
        return corrupt_input("{}: tensor '{}' has an invalid shape", path, tname);
      numel *= ne[d];
    }
    auto rb = row_bytes(*dtype, ne[0]);
    if (!rb)
      return corrupt_input("{}: tensor '{}' of type {} has a row of {} elements, not a multiple of its block size {}",
                           path, tname, dtype_name(*dtype), ne[0], dtype_info(*dtype).block_elems);
    uint64_t nbytes = *rb * (numel / ne[0]);
    if (offset % alignment != 0)
      return corrupt_input("{}: tensor '{}' offset {} is not a multiple of the alignment {}", path, tname, offset,
                           alignment);
    Info info{std::string(tname), {}, *dtype, offset, nbytes};
    for (uint32_t d = n_dims; d-- > 0;) info.shape.push_back(static_cast<int64_t>(ne[d]));  // ne[0] is innermost
    infos.push_back(std::move(info));
  }

  uint64_t data_offset = (r.pos() + alignment - 1) / alignment * alignment;
  f->data_offset_ = data_offset;
  if (data_offset > bytes.size() && !infos.empty())
    return corrupt_input("{}: truncated: tensor data would start at {} but the file has {} bytes", path, data_offset,
                         bytes.size());
  for (Info& info : infos) {
    uint64_t avail = bytes.size() > data_offset ? bytes.size() - data_offset : 0;
    if (info.offset > avail || info.nbytes > avail - info.offset)
      return corrupt_input(
          "{}: tensor '{}' ({} bytes at offset {}) extends past the end of the file (truncated or corrupt)", path,
          info.name, info.nbytes, data_offset + info.offset, bytes.size());
    if (f->tensors_.find(info.name)) return corrupt_input("{}: duplicate tensor name '{}'", path, info.name);
    Tensor t;
    t.name = info.name;
    t.dtype = info.dtype;
    t.shape = std::move(info.shape);
    t.data = bytes.data() + data_offset + info.offset;
    t.nbytes = info.nbytes;
    f->tensors_.add(std::move(t));
  }
  f->tensors_.keep_alive(std::move(owner));
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

Result<std::optional<uint64_t>> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<uint64_t>();
  switch (v->type) {
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::U64: return std::optional<uint64_t>(v->u);
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64:
      if (v->i < 0) return corrupt_input("{}: metadata '{}' is negative ({})", path_, key, v->i);
      return std::optional<uint64_t>(static_cast<uint64_t>(v->i));
    default: return corrupt_input("{}: metadata '{}' has type {}, expected an integer", path_, key, type_name(v->type));
  }
}

Result<std::optional<double>> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<double>();
  switch (v->type) {
    case GgufType::F32:
    case GgufType::F64: return std::optional<double>(v->f);
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::U64: return std::optional<double>(static_cast<double>(v->u));
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64: return std::optional<double>(static_cast<double>(v->i));
    default: return corrupt_input("{}: metadata '{}' has type {}, expected a number", path_, key, type_name(v->type));
  }
}

Result<std::optional<bool>> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<bool>();
  if (v->type != GgufType::BOOL) return corrupt_input("{}: metadata '{}' is not a bool", path_, key);
  return std::optional<bool>(v->u != 0);
}

Result<std::optional<std::string>> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::optional<std::string>();
  if (v->type != GgufType::STRING) return corrupt_input("{}: metadata '{}' is not a string", path_, key);
  return std::optional<std::string>(std::string(v->s));
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return not_found("{}: missing metadata '{}'", path_, key);
  if (v->type != GgufType::ARRAY || v->elem_type != GgufType::STRING)
    return corrupt_input("{}: metadata '{}' is not an array of strings", path_, key);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(v->count));
  ByteReader r(v->raw);
  for (uint64_t k = 0; k < v->count; ++k) out.emplace_back(read_string(r));
  if (!r.ok()) return corrupt_input("{}: metadata '{}' is malformed", path_, key);
  return out;
}

Result<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return not_found("{}: missing metadata '{}'", path_, key);
  if (v->type != GgufType::ARRAY || (v->elem_type != GgufType::F32 && v->elem_type != GgufType::F64))
    return corrupt_input("{}: metadata '{}' is not an array of floats", path_, key);
  std::vector<float> out(static_cast<size_t>(v->count));
  ByteReader r(v->raw);
  for (auto& x : out) x = v->elem_type == GgufType::F32 ? r.read<float>() : static_cast<float>(r.read<double>());
  if (!r.ok()) return corrupt_input("{}: metadata '{}' is malformed", path_, key);
  return out;
}

Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return not_found("{}: missing metadata '{}'", path_, key);
  if (v->type != GgufType::ARRAY) return corrupt_input("{}: metadata '{}' is not an array", path_, key);
  std::vector<int64_t> out(static_cast<size_t>(v->count));
  ByteReader r(v->raw);
  for (auto& x : out) {
    GgufValue e;
    bool is_int = v->elem_type != GgufType::STRING && v->elem_type != GgufType::F32 && v->elem_type != GgufType::F64;
    if (!is_int || !read_scalar(r, v->elem_type, e))
      return corrupt_input("{}: metadata '{}' is not an array of integers", path_, key);
    bool is_unsigned = v->elem_type == GgufType::U8 || v->elem_type == GgufType::U16 || v->elem_type == GgufType::U32 ||
                       v->elem_type == GgufType::U64 || v->elem_type == GgufType::BOOL;
    x = is_unsigned ? static_cast<int64_t>(e.u) : e.i;
  }
  return out;
}

}  // namespace gemma

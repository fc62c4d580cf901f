#include "formats/orbax/zarr.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include <nlohmann/json.hpp>

#include "formats/orbax/ocdbt.h"
#include "util/half.h"
#include "util/zstd_file.h"

namespace gemma {

using nlohmann::json;

namespace {

constexpr size_t kMaxRank = 32;
constexpr int64_t kMaxDim = int64_t{1} << 40;
constexpr uint64_t kMaxElements = uint64_t{1} << 50;
constexpr uint64_t kMaxChunkBytes = uint64_t{1} << 32;  // Orbax caps chunks at its 2 GiB data-file target
constexpr uint64_t kMaxInnerChunks = uint64_t{1} << 24;

struct DtypeName {
  const char* v2;  // without the byte-order character
  const char* v3;
  DType type;
  int itemsize;
};
constexpr DtypeName kDtypes[] = {
    {"bfloat16", "bfloat16", DType::BF16, 2}, {"f4", "float32", DType::F32, 4}, {"f2", "float16", DType::F16, 2},
    {"f8", "float64", DType::F64, 8},         {"i1", "int8", DType::I8, 1},     {"i4", "int32", DType::I32, 4},
};

Result<std::vector<int64_t>> read_dims(const json& j, const char* field, const std::string& name, bool positive) {
  if (!j.is_array() || j.size() > kMaxRank)
    return corrupt_input("{}: '{}' is not an array of at most {} sizes", name, field, kMaxRank);
  std::vector<int64_t> v;
  for (const json& d : j) {
    if (!d.is_number_integer()) return corrupt_input("{}: '{}' holds a non-integer", name, field);
    const int64_t x = d.get<int64_t>();
    if (x < (positive ? 1 : 0) || x > kMaxDim)
      return corrupt_input("{}: '{}' holds an invalid size {}", name, field, x);
    v.push_back(x);
  }
  return v;
}

uint64_t product(std::span<const int64_t> v) {
  uint64_t n = 1;
  for (int64_t d : v) n *= static_cast<uint64_t>(d);
  return n;
}

// Element count without overflow, or nullopt past kMaxElements.
std::optional<uint64_t> checked_product(std::span<const int64_t> v) {
  uint64_t n = 1;
  for (int64_t d : v) {
    if (d != 0 && n > kMaxElements / static_cast<uint64_t>(d)) return std::nullopt;
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

// The fill value as one little-endian element. null means 0; floats may be "NaN", "Infinity",
// "-Infinity" or (v3) a "0x..." bit pattern.
Result<std::vector<uint8_t>> encode_fill(const json& j, DType t, int itemsize, const std::string& name) {
  std::vector<uint8_t> b(static_cast<size_t>(itemsize), 0);
  if (j.is_null()) return b;
  const bool is_float = t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
  double v = 0;
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (is_float && s == "NaN") v = std::numeric_limits<double>::quiet_NaN();
    else if (is_float && s == "Infinity") v = std::numeric_limits<double>::infinity();
    else if (is_float && s == "-Infinity") v = -std::numeric_limits<double>::infinity();
    else if (s.size() == 2 + 2 * static_cast<size_t>(itemsize) && s.compare(0, 2, "0x") == 0) {
      uint64_t bits = 0;
      for (size_t i = 2; i < s.size(); ++i) {
        const char c = s[i];
        const int nib = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
        if (nib < 0) return corrupt_input("{}: invalid fill_value '{}'", name, s);
        bits = bits << 4 | static_cast<uint64_t>(nib);
      }
      std::memcpy(b.data(), &bits, b.size());
      return b;
    } else {
      return corrupt_input("{}: invalid fill_value '{}'", name, s);
    }
  } else if (j.is_number()) {
    v = j.get<double>();
  } else if (j.is_boolean()) {
    v = j.get<bool>() ? 1 : 0;
  } else {
    return corrupt_input("{}: fill_value is neither a number nor null", name);
  }
  switch (t) {
    case DType::F32: {
      const float f = static_cast<float>(v);
      std::memcpy(b.data(), &f, 4);
      break;
    }
    case DType::F64: std::memcpy(b.data(), &v, 8); break;
    case DType::F16: {
      const uint16_t h = f32_to_f16(static_cast<float>(v));
      std::memcpy(b.data(), &h, 2);
      break;
    }
    case DType::BF16: {
      const uint16_t h = f32_to_bf16(static_cast<float>(v));
      std::memcpy(b.data(), &h, 2);
      break;
    }
    case DType::I8: {
      if (!(v >= -128 && v <= 127) || v != std::floor(v))
        return corrupt_input("{}: fill_value {} does not fit int8", name, v);
      b[0] = static_cast<uint8_t>(static_cast<int8_t>(v));
      break;
    }
    case DType::I32: {
      if (!(v >= INT32_MIN && v <= INT32_MAX) || v != std::floor(v))
        return corrupt_input("{}: fill_value {} does not fit int32", name, v);
      const int32_t i = static_cast<int32_t>(v);
      std::memcpy(b.data(), &i, 4);
      break;
    }
    default: return unsupported("{}: unsupported dtype for a fill value", name);
  }
  return b;
}

// Checks shape/chunks consistency and sizes shared by v2 and v3.
Status check_geometry(const ZarrMetadata& m, const std::string& name) {
  if (m.chunks.size() != m.shape.size())
    return corrupt_input("{}: chunk rank {} differs from the array rank {}", name, m.chunks.size(), m.shape.size());
  if (!checked_product(m.shape)) return corrupt_input("{}: array shape is implausibly large", name);
  auto chunk_elems = checked_product(m.chunks);
  if (!chunk_elems || *chunk_elems > kMaxChunkBytes / static_cast<uint64_t>(m.itemsize))
    return corrupt_input("{}: chunk shape is implausibly large (over {} bytes)", name, kMaxChunkBytes);
  if (m.sharded) {
    if (m.inner_chunks.size() != m.chunks.size())
      return corrupt_input("{}: sharding chunk_shape rank {} differs from the array rank {}", name,
                           m.inner_chunks.size(), m.chunks.size());
    for (size_t d = 0; d < m.chunks.size(); ++d)
      if (m.chunks[d] % m.inner_chunks[d] != 0)
        return corrupt_input("{}: shard shape is not a multiple of the inner chunk shape", name);
    if (product(m.chunks) / product(m.inner_chunks) > kMaxInnerChunks)
      return corrupt_input("{}: shard holds too many inner chunks", name);
  }
  return {};
}

// Parses a v3 codec list. Sharding is allowed at the top level only.
Status parse_codecs(const json& list, ZarrMetadata& m, ZarrCodecs& out, bool top, bool index, const std::string& name) {
  if (!list.is_array()) return corrupt_input("{}: 'codecs' is not an array", name);
  bool have_array_to_bytes = false;
  for (const json& c : list) {
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string())
      return corrupt_input("{}: codec entry without a name", name);
    const std::string cname = c["name"].get<std::string>();
    const json cfg = c.contains("configuration") ? c["configuration"] : json::object();
    if (!cfg.is_object()) return corrupt_input("{}: codec '{}' configuration is not an object", name, cname);
    if (cname == "transpose") {
      if (have_array_to_bytes) return corrupt_input("{}: 'transpose' after the bytes codec", name);
      const json& order = cfg.contains("order") ? cfg["order"] : json();
      bool identity = order.is_array() && order.size() == m.shape.size();
      for (size_t i = 0; identity && i < order.size(); ++i)
        identity = order[i].is_number_integer() && order[i].get<int64_t>() == static_cast<int64_t>(i);
      if (!identity) return unsupported("{}: the 'transpose' codec is not supported", name);
    } else if (cname == "bytes") {
      if (have_array_to_bytes) return corrupt_input("{}: two array-to-bytes codecs", name);
      have_array_to_bytes = true;
      if (cfg.contains("endian")) {
        if (!cfg["endian"].is_string()) return corrupt_input("{}: bytes codec endian is not a string", name);
        const std::string e = cfg["endian"].get<std::string>();
        if (e != "little" && e != "big") return corrupt_input("{}: bytes codec endian '{}' is invalid", name, e);
        out.big_endian = e == "big";
      } else if (m.itemsize > 1 && !index) {
        return corrupt_input("{}: bytes codec without endian for a {}-byte type", name, m.itemsize);
      }
    } else if (cname == "sharding_indexed") {
      if (!top) return unsupported("{}: nested sharding_indexed codecs are not supported", name);
      if (have_array_to_bytes) return corrupt_input("{}: two array-to-bytes codecs", name);
      have_array_to_bytes = true;
      m.sharded = true;
      if (!cfg.contains("chunk_shape")) return corrupt_input("{}: sharding_indexed without chunk_shape", name);
      GE_ASSIGN(m.inner_chunks, read_dims(cfg["chunk_shape"], "chunk_shape", name, true));
      if (!cfg.contains("codecs") || !cfg.contains("index_codecs"))
        return corrupt_input("{}: sharding_indexed without codecs or index_codecs", name);
      GE_TRY(parse_codecs(cfg["codecs"], m, m.inner_codecs, false, false, name));
      GE_TRY(parse_codecs(cfg["index_codecs"], m, m.index_codecs, false, true, name));
      for (ZarrBytesCodec b : m.index_codecs.bytes_codecs)
        if (b != ZarrBytesCodec::kCrc32c) return unsupported("{}: compressed shard indexes are not supported", name);
      const std::string loc = cfg.contains("index_location") && cfg["index_location"].is_string()
                                  ? cfg["index_location"].get<std::string>()
                                  : "end";
      if (loc != "end" && loc != "start") return corrupt_input("{}: index_location '{}' is invalid", name, loc);
      m.index_at_end = loc == "end";
    } else if (cname == "zstd" || cname == "crc32c") {
      if (!have_array_to_bytes) return corrupt_input("{}: '{}' before the bytes codec", name, cname);
      if (top && m.sharded) return unsupported("{}: codecs after sharding_indexed are not supported", name);
      out.bytes_codecs.push_back(cname == "zstd" ? ZarrBytesCodec::kZstd : ZarrBytesCodec::kCrc32c);
    } else {
      return unsupported("{}: codec '{}' is not supported", name, cname);
    }
  }
  if (!have_array_to_bytes) return corrupt_input("{}: codec list has no bytes codec", name);
  return {};
}

// Runs a bytes codec chain backwards: `stored` -> exactly out.size() bytes in `out`.
Status decode_bytes(const ZarrCodecs& c, std::span<const uint8_t> stored, std::span<uint8_t> out,
                    const std::string& name, const char* what) {
  std::span<const uint8_t> cur = stored;
  std::string tmp;
  for (size_t i = c.bytes_codecs.size(); i-- > 0;) {
    if (c.bytes_codecs[i] == ZarrBytesCodec::kCrc32c) {
      if (cur.size() < 4) return corrupt_input("{}: {} is too short for its crc32c", name, what);
      uint32_t stored_crc;
      std::memcpy(&stored_crc, cur.data() + cur.size() - 4, 4);
      cur = cur.first(cur.size() - 4);
      if (crc32c(cur) != stored_crc) return corrupt_input("{}: {} fails its crc32c check (corrupt data)", name, what);
    } else if (i == 0) {  // the last step decompresses straight into the output
      auto n = zstd_decompress_into(cur, out);
      if (!n.ok()) return with_context(std::move(n).error(), fmt::format("{}: {}", name, what));
      if (*n != out.size())
        return corrupt_input("{}: {} decompresses to {} bytes, expected {}", name, what, *n, out.size());
      return {};
    } else {
      auto d = zstd_decompress(cur, out.size() + 4 * c.bytes_codecs.size());
      if (!d.ok()) return with_context(std::move(d).error(), fmt::format("{}: {}", name, what));
      tmp = std::move(d).value();
      cur = {reinterpret_cast<const uint8_t*>(tmp.data()), tmp.size()};
    }
  }
  if (cur.size() != out.size())
    return corrupt_input("{}: {} holds {} bytes, expected {}", name, what, cur.size(), out.size());
  std::memcpy(out.data(), cur.data(), cur.size());
  return {};
}

void byteswap(std::span<uint8_t> b, int itemsize) {
  if (itemsize == 1) return;
  for (size_t i = 0; i + static_cast<size_t>(itemsize) <= b.size(); i += static_cast<size_t>(itemsize))
    for (int k = 0; k < itemsize / 2; ++k)
      std::swap(b[i + static_cast<size_t>(k)], b[i + static_cast<size_t>(itemsize - 1 - k)]);
}

void fill_with(std::span<uint8_t> b, const std::vector<uint8_t>& fill) {
  bool zero = true;
  for (uint8_t x : fill) zero = zero && x == 0;
  if (zero) {
    std::memset(b.data(), 0, b.size());
    return;
  }
  for (size_t i = 0; i + fill.size() <= b.size(); i += fill.size()) std::memcpy(b.data() + i, fill.data(), fill.size());
}

// Copies the leading `extent` corner of a C-order block of shape `src_shape` into a C-order array of
// shape `dst_shape` at `origin`.
void copy_block(const uint8_t* src, std::span<const int64_t> src_shape, uint8_t* dst,
                std::span<const int64_t> dst_shape, std::span<const int64_t> origin, std::span<const int64_t> extent,
                size_t itemsize) {
  const size_t r = src_shape.size();
  if (r == 0) {
    std::memcpy(dst, src, itemsize);
    return;
  }
  for (int64_t e : extent)
    if (e == 0) return;
  const size_t row = static_cast<size_t>(extent[r - 1]) * itemsize;
  std::vector<int64_t> idx(r, 0);  // position within the block, last dim fixed at 0
  for (;;) {
    uint64_t so = 0, doff = 0;
    for (size_t d = 0; d < r; ++d) {
      so = so * static_cast<uint64_t>(src_shape[d]) + static_cast<uint64_t>(idx[d]);
      doff = doff * static_cast<uint64_t>(dst_shape[d]) + static_cast<uint64_t>(origin[d] + idx[d]);
    }
    std::memcpy(dst + doff * itemsize, src + so * itemsize, row);
    size_t d = r - 1;
    while (d-- > 0) {
      if (++idx[d] < extent[d]) break;
      idx[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

// Reorders a Fortran-order block into C order.
void fortran_to_c(std::span<const uint8_t> src, std::span<uint8_t> dst, std::span<const int64_t> shape,
                  size_t itemsize) {
  const size_t r = shape.size();
  const uint64_t n = product(shape);
  std::vector<int64_t> idx(r, 0);
  for (uint64_t f = 0; f < n; ++f) {  // f walks the source in Fortran order (first index fastest)
    uint64_t c = 0;
    for (size_t d = 0; d < r; ++d) c = c * static_cast<uint64_t>(shape[d]) + static_cast<uint64_t>(idx[d]);
    std::memcpy(dst.data() + c * itemsize, src.data() + f * itemsize, itemsize);
    for (size_t d = 0; d < r; ++d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

Status decode_shard(const ZarrMetadata& m, std::span<const uint8_t> data, std::span<uint8_t> out,
                    const std::string& name) {
  const size_t r = m.chunks.size();
  std::vector<int64_t> grid(r);
  for (size_t d = 0; d < r; ++d) grid[d] = m.chunks[d] / m.inner_chunks[d];
  const uint64_t n_inner = product(grid);
  uint64_t index_bytes = n_inner * 16;
  for (ZarrBytesCodec b : m.index_codecs.bytes_codecs) index_bytes += b == ZarrBytesCodec::kCrc32c ? 4 : 0;
  if (data.size() < index_bytes)
    return corrupt_input("{}: shard is {} bytes, smaller than its {}-byte index", name, data.size(), index_bytes);
  const auto stored_index = m.index_at_end ? data.last(index_bytes) : data.first(index_bytes);
  std::vector<uint8_t> index(n_inner * 16);
  GE_TRY(decode_bytes(m.index_codecs, stored_index, index, name, "shard index"));
  if (m.index_codecs.big_endian) byteswap(index, 8);

  const uint64_t inner_bytes = product(m.inner_chunks) * static_cast<uint64_t>(m.itemsize);
  std::vector<uint8_t> tmp(inner_bytes);
  std::vector<int64_t> g(r, 0), origin(r);
  for (uint64_t i = 0; i < n_inner; ++i) {
    uint64_t off, len;
    std::memcpy(&off, index.data() + i * 16, 8);
    std::memcpy(&len, index.data() + i * 16 + 8, 8);
    if (off == UINT64_MAX && len == UINT64_MAX) {
      fill_with(tmp, m.fill);
    } else {
      if (off > data.size() || len > data.size() - off)
        return corrupt_input("{}: inner chunk {} [{}, +{}) lies outside the {}-byte shard", name, i, off, len,
                             data.size());
      GE_TRY(decode_bytes(m.inner_codecs, data.subspan(off, len), tmp, name, "inner chunk"));
      if (m.inner_codecs.big_endian) byteswap(tmp, m.itemsize);
    }
    for (size_t d = 0; d < r; ++d) origin[d] = g[d] * m.inner_chunks[d];
    copy_block(tmp.data(), m.inner_chunks, out.data(), m.chunks, origin, m.inner_chunks,
               static_cast<size_t>(m.itemsize));
    for (size_t d = r; d-- > 0;) {
      if (++g[d] < grid[d]) break;
      g[d] = 0;
    }
  }
  return {};
}

}  // namespace

int64_t ZarrMetadata::numel() const { return static_cast<int64_t>(product(shape)); }

Result<ZarrMetadata> parse_zarray(std::string_view text, const std::string& name) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt_input("{}: .zarray is not a JSON object", name);
  ZarrMetadata m;
  if (!j.contains("zarr_format") || !j["zarr_format"].is_number_integer() || j["zarr_format"].get<int64_t>() != 2)
    return corrupt_input("{}: .zarray lacks zarr_format 2", name);
  if (!j.contains("shape") || !j.contains("chunks") || !j.contains("dtype"))
    return corrupt_input("{}: .zarray lacks shape, chunks or dtype", name);
  GE_ASSIGN(m.shape, read_dims(j["shape"], "shape", name, false));
  GE_ASSIGN(m.chunks, read_dims(j["chunks"], "chunks", name, true));
  if (!j["dtype"].is_string()) return unsupported("{}: structured dtypes are not supported", name);
  std::string dt = j["dtype"].get<std::string>();
  bool big = false;
  if (dt != "bfloat16") {
    if (dt.empty() || (dt[0] != '<' && dt[0] != '>' && dt[0] != '|'))
      return unsupported("{}: dtype '{}' is not supported", name, dt);
    big = dt[0] == '>';
    dt = dt.substr(1);
  }
  bool found = false;
  for (const DtypeName& d : kDtypes)
    if (dt == d.v2) {
      m.dtype = d.type;
      m.itemsize = d.itemsize;
      found = true;
    }
  if (!found) return unsupported("{}: dtype '{}' is not supported", name, j["dtype"].get<std::string>());
  m.codecs.big_endian = big && m.itemsize > 1;
  if (j.contains("compressor") && !j["compressor"].is_null()) {
    const json& c = j["compressor"];
    if (!c.is_object() || !c.contains("id") || !c["id"].is_string())
      return corrupt_input("{}: malformed compressor", name);
    const std::string id = c["id"].get<std::string>();
    if (id != "zstd") return unsupported("{}: compressor '{}' is not supported (Orbax writes zstd)", name, id);
    m.codecs.bytes_codecs.push_back(ZarrBytesCodec::kZstd);
  }
  if (j.contains("filters") && !j["filters"].is_null() && !(j["filters"].is_array() && j["filters"].empty()))
    return unsupported("{}: zarr filters are not supported", name);
  if (j.contains("order")) {
    if (!j["order"].is_string() || (j["order"] != "C" && j["order"] != "F"))
      return corrupt_input("{}: invalid order", name);
    m.fortran_order = j["order"] == "F";
  }
  if (j.contains("dimension_separator")) {
    const json& s = j["dimension_separator"];
    if (!s.is_string() || (s != "." && s != "/")) return corrupt_input("{}: invalid dimension_separator", name);
    m.separator = s.get<std::string>()[0];
  }
  GE_ASSIGN(m.fill, encode_fill(j.contains("fill_value") ? j["fill_value"] : json(), m.dtype, m.itemsize, name));
  GE_TRY(check_geometry(m, name));
  return m;
}

Result<ZarrMetadata> parse_zarr_json(std::string_view text, const std::string& name) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt_input("{}: zarr.json is not a JSON object", name);
  ZarrMetadata m;
  m.zarr_format = 3;
  if (!j.contains("zarr_format") || !j["zarr_format"].is_number_integer() || j["zarr_format"].get<int64_t>() != 3)
    return corrupt_input("{}: zarr.json lacks zarr_format 3", name);
  if (!j.contains("node_type") || j["node_type"] != "array")
    return corrupt_input("{}: zarr.json is not an array", name);
  if (!j.contains("shape") || !j.contains("data_type") || !j.contains("chunk_grid") || !j.contains("codecs"))
    return corrupt_input("{}: zarr.json lacks shape, data_type, chunk_grid or codecs", name);
  GE_ASSIGN(m.shape, read_dims(j["shape"], "shape", name, false));
  const json& dt = j["data_type"];
  bool found = false;
  for (const DtypeName& d : kDtypes)
    if (dt.is_string() && dt == d.v3) {
      m.dtype = d.type;
      m.itemsize = d.itemsize;
      found = true;
    }
  if (!found) return unsupported("{}: data_type {} is not supported", name, dt.dump());
  const json& grid = j["chunk_grid"];
  if (!grid.is_object() || !grid.contains("name") || grid["name"] != "regular" || !grid.contains("configuration") ||
      !grid["configuration"].is_object() || !grid["configuration"].contains("chunk_shape"))
    return unsupported("{}: only a regular chunk_grid is supported", name);
  GE_ASSIGN(m.chunks, read_dims(grid["configuration"]["chunk_shape"], "chunk_shape", name, true));
  m.key_prefix.assign(1, 'c');
  m.separator = '/';
  if (j.contains("chunk_key_encoding")) {
    const json& e = j["chunk_key_encoding"];
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string())
      return corrupt_input("{}: malformed chunk_key_encoding", name);
    if (e["name"] == "v2") {
      m.key_prefix.clear();
      m.separator = '.';
    } else if (e["name"] != "default") {
      return unsupported("{}: chunk_key_encoding {} is not supported", name, e["name"].dump());
    }
    if (e.contains("configuration") && e["configuration"].is_object() && e["configuration"].contains("separator")) {
      const json& s = e["configuration"]["separator"];
      if (!s.is_string() || (s != "." && s != "/")) return corrupt_input("{}: invalid chunk key separator", name);
      m.separator = s.get<std::string>()[0];
    }
  }
  if (j.contains("storage_transformers") &&
      !(j["storage_transformers"].is_array() && j["storage_transformers"].empty()))
    return unsupported("{}: storage transformers are not supported", name);
  GE_TRY(parse_codecs(j["codecs"], m, m.codecs, true, false, name));
  GE_ASSIGN(m.fill, encode_fill(j.contains("fill_value") ? j["fill_value"] : json(), m.dtype, m.itemsize, name));
  GE_TRY(check_geometry(m, name));
  return m;
}

std::string zarr_chunk_key(const ZarrMetadata& m, std::span<const int64_t> index) {
  std::string k = m.key_prefix;
  if (index.empty()) return k.empty() ? "0" : k;
  for (size_t i = 0; i < index.size(); ++i) {
    if (!k.empty()) k += m.separator;
    k += std::to_string(index[i]);
  }
  return k;
}

Status zarr_decode_chunk(const ZarrMetadata& m, std::span<const uint8_t> stored, std::span<uint8_t> out,
                         const std::string& name) {
  if (out.size() != product(m.chunks) * static_cast<uint64_t>(m.itemsize))
    return internal_error("{}: chunk buffer of {} bytes does not match the chunk shape", name, out.size());
  if (m.sharded) return decode_shard(m, stored, out, name);
  if (m.fortran_order) {
    std::vector<uint8_t> f(out.size());
    GE_TRY(decode_bytes(m.codecs, stored, f, name, "chunk"));
    fortran_to_c(f, out, m.chunks, static_cast<size_t>(m.itemsize));
  } else {
    GE_TRY(decode_bytes(m.codecs, stored, out, name, "chunk"));
  }
  if (m.codecs.big_endian) byteswap(out, m.itemsize);
  return {};
}

Status zarr_read_array(const ZarrMetadata& m, const ZarrFetch& fetch, std::span<uint8_t> out, const std::string& name) {
  if (out.size() != m.nbytes()) return internal_error("{}: output buffer does not match the array size", name);
  const size_t r = m.shape.size();
  const size_t item = static_cast<size_t>(m.itemsize);
  for (int64_t d : m.shape)
    if (d == 0) return {};
  std::vector<int64_t> grid(r), idx(r, 0), origin(r), extent(r);
  for (size_t d = 0; d < r; ++d) grid[d] = (m.shape[d] + m.chunks[d] - 1) / m.chunks[d];
  // A chunk that spans whole trailing dimensions lands contiguously in the output: decode in place.
  bool rows_contiguous = !m.fortran_order;
  for (size_t d = 1; d < r; ++d) rows_contiguous = rows_contiguous && m.chunks[d] == m.shape[d];
  const uint64_t chunk_bytes = product(m.chunks) * item;
  std::vector<uint8_t> tmp;
  for (;;) {
    const std::string key = zarr_chunk_key(m, idx);
    for (size_t d = 0; d < r; ++d) {
      origin[d] = idx[d] * m.chunks[d];
      extent[d] = std::min(m.chunks[d], m.shape[d] - origin[d]);
    }
    GE_ASSIGN(auto stored, fetch(key));
    const std::string where = name + "/" + key;
    if (rows_contiguous && (r == 0 || extent[0] == m.chunks[0])) {
      const uint64_t offset =
          r == 0 ? 0 : static_cast<uint64_t>(origin[0]) * (chunk_bytes / static_cast<uint64_t>(m.chunks[0]));
      std::span<uint8_t> dst = out.subspan(offset, chunk_bytes);
      if (stored) GE_TRY(zarr_decode_chunk(m, *stored, dst, where));
      else fill_with(dst, m.fill);
    } else {
      tmp.resize(chunk_bytes);
      if (stored) GE_TRY(zarr_decode_chunk(m, *stored, tmp, where));
      else fill_with(tmp, m.fill);
      copy_block(tmp.data(), m.chunks, out.data(), m.shape, origin, extent, item);
    }
    size_t d = r;
    while (d-- > 0) {
      if (++idx[d] < grid[d]) break;
      idx[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) break;
  }
  return {};
}

}  // namespace gemma

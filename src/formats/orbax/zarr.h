// zarr v2 (.zarray) and v3 (zarr.json) arrays as tensorstore writes them for Orbax (docs/spec/formats.md §1.3):
// metadata parsing, chunk keys, chunk decoding (zstd, crc32c, sharding_indexed, byte order) and
// assembly of a whole C-order array, edge chunks cropped, missing chunks filled.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/dtype.h"
#include "util/result.h"

namespace gemma {

// Bytes -> bytes codecs of a zarr v3 chain (v2: at most one zstd compressor).
enum class ZarrBytesCodec { kZstd, kCrc32c };

struct ZarrCodecs {
  bool big_endian = false;
  std::vector<ZarrBytesCodec> bytes_codecs;  // in encoding order (decoding runs them backwards)
};

struct ZarrMetadata {
  int zarr_format = 2;
  std::vector<int64_t> shape;
  std::vector<int64_t> chunks;  // shape of one stored value (v3: the chunk grid, i.e. the shard)
  DType dtype = DType::F32;
  int itemsize = 4;
  std::vector<uint8_t> fill;   // one element, little-endian
  bool fortran_order = false;  // v2 "order": "F"
  std::string key_prefix;      // v3 default encoding: "c"; else empty
  char separator = '.';
  ZarrCodecs codecs;  // of the stored value (v3 with sharding: the codecs after the shard)
  // v3 sharding_indexed: each stored value is a shard of inner chunks plus an index.
  bool sharded = false;
  std::vector<int64_t> inner_chunks;
  ZarrCodecs inner_codecs;
  ZarrCodecs index_codecs;
  bool index_at_end = true;

  int64_t numel() const;
  uint64_t nbytes() const { return static_cast<uint64_t>(numel()) * static_cast<uint64_t>(itemsize); }
};

// Parses `.zarray` (v2) or `zarr.json` (v3) text. `name` is used in errors.
Result<ZarrMetadata> parse_zarray(std::string_view json, const std::string& name);
Result<ZarrMetadata> parse_zarr_json(std::string_view json, const std::string& name);

// The key of a chunk (relative to the array), e.g. "0.1.0" (v2) or "c/0/1/0" (v3 default).
std::string zarr_chunk_key(const ZarrMetadata& m, std::span<const int64_t> index);

// Decodes one stored value into `out` (prod(chunks) * itemsize bytes, C order, little-endian).
Status zarr_decode_chunk(const ZarrMetadata& m, std::span<const uint8_t> stored, std::span<uint8_t> out,
                         const std::string& name);

// Returns the stored bytes of a chunk key, or nullopt when the chunk is absent (= fill value).
using ZarrFetch = std::function<Result<std::optional<std::span<const uint8_t>>>(const std::string& key)>;

// Reads the whole array into `out` (m.nbytes() bytes): C order, little-endian.
Status zarr_read_array(const ZarrMetadata& m, const ZarrFetch& fetch, std::span<uint8_t> out, const std::string& name);

}  // namespace gemma

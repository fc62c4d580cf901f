// Reading zstd-compressed files (test fixtures are committed compressed; OCDBT and zarr chunks
// are zstd frames). Thin wrapper over libzstd.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "util/result.h"

namespace gemma {

// Decompresses one or more concatenated zstd frames. Fails cleanly on corrupt input or when the
// output would exceed max_bytes.
Result<std::string> zstd_decompress(std::span<const uint8_t> data, uint64_t max_bytes);

// Reads `path`; if it ends in ".zst" the content is decompressed.
Result<std::string> read_file_maybe_zstd(const std::string& path, uint64_t max_bytes = uint64_t{1} << 32);

}  // namespace gemma

// The one zstd decoder (test fixtures are committed compressed; OCDBT nodes and zarr chunks are
// zstd frames; tokenizer files may be .zst). Every call is bounded: a corrupt or hostile frame
// cannot make it write past its output cap, and corrupt, truncated or oversized data is an error
// of kind corrupt input (resource exhausted only when the decoder itself cannot be allocated).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "util/result.h"

namespace gemma {

// Decompresses one or more concatenated zstd frames, at most max_bytes of output.
Result<std::string> zstd_decompress(std::span<const uint8_t> data, uint64_t max_bytes);

// Decompresses straight into `dst`, which caps the output; returns how many bytes were written
// (the caller checks it is the size it expects).
Result<size_t> zstd_decompress_into(std::span<const uint8_t> data, std::span<uint8_t> dst);

// Whether `level` is a compression level libzstd accepts (OCDBT manifests record one).
bool zstd_level_valid(int level);

// Reads `path`; if it ends in ".zst" the content is decompressed.
Result<std::string> read_file_maybe_zstd(const std::string& path, uint64_t max_bytes = uint64_t{1} << 32);

}  // namespace gemma

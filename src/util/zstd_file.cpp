#include "util/zstd_file.h"

#include <memory>

#include <zstd.h>

#include "util/mapped_file.h"

namespace gemma {

Result<std::string> zstd_decompress(std::span<const uint8_t> data, uint64_t max_bytes) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) return resource_exhausted("zstd: out of memory");
  std::string out;
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  std::string chunk(ZSTD_DStreamOutSize(), '\0');
  size_t last = 0;
  while (in.pos < in.size) {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    last = ZSTD_decompressStream(ctx.get(), &ob, &in);
    if (ZSTD_isError(last)) return corrupt_input("zstd: corrupt data: {}", ZSTD_getErrorName(last));
    if (out.size() + ob.pos > max_bytes) return corrupt_input("zstd: decompressed size exceeds {} bytes", max_bytes);
    out.append(chunk.data(), ob.pos);
    if (ob.pos == 0 && in.pos == in.size) break;
  }
  // Drain what is buffered inside the context.
  while (last != 0) {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    last = ZSTD_decompressStream(ctx.get(), &ob, &in);
    if (ZSTD_isError(last)) return corrupt_input("zstd: corrupt data: {}", ZSTD_getErrorName(last));
    if (ob.pos == 0) {
      if (last != 0) return corrupt_input("zstd: truncated frame");
      break;
    }
    if (out.size() + ob.pos > max_bytes) return corrupt_input("zstd: decompressed size exceeds {} bytes", max_bytes);
    out.append(chunk.data(), ob.pos);
  }
  return out;
}

Result<std::string> read_file_maybe_zstd(const std::string& path, uint64_t max_bytes) {
  bool compressed = path.size() > 4 && path.compare(path.size() - 4, 4, ".zst") == 0;
  if (!compressed) return read_text_file(path, max_bytes);
  GE_ASSIGN(auto map, MappedFile::open(path));
  auto r = zstd_decompress(map->bytes(), max_bytes);
  if (!r.ok()) return with_context(std::move(r).error(), path);
  return std::move(r).value();
}

}  // namespace gemma

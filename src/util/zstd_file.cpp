#include "util/zstd_file.h"

#include <algorithm>
#include <memory>
#include <new>

#include <zstd.h>

#include "util/mapped_file.h"

namespace gemma {

namespace {

// The decoder loop behind every entry point. `room(written)` returns where the next output goes
// (the caller's buffer after `written` bytes, grown or not; empty once the cap is reached), so
// the output can never pass the cap. Every call must make progress, consuming input or producing
// output; one that cannot is a truncated frame, or, with no room left, data beyond the cap.
template <typename Room>
Result<uint64_t> decode(std::span<const uint8_t> data, uint64_t max_bytes, Room room) {
  if (data.empty()) return uint64_t{0};
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) return resource_exhausted("zstd: cannot allocate a decoder");
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  uint64_t written = 0;
  for (;;) {
    std::span<uint8_t> dst = room(written);
    ZSTD_outBuffer out{dst.data(), dst.size(), 0};
    const size_t in0 = in.pos;
    const size_t ret = ZSTD_decompressStream(ctx.get(), &out, &in);
    if (ZSTD_isError(ret)) return corrupt_input("corrupt zstd data ({})", ZSTD_getErrorName(ret));
    written += out.pos;
    if (ret == 0 && in.pos == in.size) return written;  // every frame complete
    if (in.pos == in0 && out.pos == 0) {
      if (dst.empty() || written >= max_bytes)
        return corrupt_input("zstd data decompresses to more than {} bytes", max_bytes);
      return corrupt_input("truncated zstd frame");
    }
  }
}

}  // namespace

Result<std::string> zstd_decompress(std::span<const uint8_t> data, uint64_t max_bytes) {
  std::string out;
  bool no_memory = false;
  auto room = [&](uint64_t written) -> std::span<uint8_t> {
    if (written == out.size() && out.size() < max_bytes) {  // full: grow, doubling, up to the cap
      const uint64_t grown = std::min<uint64_t>(max_bytes, std::max<uint64_t>(ZSTD_DStreamOutSize(), 2 * out.size()));
      try {
        out.resize(static_cast<size_t>(grown));
      } catch (const std::bad_alloc&) {
        no_memory = true;
        return {};
      }
    }
    return {reinterpret_cast<uint8_t*>(out.data()) + written, out.size() - static_cast<size_t>(written)};
  };
  auto n = decode(data, max_bytes, room);
  if (no_memory) return resource_exhausted("zstd: cannot allocate {} bytes of output", 2 * out.size());
  if (!n.ok()) return std::move(n).error();
  out.resize(static_cast<size_t>(*n));
  return out;
}

Result<size_t> zstd_decompress_into(std::span<const uint8_t> data, std::span<uint8_t> dst) {
  auto room = [&](uint64_t written) { return dst.subspan(static_cast<size_t>(written)); };
  GE_ASSIGN(const uint64_t n, decode(data, dst.size(), room));
  return static_cast<size_t>(n);
}

bool zstd_level_valid(int level) { return level >= ZSTD_minCLevel() && level <= ZSTD_maxCLevel(); }

Result<std::string> read_file_maybe_zstd(const std::string& path, uint64_t max_bytes) {
  bool compressed = path.size() > 4 && path.compare(path.size() - 4, 4, ".zst") == 0;
  if (!compressed) return read_text_file(path, max_bytes);
  GE_ASSIGN(auto map, MappedFile::open(path));
  auto r = zstd_decompress(map->bytes(), max_bytes);
  if (!r.ok()) return with_context(std::move(r).error(), path);
  return std::move(r).value();
}

}  // namespace gemma

#include "formats/torch/zip_reader.h"

#include <algorithm>

#include "util/byte_reader.h"
#include "util/printable.h"

namespace gemma {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kLocator64Sig = 0x07064b50;
constexpr size_t kEndLen = 22, kLocator64Len = 20, kEnd64Len = 56, kCentralLen = 46, kLocalLen = 30;
constexpr uint16_t kZip64ExtraId = 0x0001;
// General-purpose flags: 0 = encrypted, 6 = strong encryption, 13 = encrypted central directory.
constexpr uint16_t kEncryptedFlags = (1u << 0) | (1u << 6) | (1u << 13);

uint32_t u32_at(std::span<const uint8_t> b, uint64_t off) {
  if (off > b.size()) return 0;
  ByteReader r(b.subspan(static_cast<size_t>(off)));
  return r.read<uint32_t>();
}

// a + b <= limit without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

// Names must stay inside the archive: relative, no "." / ".." / empty components, no backslash
// (a Windows separator) and no NUL (a C-string terminator some tools stop at).
bool safe_name(std::string_view n) {
  if (n.empty() || n.size() > 4096) return false;
  size_t start = 0;
  while (true) {
    size_t end = n.find('/', start);
    std::string_view part = n.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  for (char c : n)
    if (c == '\\' || c == '\0') return false;
  return true;
}

}  // namespace

Result<ZipReader> ZipReader::open(std::span<const uint8_t> bytes, const std::string& src) {
  const uint64_t size = bytes.size();
  if (size < kEndLen)
    return corrupt_input("{}: not a ZIP archive ({} bytes, no end-of-central-directory record)", src, size);
  // The end record is the last 22 bytes plus a comment of up to 65535 bytes; take the last
  // signature whose comment length reaches exactly to the end of the file.
  uint64_t end_pos = size;
  const uint64_t lowest = size - kEndLen > 0xffff ? size - kEndLen - 0xffff : 0;
  for (uint64_t p = size - kEndLen + 1; p-- > lowest;) {
    if (u32_at(bytes, p) != kEndSig) continue;
    ByteReader r(bytes.subspan(static_cast<size_t>(p + 20)));
    if (r.read<uint16_t>() == size - p - kEndLen) {
      end_pos = p;
      break;
    }
  }
  if (end_pos == size)
    return corrupt_input("{}: not a ZIP archive (no end-of-central-directory record; truncated?)", src);
  ByteReader e(bytes.subspan(static_cast<size_t>(end_pos + 4)));
  uint32_t disk = e.read<uint16_t>(), cd_disk = e.read<uint16_t>();
  uint64_t n_disk = e.read<uint16_t>(), n_total = e.read<uint16_t>();
  uint64_t cd_size = e.read<uint32_t>(), cd_offset = e.read<uint32_t>();
  uint64_t cd_limit = end_pos;  // the central directory ends before the (ZIP64) end records

  // ZIP64: torch writes the locator and the ZIP64 end record in every file (§8.2).
  if (end_pos >= kLocator64Len && u32_at(bytes, end_pos - kLocator64Len) == kLocator64Sig) {
    const uint64_t loc_pos = end_pos - kLocator64Len;
    ByteReader l(bytes.subspan(static_cast<size_t>(loc_pos + 4)));
    const uint32_t end64_disk = l.read<uint32_t>();
    const uint64_t end64_pos = l.read<uint64_t>();
    const uint32_t n_disks = l.read<uint32_t>();
    if (end64_disk != 0 || n_disks > 1) return unsupported("{}: multi-disk ZIP archives are not supported", src);
    if (!fits(end64_pos, kEnd64Len, loc_pos) || u32_at(bytes, end64_pos) != kEnd64Sig)
      return corrupt_input("{}: ZIP64 locator at byte {} points to {}, where there is no ZIP64 end record", src,
                           loc_pos, end64_pos);
    ByteReader z(bytes.subspan(static_cast<size_t>(end64_pos + 4)));
    const uint64_t rec_size = z.read<uint64_t>();
    z.skip(4);  // versions
    disk = z.read<uint32_t>();
    cd_disk = z.read<uint32_t>();
    n_disk = z.read<uint64_t>();
    n_total = z.read<uint64_t>();
    cd_size = z.read<uint64_t>();
    cd_offset = z.read<uint64_t>();
    if (rec_size < kEnd64Len - 12 || !fits(end64_pos + 12, rec_size, loc_pos))
      return corrupt_input("{}: ZIP64 end record at byte {} has an invalid size {}", src, end64_pos, rec_size);
    cd_limit = end64_pos;
  }
  if (disk != 0 || cd_disk != 0 || n_disk != n_total)
    return unsupported("{}: multi-disk ZIP archives are not supported", src);
  if (!fits(cd_offset, cd_size, cd_limit))
    return corrupt_input(
        "{}: central directory [{}, +{}) extends past the end records at byte {} (truncated or corrupt)", src,
        cd_offset, cd_size, cd_limit);
  if (n_total > cd_size / kCentralLen)
    return corrupt_input("{}: {} entries cannot fit a central directory of {} bytes", src, n_total, cd_size);

  ZipReader zr;
  zr.bytes_ = bytes;
  zr.entries_.reserve(static_cast<size_t>(n_total));
  ByteReader c(bytes.subspan(static_cast<size_t>(cd_offset), static_cast<size_t>(cd_size)));
  for (uint64_t i = 0; i < n_total; ++i) {
    const uint64_t rec_pos = cd_offset + c.pos();
    if (c.read<uint32_t>() != kCentralSig || !c.ok())
      return corrupt_input("{}: central directory entry {} at byte {} has a bad signature", src, i, rec_pos);
    c.skip(4);  // versions
    const uint16_t flags = c.read<uint16_t>();
    const uint16_t method = c.read<uint16_t>();
    c.skip(8);  // time, date, crc
    uint64_t csize = c.read<uint32_t>(), usize = c.read<uint32_t>();
    const uint16_t name_len = c.read<uint16_t>(), extra_len = c.read<uint16_t>(), comment_len = c.read<uint16_t>();
    uint32_t start_disk = c.read<uint16_t>();
    c.skip(6);  // attributes
    uint64_t local_pos = c.read<uint32_t>();
    const std::string name(c.take_string(name_len));
    std::span<const uint8_t> extra = c.take(extra_len);
    c.skip(comment_len);
    if (!c.ok()) return corrupt_input("{}: central directory entry {} at byte {} is truncated", src, i, rec_pos);
    // ZIP64 extra: only the fields saturated in the fixed part, in this order (§8.2).
    ByteReader x(extra);
    while (x.remaining() >= 4) {
      const uint16_t id = x.read<uint16_t>(), len = x.read<uint16_t>();
      ByteReader f(x.take(len));
      if (!x.ok()) return corrupt_input("{}: entry '{}' has a malformed extra field", src, printable(name));
      if (id != kZip64ExtraId) continue;
      if (usize == 0xffffffffu) usize = f.read<uint64_t>();
      if (csize == 0xffffffffu) csize = f.read<uint64_t>();
      if (local_pos == 0xffffffffu) local_pos = f.read<uint64_t>();
      if (start_disk == 0xffffu) start_disk = f.read<uint32_t>();
      if (!f.ok())
        return corrupt_input("{}: entry '{}' has a ZIP64 extra field too short for its saturated sizes", src,
                             printable(name));
    }
    if (!safe_name(name)) return corrupt_input("{}: entry name '{}' is not a safe relative path", src, printable(name));
    if (flags & kEncryptedFlags) return unsupported("{}: entry '{}' is encrypted", src, name);
    if (method != 0)
      return unsupported("{}: entry '{}' is compressed (method {}{}); torch archives store entries uncompressed", src,
                         name, method, method == 8 ? ", deflate" : "");
    if (csize != usize)
      return corrupt_input("{}: stored entry '{}' has compressed size {} != uncompressed size {}", src, name, csize,
                           usize);
    if (start_disk != 0) return unsupported("{}: multi-disk ZIP archives are not supported", src);

    // Local header: only the name and extra lengths are used (torch leaves its sizes 0).
    if (!fits(local_pos, kLocalLen, cd_offset) || u32_at(bytes, local_pos) != kLocalSig)
      return corrupt_input("{}: entry '{}' points to byte {}, where there is no local header", src, name, local_pos);
    ByteReader lh(bytes.subspan(static_cast<size_t>(local_pos + 6)));
    const uint16_t lflags = lh.read<uint16_t>(), lmethod = lh.read<uint16_t>();
    lh.skip(16);
    const uint16_t lname_len = lh.read<uint16_t>(), lextra_len = lh.read<uint16_t>();
    const uint64_t data_offset = local_pos + kLocalLen + lname_len + lextra_len;
    if ((lflags & kEncryptedFlags) || lmethod != 0)
      return unsupported("{}: local header of '{}' at byte {} says compressed or encrypted", src, name, local_pos);
    if (lname_len != name_len || !fits(local_pos + kLocalLen, lname_len, cd_offset) ||
        std::string_view(reinterpret_cast<const char*>(bytes.data() + local_pos + kLocalLen), lname_len) != name)
      return corrupt_input("{}: local header at byte {} names a different entry than the central directory ('{}')", src,
                           local_pos, name);
    if (!fits(data_offset, usize, cd_offset))
      return corrupt_input(
          "{}: data of '{}' [{}, +{}) runs into the central directory at byte {} (truncated or corrupt)", src, name,
          data_offset, usize, cd_offset);
    zr.entries_.push_back({name, data_offset, usize});
  }
  if (!c.at_end())
    return corrupt_input("{}: central directory holds {} bytes after its {} entries", src, c.remaining(), n_total);

  zr.by_name_.resize(zr.entries_.size());
  for (size_t i = 0; i < zr.by_name_.size(); ++i) zr.by_name_[i] = i;
  std::sort(zr.by_name_.begin(), zr.by_name_.end(),
            [&](size_t a, size_t b) { return zr.entries_[a].name < zr.entries_[b].name; });
  for (size_t i = 1; i < zr.by_name_.size(); ++i)
    if (zr.entries_[zr.by_name_[i]].name == zr.entries_[zr.by_name_[i - 1]].name)
      return corrupt_input("{}: duplicate entry '{}'", src, zr.entries_[zr.by_name_[i]].name);
  return zr;
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [&](size_t i, std::string_view n) { return entries_[i].name < n; });
  if (it == by_name_.end() || entries_[*it].name != name) return nullptr;
  return &entries_[*it];
}

}  // namespace gemma

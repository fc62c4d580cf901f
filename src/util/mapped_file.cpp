#include "util/mapped_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gemma {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// A path that names nothing is "not found"; one we may not read (EACCES, ELOOP, ...) is the caller's
// mistake in a different way, so it is an invalid argument rather than a 404.
Error open_failed(const std::string& path, int err) {
  if (err == ENOENT || err == ENOTDIR) return not_found("{}: cannot open: {}", path, std::strerror(err));
  return invalid_argument("{}: cannot open: {}", path, std::strerror(err));
}

// The file's `size` bytes (only the sorted, disjoint `ranges` of them) read into anonymous memory
// that starts on a 2 MiB boundary and is marked MADV_HUGEPAGE, so the kernel backs it with huge
// pages as the reads fault it in. Returns the region (2 MiB multiple) for munmap; its bytes are
// read-only afterwards, as a file map's are.
Result<std::pair<void*, size_t>> read_into_huge_pages(int fd, size_t size, const std::string& path,
                                                      std::span<const MappedFile::Range> ranges) {
  const size_t bytes = (size + kHugePage - 1) / kHugePage * kHugePage;
  void* p = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return resource_exhausted("{}: cannot reserve {} bytes: {}", path, bytes, std::strerror(errno));
  // Keep the 2 MiB-aligned part of the reservation, release the rest.
  auto* base = static_cast<uint8_t*>(p);
  auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1));
  if (aligned > base) munmap(base, static_cast<size_t>(aligned - base));
  if (aligned + bytes < base + bytes + kHugePage)
    munmap(aligned + bytes, static_cast<size_t>(base + bytes + kHugePage - (aligned + bytes)));
#ifdef MADV_HUGEPAGE
  madvise(aligned, bytes, MADV_HUGEPAGE);  // advice only: without it the copy still works, on 4 KiB pages
#endif
  for (const MappedFile::Range& r : ranges) {
    for (size_t done = static_cast<size_t>(r.begin); done < r.end;) {
      const ssize_t n =
          pread(fd, aligned + done, std::min<size_t>(r.end - done, size_t{1} << 30), static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string why = n < 0 ? std::strerror(errno) : "file shrank while reading";
        munmap(aligned, bytes);
        return internal_error("{}: cannot read: {}", path, why);
      }
      done += static_cast<size_t>(n);
    }
  }
  mprotect(aligned, bytes, PROT_READ);
  return std::pair<void*, size_t>{aligned, bytes};
}

}  // namespace

size_t available_memory() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("MemAvailable:", 0) == 0)
      return static_cast<size_t>(std::strtoull(line.c_str() + 13, nullptr, 10)) * 1024;
  return SIZE_MAX;
}

bool huge_pages_available() {
  static const bool available = [] {
    std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string modes;
    std::getline(in, modes);
    return in && modes.find("[never]") == std::string::npos;
  }();
  return available;
}

Result<RegularFile> open_regular_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever. It changes
  // nothing for the regular files we go on to read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return open_failed(path, errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return internal_error("{}: cannot stat: {}", path, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    // A FIFO or a device (/dev/zero) would block or never end; a directory is not a file.
    const char* what = S_ISDIR(st.st_mode)                          ? "a directory"
                       : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                    : "a special file";
    return invalid_argument("{}: is {}, expected a regular file", path, what);
  }
  return RegularFile{fd, static_cast<uint64_t>(st.st_size)};
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path, FilePages pages) {
  const Range all{0, UINT64_MAX};
  return open_ranges(path, pages, std::span<const Range>(&all, 1));
}

Result<std::shared_ptr<MappedFile>> MappedFile::open_ranges(const std::string& path, FilePages pages,
                                                            std::span<const Range> wanted) {
  GE_ASSIGN(const RegularFile file, open_regular_file(path));
  const int fd = file.fd;
  const size_t size = static_cast<size_t>(file.size);
  if (size == 0) {
    ::close(fd);
    return corrupt_input("{}: file is empty", path);
  }
  // A copy cannot be paged back to the file, so a model that would not fit in memory stays mapped.
  if (pages == FilePages::kHuge && huge_pages_available() && size < available_memory() / 10 * 9) {
    // Clamp to the file, sort and merge, so each byte is read once.
    std::vector<Range> ranges;
    for (const Range& r : wanted)
      if (std::min<uint64_t>(r.end, size) > r.begin) ranges.push_back({r.begin, std::min<uint64_t>(r.end, size)});
    std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    std::vector<Range> merged;
    uint64_t copied = 0;
    for (const Range& r : ranges) {
      if (!merged.empty() && r.begin <= merged.back().end) merged.back().end = std::max(merged.back().end, r.end);
      else merged.push_back(r);
    }
    for (const Range& r : merged) copied += r.end - r.begin;
    auto region = read_into_huge_pages(fd, size, path, merged);
    ::close(fd);
    if (!region.ok()) return std::move(region).error();
    const auto [map, map_bytes] = *region;
    auto copy = std::shared_ptr<MappedFile>(
        new MappedFile(path, static_cast<const uint8_t*>(map), size, map, map_bytes, /*huge=*/true));
    copy->copied_ = copied;
    return copy;
  }
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) return resource_exhausted("{}: cannot mmap: {}", path, std::strerror(e));
  return std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(p), size, p, size, false));
}

MappedFile::~MappedFile() {
  if (map_) munmap(map_, map_bytes_);
}

Result<std::string> read_text_file(const std::string& path, uint64_t max_bytes) {
  GE_ASSIGN(const RegularFile file, open_regular_file(path));
  if (file.size > max_bytes) {
    ::close(file.fd);
    return invalid_argument("{}: {} bytes is larger than the {} a text file here may have", path, file.size, max_bytes);
  }
  std::string out(static_cast<size_t>(file.size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = pread(file.fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(file.fd);
      return internal_error("{}: read error: {}", path, n < 0 ? std::strerror(e) : "file shrank while reading");
    }
    done += static_cast<size_t>(n);
  }
  ::close(file.fd);
  return out;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace gemma

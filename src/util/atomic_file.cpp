#include "util/atomic_file.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gemma {

Status write_file_atomically(const std::string& path, const std::function<Status(FILE* f)>& write) {
  // Beside the target, so that rename() stays within one file system.
  std::string tmpl = path + ".tmp-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) return invalid_argument("{}: cannot create: {}", path, std::strerror(errno));
  const std::string tmp(name.data());
  // mkstemp creates 0600; an output is an ordinary file, readable as the umask allows.
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  FILE* f = fdopen(fd, "wb");
  if (!f) {
    const int e = errno;
    ::close(fd);
    unlink(tmp.c_str());
    return internal_error("{}: cannot create: {}", path, std::strerror(e));
  }
  Status st = write(f);
  if (st.ok() && (std::ferror(f) || std::fflush(f) != 0))
    st = internal_error("{}: write failed: {}", path, std::strerror(errno));
  if (st.ok() && fsync(fileno(f)) != 0) st = internal_error("{}: write failed: {}", path, std::strerror(errno));
  if (std::fclose(f) != 0 && st.ok()) st = internal_error("{}: write failed: {}", path, std::strerror(errno));
  if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    st = internal_error("{}: cannot replace: {}", path, std::strerror(errno));
  if (!st.ok()) unlink(tmp.c_str());
  return st;
}

Status write_file_atomically(const std::string& path, const std::string& contents) {
  return write_file_atomically(path, [&](FILE* f) -> Status {
    if (std::fwrite(contents.data(), 1, contents.size(), f) != contents.size())
      return internal_error("{}: write failed: {}", path, std::strerror(errno));
    return {};
  });
}

}  // namespace gemma

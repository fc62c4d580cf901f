#include "formats/orbax/file_set.h"

#include <algorithm>
#include <filesystem>

#include "util/mapped_file.h"

namespace gemma {

namespace fs = std::filesystem;

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a.back() == '/' ? a + b : a + "/" + b;
}

bool is_safe_relative_path(std::string_view p) {
  if (p.empty() || p.front() == '/' || p.find('\0') != std::string_view::npos || p.find('\\') != std::string_view::npos)
    return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    if (p.substr(start, end - start) == "..") return false;
    start = end + 1;
  }
  return true;
}

namespace {

class DiskFileSet : public FileSet {
 public:
  explicit DiskFileSet(std::string root) : root_(std::move(root)) {}

  Result<FileBytes> read(const std::string& rel) const override {
    GE_ASSIGN(auto map, MappedFile::open(path(rel)));
    auto bytes = map->bytes();
    return FileBytes{bytes, std::move(map)};
  }
  bool is_file(const std::string& rel) const override {
    std::error_code ec;
    return fs::is_regular_file(path(rel), ec);
  }
  std::vector<std::pair<std::string, bool>> list(const std::string& rel) const override {
    std::vector<std::pair<std::string, bool>> out;
    std::error_code ec;
    for (fs::directory_iterator it(path(rel), ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code ec2;
      out.emplace_back(it->path().filename().string(), it->is_directory(ec2));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string path(const std::string& rel) const override {
    return rel.empty() ? root_ : (fs::path(root_) / rel).string();
  }

 private:
  std::string root_;
};

class MemoryFileSet : public FileSet {
 public:
  MemoryFileSet(std::string name, std::map<std::string, std::string> files)
      : name_(std::move(name)), files_(std::make_shared<std::map<std::string, std::string>>(std::move(files))) {}

  Result<FileBytes> read(const std::string& rel) const override {
    auto it = files_->find(rel);
    if (it == files_->end()) return not_found("{}: cannot open: No such file or directory", path(rel));
    const std::string& s = it->second;
    return FileBytes{{reinterpret_cast<const uint8_t*>(s.data()), s.size()}, files_};
  }
  bool is_file(const std::string& rel) const override { return files_->count(rel) != 0; }
  std::vector<std::pair<std::string, bool>> list(const std::string& rel) const override {
    const std::string prefix = rel.empty() ? "" : rel + "/";
    std::map<std::string, bool> names;
    for (auto it = files_->lower_bound(prefix); it != files_->end() && it->first.compare(0, prefix.size(), prefix) == 0;
         ++it) {
      const std::string rest = it->first.substr(prefix.size());
      const size_t slash = rest.find('/');
      if (slash == std::string::npos) names.emplace(rest, false);
      else names[rest.substr(0, slash)] = true;
    }
    return {names.begin(), names.end()};
  }
  std::string path(const std::string& rel) const override { return join_path(name_, rel); }

 private:
  std::string name_;
  std::shared_ptr<std::map<std::string, std::string>> files_;
};

}  // namespace

std::shared_ptr<FileSet> disk_file_set(const std::string& root) { return std::make_shared<DiskFileSet>(root); }

std::shared_ptr<FileSet> memory_file_set(std::string name, std::map<std::string, std::string> files) {
  return std::make_shared<MemoryFileSet>(std::move(name), std::move(files));
}

}  // namespace gemma

// What every format reader produces: named tensors as views (dtype, row-major shape, bytes) plus
// the memory that keeps them alive (a file map, or buffers the reader had to build).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/dtype.h"
#include "util/result.h"

namespace gemma {

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major, outermost first: a torch [out, in] matrix is {out, in}
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 1 : numel() / shape.back(); }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  std::string shape_string() const;
};

class TensorSet {
 public:
  void add(Tensor t) { tensors_[t.name] = std::move(t); }
  const Tensor* find(std::string_view name) const;
  const std::map<std::string, Tensor, std::less<>>& all() const { return tensors_; }
  size_t size() const { return tensors_.size(); }

  // Keeps a file map or a buffer alive as long as the tensors that point into it.
  void keep_alive(std::shared_ptr<const void> owner) { owners_.push_back(std::move(owner)); }
  // Takes over the memory owners of another set (whose tensors were copied into this one).
  void merge_owners(const TensorSet& other) {
    owners_.insert(owners_.end(), other.owners_.begin(), other.owners_.end());
  }
  // Allocates a buffer owned by this set (for tensors a reader had to convert).
  uint8_t* allocate(uint64_t nbytes);

 private:
  std::map<std::string, Tensor, std::less<>> tensors_;
  std::vector<std::shared_ptr<const void>> owners_;
};

}  // namespace gemma

#include "formats/tensor_set.h"

#include <fmt/format.h>

namespace gemma {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

const Tensor* TensorSet::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

uint8_t* TensorSet::allocate(uint64_t nbytes) {
  auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[nbytes > 0 ? nbytes : 1]);
  uint8_t* p = buf.get();
  owners_.push_back(std::shared_ptr<const void>(buf, p));
  return p;
}

}  // namespace gemma

#include "formats/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "util/atomic_file.h"

namespace gemma {

namespace {
constexpr uint64_t kAlign = 32;
template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}
enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };
}  // namespace

void GgufWriter::set_u32(const std::string& k, uint32_t v) { put_str(kv_, k), put(kv_, kU32), put(kv_, v), ++n_kv_; }
void GgufWriter::set_f32(const std::string& k, float v) { put_str(kv_, k), put(kv_, kF32), put(kv_, v), ++n_kv_; }
void GgufWriter::set_bool(const std::string& k, bool v) {
  put_str(kv_, k), put(kv_, kBool), put<uint8_t>(kv_, v ? 1 : 0), ++n_kv_;
}
void GgufWriter::set_string(const std::string& k, const std::string& v) {
  put_str(kv_, k), put(kv_, kString), put_str(kv_, v), ++n_kv_;
}
void GgufWriter::set_string_array(const std::string& k, const std::vector<std::string>& v) {
  put_str(kv_, k), put(kv_, kArray), put(kv_, kString), put<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_str(kv_, s);
  ++n_kv_;
}
void GgufWriter::set_f32_array(const std::string& k, const std::vector<float>& v) {
  put_str(kv_, k), put(kv_, kArray), put(kv_, kF32), put<uint64_t>(kv_, v.size());
  for (float f : v) put(kv_, f);
  ++n_kv_;
}
void GgufWriter::set_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  put_str(kv_, k), put(kv_, kArray), put(kv_, kI32), put<uint64_t>(kv_, v.size());
  for (int32_t x : v) put(kv_, x);
  ++n_kv_;
}
void GgufWriter::set_bool_array(const std::string& k, const std::vector<bool>& v) {
  put_str(kv_, k), put(kv_, kArray), put(kv_, kBool), put<uint64_t>(kv_, v.size());
  for (bool b : v) put<uint8_t>(kv_, b ? 1 : 0);
  ++n_kv_;
}

Status GgufWriter::add_tensor(const std::string& name, DType type, std::vector<int64_t> shape, Fill fill) {
  if (name.size() > 63) return invalid_argument("tensor name '{}' is longer than GGUF's 63 bytes", name);
  if (shape.empty() || shape.size() > 4) return invalid_argument("tensor '{}' has rank {}", name, shape.size());
  if (ggml_type_of(type) == UINT32_MAX)
    return unsupported("tensor '{}': type {} has no GGUF id", name, dtype_name(type));
  auto rb = row_bytes(type, static_cast<uint64_t>(shape.back()));
  if (!rb)
    return invalid_argument("tensor '{}': {} columns are not a multiple of {}'s block", name, shape.back(),
                            dtype_name(type));
  uint64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= static_cast<uint64_t>(shape[i]);
  tensors_.push_back({name, type, std::move(shape), *rb * rows, std::move(fill)});
  return {};
}

Status GgufWriter::write(const std::string& path) const {
  std::string head = "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, n_kv_);
  head += kv_;
  uint64_t offset = 0;
  for (const Entry& t : tensors_) {
    put_str(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    for (size_t d = t.shape.size(); d-- > 0;)
      put<uint64_t>(head, static_cast<uint64_t>(t.shape[d]));  // ne[0] innermost
    put<uint32_t>(head, ggml_type_of(t.type));
    put<uint64_t>(head, offset);
    offset += (t.nbytes + kAlign - 1) / kAlign * kAlign;
  }
  head.resize((head.size() + kAlign - 1) / kAlign * kAlign, '\0');
  return write_file_atomically(path, [&](FILE* f) -> Status {
    if (std::fwrite(head.data(), 1, head.size(), f) != head.size()) return internal_error("{}: write failed", path);
    std::vector<uint8_t> buf;
    for (const Entry& t : tensors_) {
      buf.assign((t.nbytes + kAlign - 1) / kAlign * kAlign, 0);
      GE_TRY(t.fill(buf.data()));
      if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) return internal_error("{}: write failed", path);
    }
    return {};
  });
}

}  // namespace gemma

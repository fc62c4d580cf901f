#include "formats/safetensors_writer.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace gemma {

Status SafetensorsWriter::add_tensor(const std::string& name, DType type, std::vector<int64_t> shape, Fill fill) {
  if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
    return unsupported("safetensors: tensor '{}' type {} is not a float type", name, dtype_name(type));
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  tensors_.push_back(
      {name, type, std::move(shape), n * static_cast<uint64_t>(dtype_info(type).block_bytes), std::move(fill)});
  return {};
}

Status SafetensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header;
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry& t : tensors_) {
    header[t.name] = {
        {"dtype", std::string(dtype_name(t.type))}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');
  return write_file_atomically(path, [&](FILE* f) -> Status {
    const uint64_t hl = h.size();
    if (std::fwrite(&hl, 8, 1, f) != 1 || std::fwrite(h.data(), 1, h.size(), f) != h.size())
      return internal_error("{}: write failed", path);
    std::vector<uint8_t> buf;
    for (const Entry& t : tensors_) {
      buf.assign(t.nbytes, 0);
      GE_TRY(t.fill(buf.data()));
      if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) return internal_error("{}: write failed", path);
    }
    return {};
  });
}

}  // namespace gemma

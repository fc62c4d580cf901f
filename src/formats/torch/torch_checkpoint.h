// PyTorch checkpoints written by torch.save (docs/spec/formats.md §2, §8): a ZIP archive whose data.pkl
// pickles a state dict — plain, or gemma_pytorch's {'model_state_dict': {...}} — and whose
// <archive>/data/<key> records hold the storages. Contiguous tensors become views into the
// memory map; non-contiguous ones (transposes, slices, stride 0) are copied into buffers owned
// by the TensorSet. Sharded checkpoints are a directory with pytorch_model.bin.index.json.
// Legacy (pre-zip) torch files are rejected with a clear message.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/tensor_set.h"
#include "formats/torch/pickle.h"
#include "util/result.h"

namespace gemma {

// One state-dict tensor as torch describes it, bounds-checked against its storage record.
struct TorchTensor {
  std::string name;
  TorchType type = TorchType::kFloat32;
  std::vector<int64_t> shape, stride;  // elements
  int64_t offset = 0;                  // elements of `type` from the start of the storage
  std::span<const uint8_t> storage;    // the whole storage record

  int64_t numel() const;
  uint64_t nbytes() const { return static_cast<uint64_t>(numel()) * torch_type_info(type).elem_bytes; }
  // Row-major dense (torch's is_contiguous: dimensions of size 1 may have any stride).
  bool contiguous() const;
  // Writes the elements in row-major order to `out` (nbytes() bytes).
  void gather(uint8_t* out) const;
};

// Parses the archive in `bytes` (no copies) and lists the state dict's tensors in pickle order.
// `source` names the file in errors.
Result<std::vector<TorchTensor>> parse_torch_tensors(std::span<const uint8_t> bytes, const std::string& source);

// Adds the tensors of the archive in `bytes` to `out`; `owner` keeps `bytes` alive. Tensors of
// types a TensorSet cannot hold (int64, bool, complex64, ...) are not added; their names and
// types go to `skipped` ("freqs_cis (complex64)") when given.
Status parse_torch_checkpoint(std::span<const uint8_t> bytes, const std::string& source,
                              std::shared_ptr<const void> owner, TensorSet& out,
                              std::vector<std::string>* skipped = nullptr);

// A .ckpt/.pt/.bin file, or a sharded checkpoint: a directory holding pytorch_model.bin.index.json
// (or that index file itself), whose shards are read and merged.
Status read_torch_checkpoint(const std::string& path, TensorSet& out, std::vector<std::string>* skipped = nullptr);

}  // namespace gemma

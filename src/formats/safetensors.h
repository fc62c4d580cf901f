// Hugging Face safetensors reader (docs/spec/formats.md §3.1, §9): a JSON header and a flat byte buffer.
// Tensors are views into the memory map. Sharded checkpoints are a directory with
// model.safetensors.index.json naming the shard of every tensor.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "formats/tensor_set.h"
#include "util/mapped_file.h"
#include "util/result.h"

namespace gemma {

// Which tensors a reader keeps. The others are not read into a 2 MiB-page copy (FilePages::kHuge
// copies only the header and the kept tensors' bytes), and are listed in `skipped` (if given) with
// their name, dtype, shape and nbytes but no data (data == nullptr): a text-only load of a
// multimodal checkpoint counts the vision tower without paying memory for it.
struct TensorFilter {
  std::function<bool(const std::string& name)> keep;
  TensorSet* skipped = nullptr;
  uint64_t copied_bytes = 0;  // out: bytes of the files read into 2 MiB-page copies (0 when mapped)
};

// Reads one .safetensors file into `out` (tensor names as stored); `pages`: where its bytes live.
Status read_safetensors(const std::string& path, TensorSet& out, FilePages pages = FilePages::kMapped,
                        TensorFilter* filter = nullptr);
// Same from bytes in memory (fuzz target); `owner` keeps them alive.
Status parse_safetensors(std::span<const uint8_t> bytes, const std::string& name, std::shared_ptr<const void> owner,
                         TensorSet& out);

// Reads every tensor of a checkpoint directory: the shards listed by model.safetensors.index.json,
// or the single model.safetensors. Checks that each tensor is in the shard the index names.
Status read_safetensors_dir(const std::string& dir, TensorSet& out, FilePages pages = FilePages::kMapped,
                            TensorFilter* filter = nullptr);

}  // namespace gemma

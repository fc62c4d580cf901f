// Per-format loaders. Each turns a checkpoint into a ModelConfig and tensors in the canonical
// naming (GGUF's: token_embd.weight, blk.N.attn_q.weight, ...) with norms as full multipliers.
#pragma once

#include <memory>
#include <string>

#include "formats/gguf.h"
#include "formats/tensor_set.h"
#include "model/config.h"
#include "model/model.h"

namespace gemma {

struct LoadedCheckpoint {
  ModelConfig config;
  TensorSet tensors;  // canonical names
  CheckpointInfo info;
  std::shared_ptr<GgufFile> gguf;  // set for GGUF files (holds the tokenizer metadata)
  std::string tokenizer_dir;       // directory to look for tokenizer.json / tokenizer.model
};

// `pages`: where the weights' bytes live (formats whose tensors are used in place).
Result<LoadedCheckpoint> load_gguf(const std::string& path, FilePages pages);
// A Hugging Face checkpoint directory (config.json + model*.safetensors), or a .safetensors file
// with config.json beside it.
Result<LoadedCheckpoint> load_hf(const std::string& path, FilePages pages);
// Where an HF checkpoint's parts are, for any path load_hf accepts.
struct HfPaths {
  std::string dir;       // the checkpoint directory
  std::string config;    // its config.json
  bool is_file = false;  // one .safetensors file was named (not the directory or its index)
};
HfPaths hf_paths(const std::string& path);
// The config.json of an HF checkpoint (any path load_hf accepts), parsed as load_hf does, the
// vision tower's config included (ModelConfig::vision) where it has one.
Result<ModelConfig> read_hf_config(const std::string& path);
// A Kaggle Flax/Orbax checkpoint directory (manifest.ocdbt, ocdbt.process_*/ or zarr directories).
Result<LoadedCheckpoint> load_orbax(const std::string& dir);
// gemma_pytorch .ckpt (float or int8), or a directory with one .ckpt or pytorch_model.bin.index.json.
Result<LoadedCheckpoint> load_gemma_pytorch(const std::string& path);

}  // namespace gemma

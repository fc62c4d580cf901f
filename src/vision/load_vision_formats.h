// The vision tower readers for the formats beside HF safetensors and the mmproj GGUF (load_vision
// in vision/encoder.h dispatches to them). Internal to gemma_vision.
#pragma once

#include <string>

#include "util/result.h"
#include "vision/encoder.h"

namespace gemma {

// Whether `path` is a gemma_pytorch checkpoint load_torch_vision reads: a .ckpt/.pt/.bin file, a
// directory with pytorch_model.bin.index.json, or one holding a .ckpt.
bool is_torch_checkpoint_path(const std::string& path);

// The tower of a gemma_pytorch Gemma3ForMultimodalLM checkpoint (siglip_vision_model.*,
// mm_soft_embedding_norm, mm_input_projection), in the canonical naming. The file carries no config:
// widths, layers, patch and image size come from the shapes, the head count (16) and the 4x4
// average pooling are gemma_pytorch's fixed tower config (siglip_vision/config.py).
Result<LoadedVision> load_torch_vision(const std::string& path);

}  // namespace gemma

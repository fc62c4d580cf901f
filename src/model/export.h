// Writes a loaded model as GGUF (llama.cpp's conventions, so llama.cpp can run it) or as a
// Hugging Face directory (config.json, model.safetensors, tokenizer.model): `gemma convert`.
#pragma once

#include <optional>
#include <string>

#include "formats/dtype.h"
#include "model/model.h"
#include "util/result.h"

namespace gemma {

struct ExportOptions {
  // GGUF: Q8_0 or Q4_0 quantizes every weight matrix (Q4_0 keeps the embedding in Q8_0, as
  // llama-quantize does); none keeps each tensor's stored type where GGUF has it.
  // Safetensors: F32, F16 or BF16 for all tensors; none: BF16 if the weights are BF16, else F32.
  std::optional<DType> type;
};

Status export_gguf(const Model& model, const std::string& path, const ExportOptions& options);
// `dir` is created if needed.
Status export_hf(const Model& model, const std::string& dir, const ExportOptions& options);

}  // namespace gemma

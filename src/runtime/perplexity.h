// Perplexity computed exactly as llama.cpp's llama-perplexity does, so the two compare number for
// number: the text is tokenized once with <bos>; it is cut into floor(n_tokens / n_ctx) chunks of
// n_ctx tokens; each chunk is evaluated from an empty cache with its first token replaced by
// <bos>; positions n_ctx/2 .. n_ctx-2 are scored on the next token. The estimate is
// exp(mean NLL) and its error sqrt(var(NLL) / (count - 1)) * PPL.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "model/model.h"

namespace gemma {

struct PerplexityResult {
  double ppl = 0;
  double error = 0;
  int n_chunks = 0;
  int n_scored = 0;
  std::vector<double> running_ppl;  // after each chunk, as llama.cpp prints "[i]ppl,"
};

// kv_type: F16 (as llama-perplexity's default) or F32 (--precise).
Result<PerplexityResult> perplexity(const Model& model, Backend& backend, std::span<const int32_t> tokens, int n_ctx,
                                    DType kv_type = DType::F16,
                                    const std::function<void(int chunk, double running_ppl)>& on_chunk = {});

}  // namespace gemma

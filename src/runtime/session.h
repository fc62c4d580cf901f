// A Session is one sequence being generated: its KV cache, scratch buffers and the loop that
// prefills a prompt in chunks and then decodes token by token. The cache persists across calls,
// so a chat appends each turn without prefilling the history again.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "model/model.h"
#include "runtime/sampler.h"

namespace gemma {

struct GenerateOptions {
  int max_tokens = 256;
  std::vector<int32_t> stop_ids;  // generation ends when one of these is sampled (it is not emitted)
};

struct GenerateStats {
  int n_prompt = 0;
  double prefill_seconds = 0;
  int n_generated = 0;
  double decode_seconds = 0;  // time for the n_generated - 1 decode steps after the first token
  bool stopped_by_token = false;
  bool context_full = false;
  double prefill_tps() const { return prefill_seconds > 0 ? n_prompt / prefill_seconds : 0; }
  double decode_tps() const { return decode_seconds > 0 && n_generated > 1 ? (n_generated - 1) / decode_seconds : 0; }
};

class Session {
 public:
  // Prefill chunk: on the CPU 256 tokens run as fast as 512 (the kernels' token tiles are smaller
  // still) with half the activation buffers.
  static constexpr int kDefaultChunk = 256;
  // kv_type: F16 (default, as llama.cpp) or F32 (exact float32 attention inputs).
  static Result<std::unique_ptr<Session>> create(const Model& model, Backend& backend, int n_ctx,
                                                 int max_chunk = kDefaultChunk, DType kv_type = DType::F16);

  // Appends tokens (prefill, in chunks of at most max_chunk). Fills `logits` with the last token's
  // logits ([vocab_size]). Errors if the tokens do not fit in the context.
  Status append(std::span<const int32_t> tokens, std::vector<float>& logits);

  // Appends `prompt`, then samples until a stop id, max_tokens, or a full context. on_token is
  // called with each generated id; returning false stops early.
  Result<GenerateStats> generate(std::span<const int32_t> prompt, const GenerateOptions& options, Sampler& sampler,
                                 const std::function<bool(int32_t)>& on_token);

  KvCache& cache() { return *cache_; }
  int n_past() const { return cache_->n_past(); }
  int n_ctx() const { return cache_->n_ctx(); }
  const Model& model() const { return model_; }

 private:
  Session(const Model& model, Backend& backend, std::unique_ptr<KvCache> cache, int max_chunk)
      : model_(model), backend_(backend), cache_(std::move(cache)), buf_(model.config(), max_chunk) {}

  const Model& model_;
  Backend& backend_;
  std::unique_ptr<KvCache> cache_;
  ForwardBuffers buf_;
  std::vector<float> logits_;
};

}  // namespace gemma

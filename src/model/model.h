// A loaded Gemma model: config, weights, tokenizer, and the forward pass over a batch of
// sequences. Loading detects the checkpoint format and the model variant from the files.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"
#include "util/mapped_file.h"
#include "util/result.h"

namespace gemma {

struct LoadOptions {
  std::string tokenizer_path;  // overrides the tokenizer found in or beside the checkpoint
  // Where weights used in place (GGUF, safetensors) live: a copy on 2 MiB pages (faster decode),
  // or the file's own mapping (instant start, page cache shared between processes).
  FilePages pages = FilePages::kHuge;
  // The device the model will run on: asked whether it supports each weight matrix (default: the
  // reference CPU backend's rules).
  const Backend* backend = nullptr;
};

// What `gemma inspect` reports about the file, besides the config.
struct CheckpointInfo {
  std::string format;  // "GGUF v3", "safetensors (2 shards)", ...
  std::string path;
  uint64_t file_bytes = 0;
  std::map<std::string, int> tensors_by_dtype;
  uint64_t n_params = 0;           // elements of all tensors in the checkpoint
  uint64_t vision_bytes = 0;       // bytes of the vision tower + projector (not loaded for text)
  uint64_t copied_bytes = 0;       // bytes of the files read into memory (2 MiB-page copy; 0 mapped)
  std::string tokenizer_source;    // where the tokenizer came from ("" if none)
  std::vector<std::string> notes;  // e.g. "query scale from llama.cpp's 27B rule"
};

// A chunk of one sequence in a batch: its tokens are appended at positions cache.n_past() ...
// A chunk is either token ids or ready input embeddings ([n, hidden] floats, used as the first
// layer's input as they are: Gemma 3's projected image soft tokens, which HF puts in place of the
// scaled text embeddings). One sequence appears at most once in a batch.
struct SequenceChunk {
  SequenceChunk() = default;
  SequenceChunk(KvCache* c, std::span<const int32_t> ids, int logits = 1) : cache(c), tokens(ids), n_logits(logits) {}
  KvCache* cache = nullptr;
  std::span<const int32_t> tokens;
  int n_logits = 1;                   // logits for this many trailing tokens: 1 = the last (generation), all (scoring)
  std::span<const float> embeddings;  // non-empty: the chunk's inputs instead of `tokens`
  std::span<const PositionSpan> bidirectional;  // absolute positions that attend both ways
  int64_t size(int hidden) const {
    return embeddings.empty() ? static_cast<int64_t>(tokens.size()) : static_cast<int64_t>(embeddings.size()) / hidden;
  }
};

// The activations of one forward call of up to max_tokens tokens, and its logits, in the
// backend's memory (ForwardBuffers::create). Token positions stay on the host.
struct ForwardBuffers {
  static Result<ForwardBuffers> create(Backend& backend, const ModelConfig& c, int max_tokens);
  // What create() allocates for the activations, for memory plans.
  static uint64_t bytes(const ModelConfig& c, int max_tokens);
  // Makes room for `rows` logits rows (forward() calls it; grows, never shrinks).
  Status reserve_logits(Backend& backend, const ModelConfig& c, int64_t rows);

  int max_tokens = 0;
  int64_t logit_rows = 0;  // rows the logits buffer holds now
  // Buffers are reused once their contents are consumed: attention writes its output over q, and
  // h (the normed input of a block's first products) takes the block's output.
  float *x = nullptr, *h = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *gate = nullptr, *up = nullptr;
  float* logits = nullptr;  // [logit_rows, vocab_size]
  std::vector<int32_t> positions;
  std::vector<SequenceKv> sequences;  // one layer's view of the batch's caches

 private:
  DeviceBuffer activations_, logits_;
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(const std::string& path, const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const Tokenizer* tokenizer() const { return tokenizer_ ? &*tokenizer_ : nullptr; }
  const CheckpointInfo& info() const { return info_; }
  // Vocabulary the sampler may choose from: the tokenizer's size when known (padding rows of the
  // embedding are never sampled, docs/spec/architecture.md §1.5), else the embedding rows.
  int n_vocab_out() const;

  // Runs every chunk through the model and appends logits to `logits` ([rows, vocab_size]), one
  // row for each of a chunk's n_logits trailing tokens. The total
  // tokens must fit in `buf` and each cache must have room. Advances every cache.
  Status forward(std::span<const SequenceChunk> batch, Backend& backend, ForwardBuffers& buf,
                 std::vector<float>& logits) const;

  Model(ModelConfig config, Weights weights, std::optional<Tokenizer> tokenizer, CheckpointInfo info)
      : config_(std::move(config)),
        weights_(std::move(weights)),
        tokenizer_(std::move(tokenizer)),
        info_(std::move(info)) {}

 private:
  Status layer(int l, std::span<const SequenceChunk> batch, int64_t n_tokens, Backend& be, ForwardBuffers& buf) const;

  ModelConfig config_;
  Weights weights_;
  std::optional<Tokenizer> tokenizer_;
  CheckpointInfo info_;
};

}  // namespace gemma

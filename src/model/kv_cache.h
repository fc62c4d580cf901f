// The KV cache of one sequence. Global layers keep every position up to the context length;
// sliding-window layers keep a ring buffer of window - 1 + max_chunk slots, enough for any query
// of a chunk to see its whole window (docs/spec/architecture.md §2.4.6). Position p lives in slot
// p % capacity. Memory is reserved with mmap and only the pages actually written become resident,
// so a 32K-context cache costs memory in proportion to what is used.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "formats/dtype.h"
#include "model/config.h"
#include "util/result.h"

namespace gemma {

class KvCache {
 public:
  struct Layer {
    uint8_t* k = nullptr;  // [capacity, K, H] of type()
    uint8_t* v = nullptr;  // [capacity, K, H] of type()
    int64_t capacity = 0;
  };

  // Reserves the cache; fails if the address space cannot be reserved. type: F16 (half the memory
  // and bandwidth, llama.cpp's default) or F32 (exact; the parity tests use it).
  static Result<std::unique_ptr<KvCache>> create(const ModelConfig& config, int n_ctx, int max_chunk,
                                                 DType type = DType::F16);
  DType type() const { return type_; }
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }     // positions 0 .. n_past-1 are filled
  void advance(int n) { n_past_ += n; }
  void clear() { n_past_ = 0; }
  // Forgets positions >= n (keeps a prefix, e.g. to regenerate a reply). Ring layers only keep
  // their window, so n must not be below n_past - (smallest ring capacity - max_chunk).
  void truncate(int n) { n_past_ = n < n_past_ ? n : n_past_; }

  Layer& layer(int l) { return layers_[static_cast<size_t>(l)]; }
  // Bytes reserved for all layers (the upper bound of what the cache can occupy).
  uint64_t reserved_bytes() const { return reserved_; }
  // Bytes a cache of n_ctx positions occupies when full, and what a cache without ring buffers
  // would need, for reporting.
  static uint64_t bytes_for(const ModelConfig& config, int n_ctx, int max_chunk, DType type = DType::F16);
  static uint64_t full_length_bytes(const ModelConfig& config, int n_ctx, DType type = DType::F16);

 private:
  KvCache(int n_ctx, DType type) : n_ctx_(n_ctx), type_(type) {}
  int n_ctx_;
  DType type_;
  int n_past_ = 0;
  std::vector<Layer> layers_;
  std::vector<std::pair<void*, uint64_t>> maps_;
  uint64_t reserved_ = 0;
};

}  // namespace gemma

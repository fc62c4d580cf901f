// The KV cache of one sequence. Global layers keep every position up to the context length;
// sliding-window layers keep a ring buffer of window - 1 + max(max_chunk, max_rollback) slots:
// enough for any query of a chunk to see its whole window (docs/spec/architecture.md §2.4.6), and for the
// sequence to be cut back by up to that many tokens and extended again (a prefix cache re-using a
// conversation whose last tokens changed). Position p lives in slot p % capacity. Memory is
// reserved with mmap and only the pages actually written become resident,
// so a 32K-context cache costs memory in proportion to what is used.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "formats/dtype.h"
#include "kernels/backend.h"
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

  // Allocates the cache in the backend's memory (the CPU backend reserves address space, so only
  // positions written become resident); fails if it cannot. type: F16 (half the memory and
  // bandwidth, llama.cpp's default) or F32 (exact; the parity tests use it). The backend must
  // outlive the cache.
  static Result<std::unique_ptr<KvCache>> create(Backend& backend, const ModelConfig& config, int n_ctx, int max_chunk,
                                                 DType type = DType::F16, int max_rollback = 0);
  DType type() const { return type_; }
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }  // positions 0 .. n_past-1 are filled
  void advance(int n) {
    n_past_ += n;
    high_water_ = std::max(high_water_, n_past_);
  }
  void clear() { n_past_ = high_water_ = 0; }
  // Whether truncate(n) is allowed: ring layers still hold the window before n.
  bool can_truncate_to(int n) const { return n >= n_past_ || high_water_ - n <= rollback_limit_; }
  // Forgets positions >= n, keeping the prefix. Ring layers hold only their last positions, so a
  // cut deeper than rollback_limit() tokens cannot be extended correctly and is refused.
  Status truncate(int n);
  // How many tokens the cache can be cut back by (INT32_MAX when no layer is a ring).
  int rollback_limit() const;
  // Makes this cache hold src's first n positions (n <= src.n_past(), and src cut back to n must
  // be within src's rollback_limit()). Both caches must have the same shape.
  Status copy_prefix_from(const KvCache& src, int n);

  Layer& layer(int l) { return layers_[static_cast<size_t>(l)]; }
  // Bytes reserved for all layers (the upper bound of what the cache can occupy).
  uint64_t reserved_bytes() const { return reserved_; }
  // Bytes a cache of n_ctx positions occupies when full, and what a cache without ring buffers
  // would need, for reporting.
  static uint64_t bytes_for(const ModelConfig& config, int n_ctx, int max_chunk, DType type = DType::F16,
                            int max_rollback = 0);
  static uint64_t full_length_bytes(const ModelConfig& config, int n_ctx, DType type = DType::F16);

 private:
  KvCache(Backend& backend, int n_ctx, DType type) : backend_(&backend), n_ctx_(n_ctx), type_(type) {}
  Backend* backend_;
  int n_ctx_;
  DType type_;
  uint64_t row_bytes_ = 0;  // one position of one layer's K (or V)
  int rollback_limit_ = 0;
  int n_past_ = 0;
  // One past the highest position written since clear() (or held by the cache a prefix was copied
  // from): ring slots below high_water_ - capacity were overwritten, so rollbacks count from here,
  // not from n_past_ (a cache cut back and extended again has lost what the deeper positions had).
  int high_water_ = 0;
  std::vector<Layer> layers_;
  std::vector<DeviceBuffer> buffers_;
  uint64_t reserved_ = 0;
};

}  // namespace gemma

#include "model/kv_cache.h"

#include <algorithm>
#include <climits>
#include <cstring>

namespace gemma {

namespace {
int64_t layer_capacity(const ModelConfig& c, const LayerConfig& l, int n_ctx, int max_chunk, int max_rollback) {
  if (!l.sliding) return n_ctx;
  return std::min<int64_t>(n_ctx, static_cast<int64_t>(c.sliding_window) - 1 + std::max(max_chunk, max_rollback));
}
// One position of one layer's K (or V): kv_width values of `type` (Q8_0: whole blocks of 32).
uint64_t kv_row_bytes(const ModelConfig& c, DType type) {
  const DTypeInfo& t = dtype_info(type);
  return (static_cast<uint64_t>(c.kv_width()) + t.block_elems - 1) / t.block_elems * t.block_bytes;
}
}  // namespace

Result<std::unique_ptr<KvCache>> KvCache::create(Backend& backend, const ModelConfig& c, int n_ctx, int max_chunk,
                                                 DType type, int max_rollback) {
  if (!kv_type_supported(type)) return invalid_argument("KV cache type {} (f32, f16, bf16 or q8_0)", dtype_name(type));
  if (type == DType::Q8_0 && c.head_dim % 32 != 0)
    return unsupported("a q8_0 KV cache needs head_dim to be a multiple of 32 (this model's is {})", c.head_dim);
  if (n_ctx <= 0 || max_chunk <= 0 || max_rollback < 0)
    return invalid_argument("KV cache sizes must be positive (context {}, chunk {}, rollback {})", n_ctx, max_chunk,
                            max_rollback);
  std::unique_ptr<KvCache> cache(new KvCache(backend, n_ctx, type));
  const uint64_t row = kv_row_bytes(c, type);
  cache->row_bytes_ = row;
  cache->rollback_limit_ = INT32_MAX;
  for (const LayerConfig& lc : c.layers) {
    Layer l;
    l.capacity = layer_capacity(c, lc, n_ctx, max_chunk, max_rollback);
    if (l.capacity < n_ctx)  // a ring: positions older than capacity - (window - 1) are overwritten
      cache->rollback_limit_ =
          std::min<int>(cache->rollback_limit_, static_cast<int>(l.capacity) - (c.sliding_window - 1));
    const uint64_t bytes = 2 * row * static_cast<uint64_t>(l.capacity);
    GE_ASSIGN(DeviceBuffer buffer, backend.allocate(bytes, BufferUse::kKvCache));
    cache->reserved_ += bytes;
    l.k = buffer.as<uint8_t>();
    cache->buffers_.push_back(std::move(buffer));
    l.v = l.k + static_cast<uint64_t>(l.capacity) * row;
    cache->layers_.push_back(l);
  }
  return cache;
}

uint64_t KvCache::bytes_for(const ModelConfig& c, int n_ctx, int max_chunk, DType type, int max_rollback) {
  uint64_t total = 0;
  for (const LayerConfig& l : c.layers)
    total += 2 * kv_row_bytes(c, type) * static_cast<uint64_t>(layer_capacity(c, l, n_ctx, max_chunk, max_rollback));
  return total;
}

int KvCache::rollback_limit() const { return rollback_limit_; }

Status KvCache::truncate(int n) {
  if (n < 0) return invalid_argument("cannot truncate a sequence to {} tokens", n);
  if (n >= n_past_) return {};
  if (!can_truncate_to(n))
    return invalid_argument(
        "cannot roll a sequence back by {} tokens: its sliding-window layers keep only {} past their window",
        high_water_ - n, rollback_limit_);
  n_past_ = n;
  return {};
}

Status KvCache::copy_prefix_from(const KvCache& src, int n) {
  if (src.layers_.size() != layers_.size() || src.row_bytes_ != row_bytes_ || src.type_ != type_)
    return internal_error("cannot copy a KV prefix between caches of different shapes");
  if (n < 0 || n > src.n_past_ || n > n_ctx_)
    return invalid_argument("cannot copy {} positions from a sequence of {} into a context of {}", n, src.n_past_,
                            n_ctx_);
  if (!src.can_truncate_to(n))
    return invalid_argument(
        "cannot reuse {} of {} cached positions: the sliding-window layers keep only {} past their window", n,
        src.n_past_, src.rollback_limit_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& s = src.layers_[l];
    Layer& d = layers_[l];
    // Copy the positions both caches can hold: the last min(n, capacity) before n. Slots are
    // p % capacity in each, so equal capacities copy slot for slot.
    const int64_t keep = std::min<int64_t>({n, s.capacity, d.capacity});
    for (int64_t p = n - keep; p < n; ++p) {
      GE_TRY(backend_->copy(d.k + (p % d.capacity) * row_bytes_, s.k + (p % s.capacity) * row_bytes_, row_bytes_));
      GE_TRY(backend_->copy(d.v + (p % d.capacity) * row_bytes_, s.v + (p % s.capacity) * row_bytes_, row_bytes_));
    }
  }
  n_past_ = n;
  high_water_ = std::max(n, src.high_water_);  // the slots copied from below src's window are stale
  return {};
}

uint64_t KvCache::full_length_bytes(const ModelConfig& c, int n_ctx, DType type) {
  return 2 * kv_row_bytes(c, type) * static_cast<uint64_t>(n_ctx) * static_cast<uint64_t>(c.n_layers);
}

}  // namespace gemma

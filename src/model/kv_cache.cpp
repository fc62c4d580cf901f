#include "model/kv_cache.h"

#include <algorithm>

#include <sys/mman.h>

namespace gemma {

namespace {
int64_t layer_capacity(const ModelConfig& c, const LayerConfig& l, int n_ctx, int max_chunk) {
  if (!l.sliding) return n_ctx;
  return std::min<int64_t>(n_ctx, static_cast<int64_t>(c.sliding_window) - 1 + max_chunk);
}
}  // namespace

Result<std::unique_ptr<KvCache>> KvCache::create(const ModelConfig& c, int n_ctx, int max_chunk, DType type) {
  if (type != DType::F32 && type != DType::F16) return invalid_argument("KV cache type must be f32 or f16");
  std::unique_ptr<KvCache> cache(new KvCache(n_ctx, type));
  const uint64_t row = static_cast<uint64_t>(c.kv_width()) * static_cast<uint64_t>(dtype_info(type).block_bytes);
  for (const LayerConfig& lc : c.layers) {
    Layer l;
    l.capacity = layer_capacity(c, lc, n_ctx, max_chunk);
    const uint64_t bytes = 2 * row * static_cast<uint64_t>(l.capacity);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return resource_exhausted("cannot reserve {} bytes for the KV cache", bytes);
    cache->maps_.emplace_back(p, bytes);
    cache->reserved_ += bytes;
    l.k = static_cast<uint8_t*>(p);
    l.v = l.k + static_cast<uint64_t>(l.capacity) * row;
    cache->layers_.push_back(l);
  }
  return cache;
}

KvCache::~KvCache() {
  for (auto& [p, n] : maps_) munmap(p, n);
}

uint64_t KvCache::bytes_for(const ModelConfig& c, int n_ctx, int max_chunk, DType type) {
  uint64_t total = 0;
  for (const LayerConfig& l : c.layers)
    total += 2 * static_cast<uint64_t>(c.kv_width()) * static_cast<uint64_t>(dtype_info(type).block_bytes) *
             static_cast<uint64_t>(layer_capacity(c, l, n_ctx, max_chunk));
  return total;
}

uint64_t KvCache::full_length_bytes(const ModelConfig& c, int n_ctx, DType type) {
  return 2 * static_cast<uint64_t>(c.kv_width()) * static_cast<uint64_t>(dtype_info(type).block_bytes) *
         static_cast<uint64_t>(n_ctx) * static_cast<uint64_t>(c.n_layers);
}

}  // namespace gemma

#include "runtime/memory_plan.h"

namespace gemma {

MemoryPlan plan_memory(const ModelConfig& c, uint64_t weight_bytes, const EngineOptions& o) {
  MemoryPlan p;
  p.options = o;
  p.weights = weight_bytes;
  p.kv_per_sequence = KvCache::bytes_for(c, o.n_ctx, o.step_tokens, o.kv_type, o.max_rollback);
  p.kv_full_length = KvCache::full_length_bytes(c, o.n_ctx, o.kv_type);
  p.kv_rollback_extra = p.kv_per_sequence - KvCache::bytes_for(c, o.n_ctx, o.step_tokens, o.kv_type, 0);
  p.scratch = ForwardBuffers::bytes(c, o.step_tokens);
  p.logits = static_cast<uint64_t>(o.max_sequences) * static_cast<uint64_t>(c.vocab_size) * sizeof(float);
  return p;
}

MemoryPlan plan_memory(const Model& model, const EngineOptions& o) {
  return plan_memory(model.config(), model.weights().bytes(), o);
}

}  // namespace gemma

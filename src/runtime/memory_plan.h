// What an engine of given options will occupy, computed before anything is allocated: `gemma
// inspect` prints it and a server uses it to decide how many sequences fit.
#pragma once

#include <cstdint>

#include "model/model.h"
#include "runtime/engine.h"

namespace gemma {

struct MemoryPlan {
  EngineOptions options;
  uint64_t weights = 0;            // as loaded (quantized weights stay quantized)
  uint64_t kv_per_sequence = 0;    // one sequence's cache when full (rings on sliding layers)
  uint64_t kv_full_length = 0;     // what that cache would be without rings, for comparison
  uint64_t kv_rollback_extra = 0;  // of kv_per_sequence: what max_rollback beyond the step costs
  uint64_t scratch = 0;            // activations of one step
  uint64_t logits = 0;             // one logits row per sequence
  uint64_t kv_total() const { return kv_per_sequence * static_cast<uint64_t>(options.max_sequences); }
  uint64_t total() const { return weights + kv_total() + scratch + logits; }
};

MemoryPlan plan_memory(const Model& model, const EngineOptions& options);
// The same from a config alone, with the weights' size given.
MemoryPlan plan_memory(const ModelConfig& config, uint64_t weight_bytes, const EngineOptions& options);

}  // namespace gemma

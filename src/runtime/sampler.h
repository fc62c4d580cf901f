// Token sampling: greedy at temperature 0; otherwise temperature, then top-k, then top-p (the
// order of HF's logits warpers), then a draw from a seeded generator. Only ids below n_vocab are
// candidates, so embedding padding rows are never sampled (docs/spec/architecture.md §1.5).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace gemma {

struct SamplerParams {
  float temperature = 1.0f;  // 0 = greedy
  int top_k = 64;            // 0 = no limit
  float top_p = 0.95f;       // 1 = no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
  int32_t sample(std::span<const float> logits, int n_vocab);
  static int32_t argmax(std::span<const float> logits, int n_vocab);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace gemma

// Token sampling, in the order of HF's logits processors: logit biases and penalties first (they
// apply to greedy decoding too), then greedy at temperature 0, otherwise temperature, top-k,
// top-p, min-p, and a draw from a seeded generator. Only ids below n_vocab are candidates, so
// embedding padding rows are never sampled (docs/spec/architecture.md §1.5).
//
// Penalties, as vLLM's OpenAI server applies them: the repetition penalty (HF's, llama.cpp's
// --repeat-penalty) over the last repeat_last_n tokens of prompt and output; the frequency and
// presence penalties (OpenAI's) over the generated tokens only.
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
  float min_p = 0;  // 0 = off: drop tokens whose probability is below min_p x the top token's
  // Seen tokens' logits l become l / r if l > 0, else l * r (r > 1 discourages repeats; 1 = off).
  float repeat_penalty = 1;
  int repeat_last_n = 64;       // tokens the repetition penalty looks back over; -1: all, 0: none
  float frequency_penalty = 0;  // l -= count x f for each generated token (OpenAI: -2..2)
  float presence_penalty = 0;   // l -= p for each token generated at least once (OpenAI: -2..2)
  std::vector<std::pair<int32_t, float>> logit_bias = {};  // added to those ids' logits (OpenAI: -100..100)

  // Whether anything changes logits before the draw (then sample() works on a copy).
  bool modifies_logits() const {
    return !logit_bias.empty() || (repeat_penalty != 1 && repeat_last_n != 0) || frequency_penalty != 0 ||
           presence_penalty != 0;
  }
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
  // The tokens before generation (the prompt), for the repetition penalty.
  void set_context(std::span<const int32_t> tokens);
  // A generated token (the engine calls it for each token it samples).
  void accept(int32_t id);
  int32_t sample(std::span<const float> logits, int n_vocab);
  static int32_t argmax(std::span<const float> logits, int n_vocab);

 private:
  std::span<const float> apply_penalties(std::span<const float> logits, int n_vocab);

  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
  std::vector<int32_t> history_;                 // context then generated tokens
  std::vector<std::pair<int32_t, int>> counts_;  // generated tokens and how often, sorted by id
  std::vector<float> work_;                      // the logits after biases and penalties
};

}  // namespace gemma

#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace gemma {

int32_t Sampler::argmax(std::span<const float> logits, int n_vocab) {
  int32_t best = 0;
  for (int i = 1; i < n_vocab; ++i)
    if (logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(best)]) best = i;
  return best;
}

int32_t Sampler::sample(std::span<const float> logits, int n_vocab) {
  if (p_.temperature <= 0) return argmax(logits, n_vocab);
  // Candidates sorted by logit, cut to top-k (partial sort keeps this cheap for a 262K vocab).
  const int k = p_.top_k > 0 ? std::min(p_.top_k, n_vocab) : n_vocab;
  cand_.resize(static_cast<size_t>(n_vocab));
  for (int i = 0; i < n_vocab; ++i) cand_[static_cast<size_t>(i)] = {logits[static_cast<size_t>(i)], i};
  std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  cand_.resize(static_cast<size_t>(k));
  const float inv_t = 1.0f / p_.temperature;
  const float max_l = cand_[0].first * inv_t;
  std::vector<double> probs(cand_.size());
  double total = 0;
  for (size_t i = 0; i < cand_.size(); ++i)
    total += probs[i] = std::exp(static_cast<double>(cand_[i].first * inv_t - max_l));
  // Top-p: keep the smallest prefix whose probability mass reaches p (at least one token).
  size_t keep = cand_.size();
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += probs[i] / total;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (size_t i = 0; i < keep; ++i) mass += probs[i];
  std::uniform_real_distribution<double> u(0.0, mass);
  double r = u(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= probs[i];
    if (r <= 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace gemma

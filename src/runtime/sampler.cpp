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

void Sampler::set_context(std::span<const int32_t> tokens) { history_.assign(tokens.begin(), tokens.end()); }

void Sampler::accept(int32_t id) {
  history_.push_back(id);
  auto it = std::lower_bound(counts_.begin(), counts_.end(), std::pair{id, 0},
                             [](const auto& a, const auto& b) { return a.first < b.first; });
  if (it != counts_.end() && it->first == id) ++it->second;
  else counts_.insert(it, {id, 1});
}

std::span<const float> Sampler::apply_penalties(std::span<const float> logits, int n_vocab) {
  if (!p_.modifies_logits()) return logits;
  work_.assign(logits.begin(), logits.begin() + n_vocab);
  auto in_vocab = [&](int32_t id) { return id >= 0 && id < n_vocab; };
  for (const auto& [id, bias] : p_.logit_bias)
    if (in_vocab(id)) work_[static_cast<size_t>(id)] += bias;
  if (p_.repeat_penalty != 1 && p_.repeat_last_n != 0) {
    const size_t n =
        p_.repeat_last_n < 0 ? history_.size() : std::min(history_.size(), static_cast<size_t>(p_.repeat_last_n));
    // Each distinct token once, however often it appears in the window (as HF and llama.cpp).
    std::vector<int32_t> seen(history_.end() - static_cast<int64_t>(n), history_.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (!in_vocab(id)) continue;
      float& l = work_[static_cast<size_t>(id)];
      l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
    }
  }
  if (p_.frequency_penalty != 0 || p_.presence_penalty != 0)
    for (const auto& [id, count] : counts_)
      if (in_vocab(id))
        work_[static_cast<size_t>(id)] -= static_cast<float>(count) * p_.frequency_penalty + p_.presence_penalty;
  return work_;
}

int32_t Sampler::sample(std::span<const float> raw_logits, int n_vocab) {
  const std::span<const float> logits = apply_penalties(raw_logits, n_vocab);
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
  // Min-p: of those, keep the tokens at least min_p times as likely as the most likely one.
  if (p_.min_p > 0) {
    const double floor = static_cast<double>(p_.min_p) * probs[0];
    size_t k_min = 1;
    while (k_min < keep && probs[k_min] >= floor) ++k_min;
    keep = k_min;
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

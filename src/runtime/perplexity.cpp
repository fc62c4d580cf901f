#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

namespace gemma {

Result<PerplexityResult> perplexity(const Model& model, Backend& backend, std::span<const int32_t> tokens, int n_ctx,
                                    const std::function<void(int, double)>& on_chunk) {
  if (n_ctx < 4) return invalid_argument("perplexity needs a context of at least 4 tokens (got {})", n_ctx);
  if (static_cast<int64_t>(tokens.size()) < 2 * static_cast<int64_t>(n_ctx))
    return invalid_argument("the text tokenizes to {} tokens; perplexity with a context of {} needs at least {}",
                            tokens.size(), n_ctx, 2 * n_ctx);
  const Tokenizer* tok = model.tokenizer();
  const int32_t bos = tok ? tok->bos_id() : 2;
  const int n_vocab = model.n_vocab_out();
  const int V = model.config().vocab_size;
  const int first = n_ctx / 2;
  // Scored positions come in small batches so logits stay small (a 262K vocabulary is 1 MB a row).
  constexpr int kBatch = 128;
  GE_ASSIGN(auto cache, KvCache::create(model.config(), n_ctx, kBatch));
  ForwardBuffers buf(model.config(), kBatch);
  std::vector<float> logits;
  PerplexityResult res;
  res.n_chunks = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
  double nll = 0, nll2 = 0;
  int count = 0;
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  for (int c = 0; c < res.n_chunks; ++c) {
    std::copy_n(tokens.begin() + static_cast<int64_t>(c) * n_ctx, n_ctx, chunk.begin());
    chunk[0] = bos;
    cache->clear();
    for (int b = 0; b < n_ctx; b += kBatch) {
      const int n = std::min(kBatch, n_ctx - b);
      const int n_logits = std::clamp(b + n - first, 0, n);
      SequenceChunk sc{cache.get(), std::span<const int32_t>(chunk).subspan(static_cast<size_t>(b), static_cast<size_t>(n)),
                       n_logits};
      logits.clear();
      GE_TRY(model.forward({&sc, 1}, backend, buf, logits));
      for (int r = 0; r < n_logits; ++r) {
        const int pos = b + n - n_logits + r;
        if (pos >= n_ctx - 1) continue;  // the last position has no next token
        const float* row = logits.data() + static_cast<size_t>(r) * static_cast<size_t>(V);
        const int32_t target = tokens[static_cast<size_t>(c) * static_cast<size_t>(n_ctx) + static_cast<size_t>(pos) + 1];
        float mx = row[0];
        for (int i = 1; i < n_vocab; ++i) mx = std::max(mx, row[i]);
        double sum = 0;
        for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(row[i] - mx));
        const double lp = static_cast<double>(row[target] - mx) - std::log(sum);
        nll -= lp;
        nll2 += lp * lp;
        ++count;
      }
    }
    res.running_ppl.push_back(std::exp(nll / count));
    if (on_chunk) on_chunk(c + 1, res.running_ppl.back());
  }
  const double mean = nll / count;
  const double var = nll2 / count - mean * mean;
  res.ppl = std::exp(mean);
  res.error = var > 0 ? std::sqrt(var / (count - 1)) * res.ppl : 0;
  res.n_scored = count;
  return res;
}

}  // namespace gemma

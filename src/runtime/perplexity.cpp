#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "runtime/engine.h"

namespace gemma {

Result<PerplexityResult> perplexity(const Model& model, Backend& backend, std::span<const int32_t> tokens, int n_ctx,
                                    DType kv_type, const std::function<void(int, double)>& on_chunk) {
  if (n_ctx < 4) return invalid_argument("perplexity needs a context of at least 4 tokens (got {})", n_ctx);
  if (static_cast<int64_t>(tokens.size()) < 2 * static_cast<int64_t>(n_ctx))
    return invalid_argument("the text tokenizes to {} tokens; perplexity with a context of {} needs at least {}",
                            tokens.size(), n_ctx, 2 * n_ctx);
  const Tokenizer* tok = model.tokenizer();
  const int32_t bos = tok ? tok->bos_id() : 2;
  const int n_vocab = model.n_vocab_out();
  const int first = n_ctx / 2;
  // Scored positions come in small steps so logits stay small (a 262K vocabulary is 1 MB a row).
  EngineOptions eo;
  eo.n_ctx = n_ctx;
  eo.step_tokens = std::min(128, n_ctx);
  eo.kv_type = kv_type;
  GE_ASSIGN(auto engine, Engine::create(model, backend, eo));
  PerplexityResult res;
  res.n_chunks = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
  double nll = 0, nll2 = 0;
  int count = 0;
  for (int c = 0; c < res.n_chunks; ++c) {
    const size_t base = static_cast<size_t>(c) * static_cast<size_t>(n_ctx);
    Request req;
    req.prompt.assign(tokens.begin() + static_cast<int64_t>(base), tokens.begin() + static_cast<int64_t>(base) + n_ctx);
    req.prompt[0] = bos;
    req.max_tokens = 0;
    req.score_from = first;
    req.on_prompt_logits = [&](int pos, std::span<const float> row) {
      if (pos >= n_ctx - 1) return;  // the last position has no next token
      const int32_t target = tokens[base + static_cast<size_t>(pos) + 1];
      float mx = row[0];
      for (int i = 1; i < n_vocab; ++i) mx = std::max(mx, row[static_cast<size_t>(i)]);
      double sum = 0;
      for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(row[static_cast<size_t>(i)] - mx));
      const double lp = static_cast<double>(row[static_cast<size_t>(target)] - mx) - std::log(sum);
      nll -= lp;
      nll2 += lp * lp;
      ++count;
    };
    Status failed;
    req.on_done = [&](const RequestResult& r) {
      if (!r.status.ok()) failed = r.status;
    };
    engine->submit(std::move(req));
    GE_TRY(engine->run_to_completion());
    GE_TRY(failed);
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

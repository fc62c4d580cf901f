#include "runtime/session.h"

#include <algorithm>

namespace gemma {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

Result<std::unique_ptr<Session>> Session::create(const Model& model, Backend& backend, int n_ctx, int max_chunk,
                                                 DType kv_type) {
  if (n_ctx <= 0) return invalid_argument("context size must be positive (got {})", n_ctx);
  if (max_chunk <= 0) return invalid_argument("chunk size must be positive (got {})", max_chunk);
  GE_ASSIGN(auto cache, KvCache::create(model.config(), n_ctx, max_chunk, kv_type));
  return std::unique_ptr<Session>(new Session(model, backend, std::move(cache), std::min(max_chunk, n_ctx)));
}

Status Session::append(std::span<const int32_t> tokens, std::vector<float>& logits) {
  if (tokens.empty()) return invalid_argument("nothing to append");
  if (n_past() + static_cast<int64_t>(tokens.size()) > n_ctx())
    return invalid_argument("{} tokens do not fit in the context: {} of {} positions are used (raise --ctx)",
                            tokens.size(), n_past(), n_ctx());
  for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(buf_.max_tokens)) {
    const size_t n = std::min(tokens.size() - i, static_cast<size_t>(buf_.max_tokens));
    SequenceChunk chunk{cache_.get(), tokens.subspan(i, n), 1};
    logits.clear();
    GE_TRY(model_.forward({&chunk, 1}, backend_, buf_, logits));
  }
  return {};
}

Result<GenerateStats> Session::generate(std::span<const int32_t> prompt, const GenerateOptions& opt, Sampler& sampler,
                                        const std::function<bool(int32_t)>& on_token) {
  GenerateStats st;
  st.n_prompt = static_cast<int>(prompt.size());
  auto t0 = Clock::now();
  GE_TRY(append(prompt, logits_));
  st.prefill_seconds = seconds_since(t0);
  const int n_vocab = model_.n_vocab_out();
  Clock::time_point t_first;
  for (int i = 0; i < opt.max_tokens; ++i) {
    const int32_t id = sampler.sample(logits_, n_vocab);
    if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end()) {
      st.stopped_by_token = true;
      break;
    }
    ++st.n_generated;
    if (st.n_generated == 1) t_first = Clock::now();
    if (!on_token(id)) break;
    if (i + 1 == opt.max_tokens) break;
    if (n_past() >= n_ctx()) {
      st.context_full = true;
      break;
    }
    GE_TRY(append({&id, 1}, logits_));
  }
  if (st.n_generated > 1) st.decode_seconds = seconds_since(t_first);
  return st;
}

}  // namespace gemma

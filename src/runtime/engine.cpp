#include "runtime/engine.h"

#include <algorithm>

#include "runtime/prompt.h"

namespace gemma {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kContext: return "context";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}

// A request once admitted: its sampler, stop state, and (once running) a KV slot.
struct Engine::Sequence {
  RequestId id = 0;
  Request req;
  Sampler sampler;
  const Tokenizer* tok = nullptr;
  int slot = -1;
  std::vector<int32_t> tokens;  // what the KV cache holds
  std::vector<int32_t> input;   // to feed: the rest of the prompt, or the last sampled token
  size_t fed = 0;               // of input
  bool decoding = false;        // the prompt is consumed; input is the last sampled token
  // The last sampled token when generation ended before it was fed; a continuation feeds it first.
  std::optional<int32_t> unfed;
  Utf8StreamDecoder utf8;
  StopStringMatcher stops;
  RequestResult result;
  bool started = false;
  Clock::time_point t_submit, t_start, t_first, t_last;

  Sequence(RequestId i, Request r)
      : id(i), req(std::move(r)), sampler(req.sampling), stops(req.stop_strings), t_submit(Clock::now()) {
    result.request = id;
  }
};

Engine::Engine(const Model& model, Backend& backend, const EngineOptions& o)
    : model_(model), backend_(backend), opt_(o) {}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::create(const Model& model, Backend& backend, const EngineOptions& o) {
  if (o.n_ctx <= 0) return invalid_argument("context size must be positive (got {})", o.n_ctx);
  if (o.max_sequences <= 0)
    return invalid_argument("the number of sequences must be positive (got {})", o.max_sequences);
  if (o.step_tokens < o.max_sequences)
    return invalid_argument("a step of {} tokens cannot hold one decode token for each of {} sequences", o.step_tokens,
                            o.max_sequences);
  if (o.max_rollback < 0) return invalid_argument("the rollback depth must be >= 0 (got {})", o.max_rollback);
  GE_TRY(backend.prepare(model.weights().matrices()));
  std::unique_ptr<Engine> e(new Engine(model, backend, o));
  GE_ASSIGN(e->buf_, ForwardBuffers::create(backend, model.config(), o.step_tokens));
  // Room for one logits row per sequence (a step of decodes); forward() grows it for prompts whose
  // every position is scored.
  GE_TRY(e->buf_.reserve_logits(backend, model.config(), o.max_sequences));
  for (int i = 0; i < o.max_sequences; ++i) {
    GE_ASSIGN(auto cache, KvCache::create(backend, model.config(), o.n_ctx, o.step_tokens, o.kv_type, o.max_rollback));
    e->slots_.push_back(std::move(cache));
  }
  e->slot_used_.assign(static_cast<size_t>(o.max_sequences), false);
  return e;
}

RequestId Engine::submit(Request request) {
  std::lock_guard<std::mutex> lock(mu_);
  const RequestId id = next_id_++;
  incoming_.emplace_back(id, std::move(request));
  return id;
}

void Engine::cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.push_back(id);
}

void Engine::release(RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  released_.push_back(id);
}

int Engine::n_running() const { return static_cast<int>(running_.size()); }
int Engine::n_waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(waiting_.size() + incoming_.size());
}
int Engine::n_free_slots() const { return static_cast<int>(std::count(slot_used_.begin(), slot_used_.end(), false)); }

std::vector<int32_t> Engine::sequence_tokens(RequestId id) const {
  for (const auto& s : kept_)
    if (s->id == id) return s->tokens;
  return {};
}

void Engine::finish(Sequence& s, FinishReason reason, Status status) {
  s.result.reason = reason;
  s.result.status = std::move(status);
  if (reason != FinishReason::kStop || !s.stops.matched()) {
    s.result.tail = s.stops.push(s.utf8.flush());
    s.result.tail += s.stops.flush();
  }
  RequestStats& st = s.result.stats;
  if (s.started && st.n_generated > 0) {
    st.prefill_seconds = seconds_between(s.t_start, s.t_first);
    st.decode_seconds = seconds_between(s.t_first, s.t_last);
  } else if (s.started) {
    st.prefill_seconds = seconds_between(s.t_start, Clock::now());
  }
  if (s.req.on_done) s.req.on_done(s.result);
}

// Moves what other threads handed in into the engine's own lists, applies cancellations and
// releases, and gives waiting requests a KV slot (or a kept sequence to continue) when one is free.
void Engine::admit() {
  std::vector<RequestId> cancelled, released;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, req] : incoming_) waiting_.push_back(std::make_unique<Sequence>(id, std::move(req)));
    incoming_.clear();
    cancelled.swap(cancelled_);
    released.swap(released_);
  }
  auto free_slot = [&](int slot) {
    if (slot >= 0) slot_used_[static_cast<size_t>(slot)] = false;
  };
  for (RequestId id : released)
    for (size_t i = 0; i < kept_.size(); ++i)
      if (kept_[i]->id == id) {
        free_slot(kept_[i]->slot);
        kept_.erase(kept_.begin() + static_cast<int64_t>(i));
        break;
      }
  for (RequestId id : cancelled) {
    for (size_t i = 0; i < waiting_.size(); ++i)
      if (waiting_[i]->id == id) {
        finish(*waiting_[i], FinishReason::kCancelled);
        waiting_.erase(waiting_.begin() + static_cast<int64_t>(i));
        break;
      }
    for (size_t i = 0; i < running_.size(); ++i)
      if (running_[i]->id == id) {
        Sequence& s = *running_[i];
        s.unfed.reset();
        finish(s, FinishReason::kCancelled);
        if (s.req.keep) {
          kept_.push_back(std::move(running_[i]));
        } else {
          free_slot(s.slot);
        }
        running_.erase(running_.begin() + static_cast<int64_t>(i));
        break;
      }
  }

  const ModelConfig& c = model_.config();
  for (size_t i = 0; i < waiting_.size();) {
    Sequence& s = *waiting_[i];
    auto refuse = [&](Error e) {
      finish(s, FinishReason::kError, std::move(e));
      waiting_.erase(waiting_.begin() + static_cast<int64_t>(i));
    };
    s.tok = s.req.tokenizer ? s.req.tokenizer : model_.tokenizer();
    if (!s.tok && !s.req.stop_strings.empty()) {  // without one, sinks get ids and no text
      refuse(unsupported("the model has no tokenizer to match stop strings in its text"));
      continue;
    }
    bool bad_id = false;
    for (int32_t id : s.req.prompt)
      if (id < 0 || id >= c.vocab_size) {
        refuse(invalid_argument("token id {} is outside the vocabulary (0..{})", id, c.vocab_size - 1));
        bad_id = true;
        break;
      }
    if (bad_id) continue;
    if (s.req.max_tokens < 0) {
      refuse(invalid_argument("max_tokens must be >= 0 (got {})", s.req.max_tokens));
      continue;
    }
    if (Status st = check_sampling(s.req.sampling); !st.ok()) {
      refuse(std::move(st).error());
      continue;
    }
    // A continuation takes over the kept sequence's slot and tokens.
    std::unique_ptr<Sequence> prev;
    if (s.req.continue_from) {
      auto it = std::find_if(kept_.begin(), kept_.end(), [&](const auto& k) { return k->id == *s.req.continue_from; });
      if (it == kept_.end()) {
        refuse(not_found("request {} is not a kept sequence that can be continued", *s.req.continue_from));
        continue;
      }
      KvCache& cache = *slots_[static_cast<size_t>((*it)->slot)];
      if (s.req.truncate_to >= 0) {
        Status st = cache.truncate(s.req.truncate_to);
        if (!st.ok()) {
          refuse(std::move(st).error());
          continue;
        }
        (*it)->tokens.resize(std::min((*it)->tokens.size(), static_cast<size_t>(s.req.truncate_to)));
        (*it)->unfed.reset();
      }
      prev = std::move(*it);
      kept_.erase(it);
      s.slot = prev->slot;
      s.tokens = std::move(prev->tokens);
      if (prev->unfed) s.input.push_back(*prev->unfed);
    } else {
      auto it = std::find(slot_used_.begin(), slot_used_.end(), false);
      if (it == slot_used_.end()) {
        ++i;  // waits for a slot
        continue;
      }
      const int slot = static_cast<int>(it - slot_used_.begin());
      KvCache& cache = *slots_[static_cast<size_t>(slot)];
      cache.clear();
      if (s.req.prefix_from) {
        auto src = std::find_if(kept_.begin(), kept_.end(), [&](const auto& k) { return k->id == *s.req.prefix_from; });
        if (src == kept_.end()) {
          refuse(not_found("request {} is not a kept sequence to copy a prefix from", *s.req.prefix_from));
          continue;
        }
        if (s.req.prefix_len < 0 || s.req.prefix_len > static_cast<int>((*src)->tokens.size())) {
          refuse(invalid_argument("prefix of {} tokens asked from a sequence of {}", s.req.prefix_len,
                                  (*src)->tokens.size()));
          continue;
        }
        Status st = cache.copy_prefix_from(*slots_[static_cast<size_t>((*src)->slot)], s.req.prefix_len);
        if (!st.ok()) {
          refuse(std::move(st).error());
          continue;
        }
        s.tokens.assign((*src)->tokens.begin(), (*src)->tokens.begin() + s.req.prefix_len);
      }
      s.slot = slot;
      *it = true;
    }
    s.input.insert(s.input.end(), s.req.prompt.begin(), s.req.prompt.end());
    KvCache& cache = *slots_[static_cast<size_t>(s.slot)];
    if (s.input.empty() && !s.tokens.empty()) {
      // Nothing new to feed, but logits are needed: feed the last cached token again.
      s.input.push_back(s.tokens.back());
      s.tokens.pop_back();
      Status st = cache.truncate(cache.n_past() - 1);
      (void)st;  // cutting back one token is always within the rollback limit
    }
    const int64_t total = static_cast<int64_t>(s.tokens.size() + s.input.size());
    Status problem;
    if (s.input.empty()) problem = invalid_argument("the request has no prompt tokens");
    else if (total > opt_.n_ctx)
      problem =
          invalid_argument("the prompt is {} tokens, longer than the context of {} (raise --ctx)", total, opt_.n_ctx);
    if (!problem.ok()) {  // a refused continuation releases the sequence it continued
      slot_used_[static_cast<size_t>(s.slot)] = false;
      refuse(std::move(problem).error());
      continue;
    }
    s.result.stats.n_prompt = static_cast<int>(s.input.size());
    running_.push_back(std::move(waiting_[i]));
    waiting_.erase(waiting_.begin() + static_cast<int64_t>(i));
  }
}

bool Engine::emit_token(Sequence& s, int32_t id, std::span<const float> logits) {
  if (std::find(s.req.stop_ids.begin(), s.req.stop_ids.end(), id) != s.req.stop_ids.end()) {
    finish(s, FinishReason::kStop);
    return false;
  }
  RequestStats& st = s.result.stats;
  s.t_last = Clock::now();
  if (st.n_generated++ == 0) s.t_first = s.t_last;
  TokenEvent ev;
  ev.request = s.id;
  ev.id = id;
  if (s.tok) ev.text = s.stops.push(s.utf8.push(s.tok->token_bytes(id)));
  ev.logits = logits;
  s.unfed = id;
  const bool go_on = s.req.on_token ? s.req.on_token(ev) : true;
  FinishReason reason;
  if (s.stops.matched()) reason = FinishReason::kStop;
  else if (!go_on) reason = FinishReason::kCancelled;
  else if (st.n_generated >= s.req.max_tokens) reason = FinishReason::kLength;
  else if (static_cast<int>(s.tokens.size()) >= opt_.n_ctx) reason = FinishReason::kContext;
  else {
    s.unfed.reset();
    s.input.assign(1, id);
    s.fed = 0;
    s.decoding = true;
    return true;
  }
  finish(s, reason);
  return false;
}

Result<bool> Engine::step() {
  admit();
  if (running_.empty()) return false;
  const int V = model_.config().vocab_size;
  const int n_vocab = model_.n_vocab_out();

  struct Planned {
    Sequence* seq;
    int64_t n;          // tokens fed this step
    int n_logits;       // trailing rows of logits wanted
    int64_t first_pos;  // absolute position of the chunk's first token
  };
  std::vector<Planned> plan;
  std::vector<SequenceChunk> chunks;
  int64_t budget = opt_.step_tokens;
  // Decode tokens first (one per running sequence), so a long prompt never stalls a stream.
  for (auto& sp : running_)
    if (sp->decoding) {
      plan.push_back({sp.get(), 1, 1, static_cast<int64_t>(sp->tokens.size())});
      --budget;
    }
  for (auto& sp : running_) {
    if (sp->decoding || budget <= 0) continue;
    Sequence& s = *sp;
    const int64_t left = static_cast<int64_t>(s.input.size() - s.fed);
    int64_t n = std::min(left, budget);
    if (s.req.max_chunk > 0) n = std::min<int64_t>(n, s.req.max_chunk);
    const int64_t p0 = static_cast<int64_t>(s.tokens.size());
    int n_logits = (n == left && s.req.max_tokens > 0) ? 1 : 0;
    if (s.req.score_from >= 0 && s.req.on_prompt_logits)
      n_logits = std::max<int>(n_logits, static_cast<int>(std::clamp<int64_t>(p0 + n - s.req.score_from, 0, n)));
    plan.push_back({&s, n, n_logits, p0});
    budget -= n;
  }
  for (const Planned& p : plan) {
    Sequence& s = *p.seq;
    if (!s.started) {
      s.started = true;
      s.t_start = Clock::now();
      s.result.stats.queue_seconds = seconds_between(s.t_submit, s.t_start);
    }
    chunks.push_back(SequenceChunk{slots_[static_cast<size_t>(s.slot)].get(),
                                   std::span<const int32_t>(s.input).subspan(s.fed, static_cast<size_t>(p.n)),
                                   p.n_logits});
  }

  logits_.clear();
  Status st = model_.forward(chunks, backend_, buf_, logits_);
  std::vector<Sequence*> done;
  if (!st.ok()) {
    for (const Planned& p : plan) {
      finish(*p.seq, FinishReason::kError, st);
      done.push_back(p.seq);
    }
  } else {
    size_t row = 0;
    for (const Planned& p : plan) {
      Sequence& s = *p.seq;
      const float* rows = logits_.data() + row * static_cast<size_t>(V);
      row += static_cast<size_t>(p.n_logits);
      s.tokens.insert(s.tokens.end(), s.input.begin() + static_cast<int64_t>(s.fed),
                      s.input.begin() + static_cast<int64_t>(s.fed + static_cast<size_t>(p.n)));
      s.fed += static_cast<size_t>(p.n);
      const bool consumed = s.fed == s.input.size();
      if (!s.decoding && s.req.on_prompt_logits && s.req.score_from >= 0) {
        const int64_t first_row_pos = p.first_pos + p.n - p.n_logits;
        for (int r = 0; r < p.n_logits; ++r)
          if (first_row_pos + r >= s.req.score_from)
            s.req.on_prompt_logits(static_cast<int>(first_row_pos + r),
                                   {rows + static_cast<size_t>(r) * static_cast<size_t>(V), static_cast<size_t>(V)});
      }
      if (!consumed) continue;
      if (!s.decoding && s.req.max_tokens == 0) {
        finish(s, FinishReason::kLength);
        done.push_back(&s);
        continue;
      }
      const float* last = rows + static_cast<size_t>(p.n_logits - 1) * static_cast<size_t>(V);
      if (!s.decoding) s.sampler.set_context(s.tokens);  // the whole prompt, for the repetition penalty
      const int32_t id = s.sampler.sample({last, static_cast<size_t>(V)}, n_vocab);
      s.sampler.accept(id);
      if (!emit_token(s, id, {last, static_cast<size_t>(V)})) done.push_back(&s);
    }
  }
  // Finished sequences leave the running list: kept ones keep their slot for a continuation.
  for (Sequence* d : done) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == d; });
    if (it == running_.end()) continue;
    if (d->req.keep && d->result.reason != FinishReason::kError) {
      kept_.push_back(std::move(*it));
    } else {
      slot_used_[static_cast<size_t>(d->slot)] = false;
    }
    running_.erase(it);
  }
  return true;
}

Status Engine::run_to_completion() {
  for (;;) {
    GE_ASSIGN(bool did, step());
    if (!did && n_waiting() == 0) return {};
    if (!did) {
      // Waiting requests but nothing running: every slot is held by kept sequences.
      std::lock_guard<std::mutex> lock(mu_);
      if (incoming_.empty() && !waiting_.empty())
        return resource_exhausted("{} requests wait for a KV slot, but every slot holds a kept sequence",
                                  waiting_.size());
    }
  }
}

}  // namespace gemma

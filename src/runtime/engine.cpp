#include "runtime/engine.h"

#include <algorithm>

#include "runtime/prompt.h"

namespace gemma {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The span that a cut keeping positions < n would split (begin < n < end), or null.
const PositionSpan* span_cut_at(const std::vector<PositionSpan>& spans, int64_t n) {
  for (const PositionSpan& sp : spans)
    if (sp.begin < n && n < sp.end) return &sp;
  return nullptr;
}

// One embedded run of a sequence's input: input[begin, end) fed as `values`.
struct EmbeddedRun {
  size_t begin, end;
  const float* values;
};

// Checks a request's embedded runs and records them as ranges of the sequence's input (whose
// prompt starts at prompt_start).
Status plan_embedded_runs(const Request& r, int hidden, int max_rows, size_t prompt_start,
                          std::vector<EmbeddedRun>& runs) {
  size_t end = 0;  // of the previous run, in prompt positions
  for (const PromptEmbeddings& e : r.embeddings) {
    const size_t h = static_cast<size_t>(hidden);
    if (e.values.empty() || e.values.size() % h != 0)
      return invalid_argument("an embedded run of {} floats is not whole rows of the model's width {}", e.values.size(),
                              hidden);
    const size_t rows = e.values.size() / h;
    if (e.offset < 0 || static_cast<size_t>(e.offset) < end || static_cast<size_t>(e.offset) + rows > r.prompt.size())
      return invalid_argument(
          "embedded run at prompt position {} ({} rows) overlaps another or leaves the {}-token "
          "prompt",
          e.offset, rows, r.prompt.size());
    if (rows > static_cast<size_t>(max_rows))
      return resource_exhausted(
          "an embedded run of {} tokens (an image) does not fit one step: at most {} tokens "
          "can be fed at once (raise the step budget)",
          rows, max_rows);
    end = static_cast<size_t>(e.offset) + rows;
    runs.push_back({prompt_start + static_cast<size_t>(e.offset), prompt_start + end, e.values.data()});
  }
  return {};
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
  // The request's embedded runs as ranges of `input`, in order; next_run: the first not yet fed.
  std::vector<EmbeddedRun> runs;
  size_t next_run = 0;
  std::vector<PositionSpan> spans;  // absolute positions of the embedded runs in `tokens`
  bool decoding = false;            // the prompt is consumed; input is the last sampled token
  // The last sampled token when generation ended before it was fed; a continuation feeds it first.
  std::optional<int32_t> unfed;
  Utf8StreamDecoder utf8;
  StopStringMatcher stops;
  RequestResult result;
  bool started = false;
  bool cache_entry = false;  // finished; held only as a prefix-cache entry
  bool cache_hit = false;    // its prompt starts with a prefix taken from the cache
  uint64_t last_used = 0;    // step of its last cache hit or its finish
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
int Engine::n_cached() const {
  return static_cast<int>(std::count_if(kept_.begin(), kept_.end(), [](const auto& k) { return k->cache_entry; }));
}

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

void Engine::retire(std::unique_ptr<Sequence> s) {
  const bool ok = s->result.reason != FinishReason::kError;
  if (s->req.keep && ok) {
    kept_.push_back(std::move(s));
  } else if (opt_.prefix_cache && ok && !s->tokens.empty()) {
    s->cache_entry = true;
    s->last_used = tick_;
    s->req = Request{};  // the request is over: drop its sinks (they may hold a client's state)
    s->runs.clear();
    kept_.push_back(std::move(s));
  } else {
    slot_used_[static_cast<size_t>(s->slot)] = false;
  }
}

bool Engine::evict_cached() {
  auto lru = kept_.end();
  for (auto it = kept_.begin(); it != kept_.end(); ++it)
    if ((*it)->cache_entry && (lru == kept_.end() || (*it)->last_used < (*lru)->last_used)) lru = it;
  if (lru == kept_.end()) return false;
  slot_used_[static_cast<size_t>((*lru)->slot)] = false;
  kept_.erase(lru);
  return true;
}

void Engine::reuse_cached_prefix(Sequence& s) {
  // How much of the prompt may come from the cache: not an embedded run (another image could have
  // the same placeholder ids), not a position whose logits the request scores.
  std::vector<int32_t>& prompt = s.req.prompt;
  if (prompt.empty()) return;
  size_t limit = prompt.size() - 1;  // at least the last token is fed, for fresh logits
  if (!s.req.embeddings.empty()) limit = std::min(limit, static_cast<size_t>(std::max(0, s.req.embeddings[0].offset)));
  if (s.req.score_from >= 0) limit = std::min(limit, static_cast<size_t>(s.req.score_from));
  Sequence* best = nullptr;
  size_t best_len = 0;
  for (const auto& k : kept_) {
    if (!k->cache_entry) continue;
    size_t cap = std::min(limit, k->tokens.size());
    if (!k->spans.empty()) cap = std::min(cap, static_cast<size_t>(k->spans[0].begin));
    size_t n = 0;
    while (n < cap && k->tokens[n] == prompt[n]) ++n;
    if (n == 0 || !slots_[static_cast<size_t>(k->slot)]->can_truncate_to(static_cast<int>(n)))
      continue;  // the rings no longer hold the window before that cut
    if (n > best_len || (n == best_len && k->last_used > best->last_used)) {
      best = k.get();
      best_len = n;
    }
  }
  if (!best) return;
  // Moving costs nothing; copying keeps the cached tail for its own conversation. Move when that
  // tail is short (the same conversation resent, its last tokens re-tokenized) or no slot is free.
  constexpr size_t kMoveCut = 32;
  best->last_used = tick_;
  if (best->tokens.size() - best_len <= kMoveCut || n_free_slots() == 0) {
    s.req.continue_from = best->id;
    s.req.truncate_to = static_cast<int>(best_len);
  } else {
    s.req.prefix_from = best->id;
    s.req.prefix_len = static_cast<int>(best_len);
  }
  prompt.erase(prompt.begin(), prompt.begin() + static_cast<int64_t>(best_len));
  for (PromptEmbeddings& e : s.req.embeddings) e.offset -= static_cast<int>(best_len);
  s.cache_hit = true;
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
        retire(std::move(running_[i]));
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
    if (opt_.prefix_cache && !s.cache_hit && !s.req.continue_from && !s.req.prefix_from) reuse_cached_prefix(s);
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
        if (const PositionSpan* sp = span_cut_at((*it)->spans, s.req.truncate_to)) {
          refuse(invalid_argument("cannot cut a sequence back to {} tokens, inside the embedded run [{}, {})",
                                  s.req.truncate_to, sp->begin, sp->end));
          continue;
        }
        Status st = cache.truncate(s.req.truncate_to);
        if (!st.ok()) {
          refuse(std::move(st).error());
          continue;
        }
        (*it)->tokens.resize(std::min((*it)->tokens.size(), static_cast<size_t>(s.req.truncate_to)));
        std::erase_if((*it)->spans, [&](const PositionSpan& sp) { return sp.begin >= s.req.truncate_to; });
        (*it)->unfed.reset();
      }
      prev = std::move(*it);
      kept_.erase(it);
      s.slot = prev->slot;
      s.tokens = std::move(prev->tokens);
      s.spans = std::move(prev->spans);
      if (prev->unfed) s.input.push_back(*prev->unfed);
    } else {
      auto it = std::find(slot_used_.begin(), slot_used_.end(), false);
      if (it == slot_used_.end() && evict_cached()) it = std::find(slot_used_.begin(), slot_used_.end(), false);
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
        if (const PositionSpan* sp = span_cut_at((*src)->spans, s.req.prefix_len)) {
          refuse(invalid_argument("a prefix of {} tokens ends inside the embedded run [{}, {})", s.req.prefix_len,
                                  sp->begin, sp->end));
          continue;
        }
        Status st = cache.copy_prefix_from(*slots_[static_cast<size_t>((*src)->slot)], s.req.prefix_len);
        if (!st.ok()) {
          refuse(std::move(st).error());
          continue;
        }
        s.tokens.assign((*src)->tokens.begin(), (*src)->tokens.begin() + s.req.prefix_len);
        for (const PositionSpan& sp : (*src)->spans)
          if (sp.end <= s.req.prefix_len) s.spans.push_back(sp);
      }
      s.slot = slot;
      *it = true;
    }
    const size_t prompt_start = s.input.size();
    s.input.insert(s.input.end(), s.req.prompt.begin(), s.req.prompt.end());
    KvCache& cache = *slots_[static_cast<size_t>(s.slot)];
    Status problem = plan_embedded_runs(s.req, c.hidden, max_run_rows(), prompt_start, s.runs);
    if (problem.ok() && s.input.empty() && !s.spans.empty() &&
        s.spans.back().end == static_cast<int32_t>(s.tokens.size()))
      problem = invalid_argument("the sequence ends in an embedded run: continuing it needs prompt tokens");
    if (problem.ok() && s.input.empty() && !s.tokens.empty()) {
      // Nothing new to feed, but logits are needed: feed the last cached token again.
      s.input.push_back(s.tokens.back());
      s.tokens.pop_back();
      Status st = cache.truncate(cache.n_past() - 1);
      (void)st;  // cutting back one token is always within the rollback limit
    }
    const int64_t total = static_cast<int64_t>(s.tokens.size() + s.input.size());
    if (problem.ok() && s.input.empty()) problem = invalid_argument("the request has no prompt tokens");
    if (problem.ok() && total > opt_.n_ctx)
      problem =
          invalid_argument("the prompt is {} tokens, longer than the context of {} (raise --ctx)", total, opt_.n_ctx);
    if (!problem.ok()) {  // a refused continuation releases the sequence it continued
      slot_used_[static_cast<size_t>(s.slot)] = false;
      refuse(std::move(problem).error());
      continue;
    }
    s.result.stats.n_prompt = static_cast<int>(s.input.size());
    if (s.cache_hit) s.result.stats.n_cached = static_cast<int>(s.tokens.size());
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
  ++tick_;
  admit();
  if (running_.empty()) return false;
  const int V = model_.config().vocab_size;
  const int n_vocab = model_.n_vocab_out();

  struct Planned {
    Sequence* seq;
    int64_t n;                          // tokens fed this step
    int n_logits;                       // trailing rows of logits wanted
    int64_t first_pos;                  // absolute position of the chunk's first token
    const float* embeddings = nullptr;  // the chunk is an embedded run: [n, hidden]
    PositionSpan span;                  // its positions, which attend both ways
  };
  std::vector<Planned> plan;
  std::vector<SequenceChunk> chunks;
  int64_t budget = opt_.step_tokens;
  // Decode tokens first (one per running sequence), so a long prompt never stalls a stream.
  for (auto& sp : running_)
    if (sp->decoding) {
      plan.push_back({sp.get(), 1, 1, static_cast<int64_t>(sp->tokens.size()), nullptr, {}});
      --budget;
    }
  for (auto& sp : running_) {
    if (sp->decoding || budget <= 0) continue;
    Sequence& s = *sp;
    const int64_t left = static_cast<int64_t>(s.input.size() - s.fed);
    int64_t n = std::min(left, budget);
    if (s.req.max_chunk > 0) n = std::min<int64_t>(n, s.req.max_chunk);
    const int64_t p0 = static_cast<int64_t>(s.tokens.size());
    // An embedded run goes in one chunk of its own, never cut (its positions attend both ways);
    // text before it stops at its start. A run that does not fit what is left of this step's
    // budget waits for the next step (admission made sure a whole step can take it).
    const EmbeddedRun* run = s.next_run < s.runs.size() ? &s.runs[s.next_run] : nullptr;
    if (run && run->begin == s.fed) {
      n = static_cast<int64_t>(run->end - run->begin);
      if (n > budget) continue;
    } else if (run && s.fed + static_cast<size_t>(n) > run->begin) {
      n = static_cast<int64_t>(run->begin - s.fed);
    } else {
      run = nullptr;
    }
    int n_logits = (n == left && s.req.max_tokens > 0) ? 1 : 0;
    if (s.req.score_from >= 0 && s.req.on_prompt_logits)
      n_logits = std::max<int>(n_logits, static_cast<int>(std::clamp<int64_t>(p0 + n - s.req.score_from, 0, n)));
    Planned p{&s, n, n_logits, p0, nullptr, {}};
    if (run && run->begin == s.fed) {
      p.embeddings = run->values;
      p.span = {static_cast<int32_t>(p0), static_cast<int32_t>(p0 + n)};
    }
    plan.push_back(p);
    budget -= n;
  }
  if (plan.empty())  // cannot happen: admission bounds a run by what a step always has room for
    return internal_error("{} sequences run but none fits the step budget", running_.size());
  for (const Planned& p : plan) {
    Sequence& s = *p.seq;
    if (!s.started) {
      s.started = true;
      s.t_start = Clock::now();
      s.result.stats.queue_seconds = seconds_between(s.t_submit, s.t_start);
    }
    SequenceChunk chunk(slots_[static_cast<size_t>(s.slot)].get(),
                        std::span<const int32_t>(s.input).subspan(s.fed, static_cast<size_t>(p.n)), p.n_logits);
    if (p.embeddings) {
      chunk.tokens = {};
      chunk.embeddings = {p.embeddings, static_cast<size_t>(p.n) * static_cast<size_t>(model_.config().hidden)};
      chunk.bidirectional = {&p.span, 1};
    }
    chunks.push_back(chunk);
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
      if (p.embeddings) {
        s.spans.push_back(p.span);
        ++s.next_run;
      }
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
    retire(std::move(*it));
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

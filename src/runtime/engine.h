// The step-wise engine: the one place that drives Model::forward. Front ends submit requests
// (a prompt as tokens, sampling settings, stop rules, a sink for tokens) and call step(); each
// step gathers one decode token from every running sequence and prefill chunks from the others,
// up to a token budget, runs them through one forward pass, samples, and tells each request's
// sink. `gemma run` is one request, a server many. The engine owns the KV memory: a pool of
// per-sequence caches reserved up front (see memory_plan.h for what it costs).
//
// Threading: submit() and cancel() may be called from any thread; step() and run_to_completion()
// from one thread at a time. Sinks are called on the stepping thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/stop_strings.h"
#include "tokenizer/utf8.h"

namespace gemma {

using RequestId = uint64_t;

struct EngineOptions {
  int n_ctx = 0;               // positions per sequence (prompt + generated)
  int max_sequences = 1;       // KV slots: sequences held at once, running or kept
  int step_tokens = 256;       // token budget of one step (decode tokens + prefill chunks)
  DType kv_type = DType::F16;  // F16 (half the memory, llama.cpp's default) or F32 (exact)
  // How far a kept sequence may be rolled back (truncate) and still be extended. Sliding-window
  // layers keep window - 1 + max(step_tokens, max_rollback) positions, so rollbacks up to the step
  // budget cost nothing extra; memory_plan.h reports what a larger value costs.
  int max_rollback = 0;
  // Prefix cache: a finished request's sequence (not asked to be kept) stays in its KV slot, and a
  // later request whose prompt starts with the same tokens reuses the longest such prefix, so only
  // the rest is prefilled (a chat client resending its history prefills just the new turn). A
  // cached sequence is moved into the new request when little of it would be cut away (the same
  // conversation, rolled back a few re-tokenized tokens) or no slot is free, copied otherwise
  // (another conversation sharing a system prompt); least recently used ones are freed when a
  // request needs a slot. On models with sliding-window layers a reuse may cut at most
  // max(step_tokens, max_rollback) tokens off a cached sequence (what the rings keep).
  // Output is the same as without the cache: the reused rows are the ones a cold run computes.
  bool prefix_cache = false;
};

enum class FinishReason {
  kStop,       // a stop token or stop string
  kLength,     // max_tokens generated (or a prompt-only request whose prompt is consumed)
  kContext,    // the sequence's context is full
  kCancelled,  // cancel(), or the sink returned false
  kError,      // the forward pass failed; RequestResult::status says why
};
const char* finish_reason_name(FinishReason r);

// What the sink gets for each generated token. `text` is what may be shown now: the token's
// bytes after UTF-8 reassembly, minus anything that might still become part of a stop string
// (held back until it can't; a matched stop string is never emitted).
struct TokenEvent {
  RequestId request = 0;
  int32_t id = 0;
  std::string text;
  std::span<const float> logits;  // the distribution this token was sampled from ([n_vocab])
};

struct RequestStats {
  int n_prompt = 0;            // tokens prefilled for this request (not counting a reused prefix)
  int n_cached = 0;            // prompt tokens taken from the prefix cache instead (prefix_cache)
  int n_generated = 0;         // tokens sampled and emitted
  double queue_seconds = 0;    // submit -> first prefill step
  double prefill_seconds = 0;  // first prefill step -> first token sampled
  double decode_seconds = 0;   // first token -> last token
  double prefill_tps() const { return prefill_seconds > 0 ? n_prompt / prefill_seconds : 0; }
  double decode_tps() const { return decode_seconds > 0 && n_generated > 1 ? (n_generated - 1) / decode_seconds : 0; }
};

struct RequestResult {
  RequestId request = 0;
  FinishReason reason = FinishReason::kLength;
  Status status;     // set when reason == kError (or the request was refused)
  std::string tail;  // text held back at the end (a partial stop string that never matched)
  RequestStats stats;
};

// Ready input embeddings for a run of prompt positions: Gemma 3's projected image soft tokens.
// Prompt tokens [offset, offset + rows) are fed as these rows ([rows, hidden] floats) instead of
// the prompt's ids there (placeholders, e.g. <image_soft_token>, which stay in the sequence's
// tokens), and see each other both ways. The engine feeds one such run in a single prefill chunk,
// whatever the step budget would cut, so the bidirectional rule always holds; a run longer than a
// step can hold is refused.
struct PromptEmbeddings {
  int offset = 0;             // into Request::prompt
  std::vector<float> values;  // [rows, hidden]
};

struct Request {
  std::vector<int32_t> prompt;  // appended to the sequence (after `continue_from`'s tokens if set)
  // Runs of the prompt given as embeddings (sorted by offset, disjoint; see PromptEmbeddings).
  std::vector<PromptEmbeddings> embeddings;
  SamplerParams sampling;
  int max_tokens = 256;                   // 0: only prefill the prompt (scoring, or a prefix to keep)
  std::vector<int32_t> stop_ids;          // sampled -> finish with kStop; not emitted, not cached
  std::vector<std::string> stop_strings;  // matched in the emitted text, across token boundaries
  // Continue a sequence kept by an earlier request (its KV cache and tokens), optionally rolled
  // back first to its first `truncate_to` tokens (-1: keep all). A cut inside an embedded run is
  // refused: the run's cached rows saw the positions cut away. So is a prefix that ends inside one.
  std::optional<RequestId> continue_from;
  int truncate_to = -1;
  // Start from a copy of the first `prefix_len` tokens of a kept sequence (a prefix cache hit:
  // only the prompt after them is prefilled), leaving that sequence as it is. Needs a free slot.
  // The prompt then holds only the tokens after the prefix.
  std::optional<RequestId> prefix_from;
  int prefix_len = 0;
  // Keep this request's sequence after it finishes, so a later request can continue it (chat).
  // A kept sequence holds its KV slot until release().
  bool keep = false;
  // Most prompt tokens fed in one step (0: the step budget). bench's decode test feeds its
  // tokens one per step with max_chunk 1, as llama-bench's tg does.
  int max_chunk = 0;
  // Scoring: called with the logits of every prompt position >= score_from (-1: none), in order.
  int score_from = -1;
  std::function<void(int position, std::span<const float> logits)> on_prompt_logits;
  // Called for each generated token; returning false cancels the request.
  std::function<bool(const TokenEvent&)> on_token;
  std::function<void(const RequestResult&)> on_done;
  const Tokenizer* tokenizer = nullptr;  // for text and stop strings; default: the model's
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(const Model& model, Backend& backend, const EngineOptions& options);

  // Queues a request; its id is what on_done reports and cancel() takes. Requests that cannot
  // run (prompt over the context, bad continue_from, ...) finish at the next step with kError.
  RequestId submit(Request request);
  // Finishes a queued or running request with kCancelled at the next step (its slot is freed
  // unless the request asked to be kept).
  void cancel(RequestId id);
  // Frees a kept sequence's slot.
  void release(RequestId id);

  // One forward pass over the running sequences. Returns false when there was nothing to do.
  Result<bool> step();
  // Steps until no request is queued or running.
  Status run_to_completion();

  // Tokens of a kept sequence (what its KV cache holds), or empty.
  std::vector<int32_t> sequence_tokens(RequestId id) const;
  int n_running() const;
  int n_waiting() const;
  int n_free_slots() const;
  int n_cached() const;  // slots holding prefix-cache entries (evictable; counted as not free)
  const EngineOptions& options() const { return opt_; }
  const Model& model() const { return model_; }
  ~Engine();

 private:
  struct Sequence;
  Engine(const Model& model, Backend& backend, const EngineOptions& options);
  void admit();
  // The longest embedded run one step can always take: the budget less a decode token for every
  // other sequence.
  int max_run_rows() const { return opt_.step_tokens - (opt_.max_sequences - 1); }
  void finish(Sequence& s, FinishReason reason, Status status = {});
  // Delivers a sampled token; false when the sequence finished (stop, length, context, cancel).
  bool emit_token(Sequence& s, int32_t id, std::span<const float> logits);
  // A sequence leaving the running list: kept for a continuation, held as a prefix-cache entry,
  // or its slot freed.
  void retire(std::unique_ptr<Sequence> s);
  // Prefix cache: points a fresh request at the cached sequence sharing its longest prefix.
  void reuse_cached_prefix(Sequence& s);
  // Frees the least recently used prefix-cache entry's slot; false when there is none.
  bool evict_cached();

  const Model& model_;
  Backend& backend_;
  EngineOptions opt_;
  ForwardBuffers buf_;
  std::vector<std::unique_ptr<KvCache>> slots_;
  std::vector<bool> slot_used_;
  std::vector<float> logits_;

  mutable std::mutex mu_;  // guards incoming_, cancelled_, released_, next_id_
  std::deque<std::pair<RequestId, Request>> incoming_;
  std::vector<RequestId> cancelled_;
  std::vector<RequestId> released_;
  RequestId next_id_ = 1;
  uint64_t tick_ = 0;  // step count, for the prefix cache's least-recently-used order

  std::deque<std::unique_ptr<Sequence>> waiting_;   // admitted order; not yet holding a slot
  std::vector<std::unique_ptr<Sequence>> running_;  // holding a slot: prefilling or decoding
  std::vector<std::unique_ptr<Sequence>> kept_;     // finished, slot kept for a continuation
};

}  // namespace gemma

// gemma_engine._core: the engine (src/runtime/engine.h) as a Python type. This layer holds a
// model, a backend and a one-slot engine, and exposes them step by step: submit() queues a
// generation, step() runs one engine step with the GIL released and returns the tokens it made.
// The Python class Gemma (python/gemma_engine/llama.py) builds llama-cpp-python's dicts on top.
//
// Why step-wise: a Python loop around step() gives streaming iterators for free, and
// KeyboardInterrupt lands between two steps (at most one decode token, or one prefill chunk);
// step() also calls PyErr_CheckSignals itself, so a C++ caller loop would stop as quickly.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gemma.h"
#include "server/openai.h"
#include "util/mapped_file.h"
#include "util/thread_pool.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using gemma::Error;
using gemma::ErrorKind;

// Python exception types, one per ErrorKind (made in NB_MODULE). Invalid arguments subclass
// ValueError and GemmaError alike, so `except ValueError` and `except RuntimeError` both work.
PyObject* g_error = nullptr;  // GemmaError(RuntimeError)
PyObject* g_kinds[6] = {};

[[noreturn]] void raise(const Error& e) {
  PyObject* type = g_kinds[static_cast<int>(e.kind)];
  PyErr_SetString(type ? type : PyExc_RuntimeError, e.message.c_str());
  throw nb::python_error();
}

template <typename T>
T take(gemma::Result<T> r) {
  if (!r.ok()) raise(r.error());
  return std::move(r).value();
}

void check(const gemma::Status& s) {
  if (!s.ok()) raise(s.error());
}

// nlohmann::json -> Python objects (the server's token_logprob entries).
nb::object to_python(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return nb::none();
    case nlohmann::json::value_t::boolean: return nb::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return nb::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return nb::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return nb::float_(j.get<double>());
    case nlohmann::json::value_t::string: return nb::str(j.get_ref<const std::string&>().c_str());
    case nlohmann::json::value_t::array: {
      nb::list l;
      for (const auto& x : j) l.append(to_python(x));
      return l;
    }
    case nlohmann::json::value_t::object: {
      nb::dict d;
      for (const auto& [k, v] : j.items()) d[nb::str(k.c_str())] = to_python(v);
      return d;
    }
    default: return nb::none();
  }
}

nb::bytes to_bytes(const std::string& s) { return nb::bytes(s.data(), s.size()); }

struct Event {
  int32_t id = 0;
  std::string text;
  nlohmann::json logprob;  // null unless asked for
};

// Scores of an eval() call: owned by a shared_ptr that NumPy views keep alive, so a view stays
// valid after the next eval() (which makes a new buffer) or after the model is gone.
struct ScoreBuffer {
  std::vector<float> values;
  int rows = 0, cols = 0;
};

class Core {
 public:
  Core(const std::string& path, const std::string& tokenizer_path, int n_ctx, int n_threads, bool logits_all, bool mmap,
       bool precise)
      : logits_all_(logits_all), kv_type_(precise ? gemma::DType::F32 : gemma::DType::F16) {
    if (n_ctx != 0) check(gemma::check_context(n_ctx));
    if (n_threads < 0 || n_threads > gemma::kMaxThreads)
      raise(gemma::invalid_argument("n_threads must be between 1 and {} (got {})", gemma::kMaxThreads, n_threads));
    gemma::Result<std::unique_ptr<gemma::Model>> model = gemma::internal_error("not loaded");
    gemma::Result<std::unique_ptr<gemma::Backend>> backend = gemma::internal_error("not created");
    {
      nb::gil_scoped_release nogil;
      gemma::LoadOptions lo;
      lo.tokenizer_path = tokenizer_path;
      lo.pages = mmap ? gemma::FilePages::kMapped : gemma::FilePages::kHuge;  // as `gemma run`
      model = gemma::Model::load(path, lo);
      gemma::BackendOptions bo;
      bo.threads = n_threads;
      bo.precise = precise;  // gemma run --precise: float32 products and a float32 KV cache
      if (model.ok()) backend = gemma::create_backend(bo);
    }
    model_ = take(std::move(model));
    backend_ = take(std::move(backend));
    if (!model_->tokenizer()) raise(gemma::invalid_argument("the checkpoint has no tokenizer; pass tokenizer_path"));
    n_ctx_ = n_ctx > 0 ? n_ctx : gemma::default_context(model_->config());
    gemma::EngineOptions eo;
    eo.n_ctx = n_ctx_;
    eo.max_sequences = 1;
    eo.kv_type = kv_type_;
    engine_ = take(gemma::Engine::create(*model_, *backend_, eo));
  }

  ~Core() {
    // Engine first: it refers to the backend and the model.
    engine_.reset();
  }

  const gemma::Tokenizer& tok() const { return *model_->tokenizer(); }
  int n_ctx() const { return n_ctx_; }
  int n_vocab() const { return model_->n_vocab_out(); }
  int n_threads() const { return backend_->n_threads(); }
  std::string backend_name() const { return backend_->name(); }
  bool instruction_tuned() const { return model_->config().instruction_tuned; }

  std::vector<int32_t> tokenize(nb::bytes text, bool add_bos, bool special) const {
    std::vector<int32_t> ids = take(tok().encode(std::string_view(text.c_str(), text.size()), add_bos));
    if (special) return ids;
    // special=False (llama.cpp's parse_special=false): a control token's text written in the input
    // ("<start_of_turn>", "<eos>") is plain text, not that token. The tokenizer always matches
    // added tokens (HF's rule), so each such match is re-encoded as "<" plus the rest, which
    // cannot match again. Added tokens that are ordinary text (runs of newlines or spaces) stay.
    std::vector<int32_t> out;
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t id = ids[i];
      const std::string_view piece = tok().piece(id);
      const bool bos = add_bos && i == 0;
      if (bos || tok().kind(id) != gemma::TokenKind::Control || piece.size() < 3 || piece.front() != '<') {
        out.push_back(id);
        continue;
      }
      for (std::string_view part : {piece.substr(0, 1), piece.substr(1)}) {
        auto p = take(tok().encode(part, false));
        out.insert(out.end(), p.begin(), p.end());
      }
    }
    return out;
  }

  // special=False leaves control tokens (<bos>, <end_of_turn>) out, as llama.cpp's detokenizer
  // does; special=True writes their text.
  nb::bytes detokenize(const std::vector<int32_t>& ids, bool special) const {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || id >= tok().vocab_size()) raise(gemma::invalid_argument("token id {} is out of range", id));
      if (!special && tok().kind(id) == gemma::TokenKind::Control) continue;
      out += tok().token_bytes(id);
    }
    return to_bytes(out);
  }

  std::vector<int32_t> render_chat(const std::vector<std::pair<std::string, std::string>>& messages) const {
    std::vector<gemma::ChatMessage> m;
    for (const auto& [role, content] : messages) m.push_back({role, content});
    return take(gemma::render_chat_tokens(tok(), m));
  }

  std::vector<int32_t> stop_ids() const { return gemma::default_stop_ids(tok()); }

  // Queues a generation continuing the current sequence where the prompt extends it (the
  // llama-cpp-python prefix reuse: chat turns and eval() then generate), else from empty.
  void submit(const std::vector<int32_t>& prompt, int max_tokens, float temperature, int top_k, float top_p,
              float min_p, float repeat_penalty, int repeat_last_n, float frequency_penalty, float presence_penalty,
              std::optional<uint64_t> seed, const std::vector<std::string>& stop, int logprobs) {
    std::lock_guard lock(mu_);
    if (active_) raise(gemma::invalid_argument("a generation is already running on this model"));
    if (prompt.empty()) raise(gemma::invalid_argument("the prompt is empty"));
    for (int32_t id : prompt)
      if (id < 0 || id >= n_vocab()) raise(gemma::invalid_argument("token id {} is out of range", id));
    if (static_cast<int64_t>(prompt.size()) > n_ctx_)
      raise(gemma::invalid_argument("the prompt is {} tokens, longer than the context of {} (raise n_ctx)",
                                    prompt.size(), n_ctx_));
    if (max_tokens < 0) raise(gemma::invalid_argument("max_tokens must be >= 0 (got {})", max_tokens));
    if (logprobs > 20) raise(gemma::invalid_argument("logprobs must be at most 20 (got {})", logprobs));
    gemma::Request r;
    r.sampling.temperature = temperature;
    r.sampling.top_k = top_k;
    r.sampling.top_p = top_p;
    r.sampling.min_p = min_p;
    r.sampling.repeat_penalty = repeat_penalty;
    r.sampling.repeat_last_n = repeat_last_n;
    r.sampling.frequency_penalty = frequency_penalty;
    r.sampling.presence_penalty = presence_penalty;
    check(gemma::check_sampling(r.sampling));
    r.sampling.seed = gemma::resolve_seed(seed);
    // Room left in the context bounds the generation; max_tokens 0 means "until the context is
    // full", as llama-cpp-python reads max_tokens <= 0.
    const int room = n_ctx_ - static_cast<int>(prompt.size());
    r.max_tokens = max_tokens == 0 ? room : std::min(max_tokens, room);
    if (r.max_tokens == 0) r.max_tokens = 1;  // the engine ends it with kContext
    r.stop_ids = gemma::default_stop_ids(tok());
    r.stop_strings = stop;
    r.keep = true;
    // Prefix reuse: the kept sequence's tokens are a proper prefix of the prompt.
    if (kept_ && history_.size() < prompt.size() && std::equal(history_.begin(), history_.end(), prompt.begin())) {
      r.continue_from = *kept_;
      r.prompt.assign(prompt.begin() + static_cast<int64_t>(history_.size()), prompt.end());
      reused_ = static_cast<int>(history_.size());
    } else {
      drop_kept();
      r.prompt = prompt;
      reused_ = 0;
    }
    events_.clear();
    result_ = {};
    done_ = false;
    const int top_n = logprobs;
    if (logprobs >= 0) {
      r.on_token = [this, top_n](const gemma::TokenEvent& ev) {
        events_.push_back({ev.id, ev.text, gemma::server::token_logprob(tok(), ev.id, ev.logits, n_vocab(), top_n)});
        return !cancel_;
      };
    } else {
      r.on_token = [this](const gemma::TokenEvent& ev) {
        events_.push_back({ev.id, ev.text, nullptr});
        return !cancel_;
      };
    }
    r.on_done = [this](const gemma::RequestResult& res) {
      result_ = res;
      done_ = true;
    };
    cancel_ = false;
    active_ = engine_->submit(std::move(r));
    scores_.reset();
  }

  // One engine step. Returns (events [(id, bytes, logprob or None)], finished, finish_reason,
  // tail bytes, n_prompt, n_generated); the reason is OpenAI's ("stop"/"length") or "cancelled".
  nb::tuple step() {
    std::vector<Event> events;
    {
      nb::gil_scoped_release nogil;
      std::lock_guard lock(mu_);
      if (!active_) raise_later_ = gemma::invalid_argument("no generation is running");
      else if (!done_) {
        auto r = engine_->step();
        if (!r.ok()) {
          step_error_ = r.error();
        } else if (!*r && !done_) {
          step_error_ = gemma::internal_error("the engine stopped before the request finished");
        }
      }
      events.swap(events_);
    }
    if (raise_later_) {
      Error e = *raise_later_;
      raise_later_.reset();
      raise(e);
    }
    if (step_error_) {
      Error e = *step_error_;
      step_error_.reset();
      finish_active();
      raise(e);
    }
    nb::list out;
    for (Event& e : events)
      out.append(nb::make_tuple(e.id, to_bytes(e.text), e.logprob.is_null() ? nb::none() : to_python(e.logprob)));
    if (!done_) {
      if (PyErr_CheckSignals() != 0) {  // Ctrl-C: cancel, free the slot, raise KeyboardInterrupt
        nb::python_error err;
        cancel();
        throw err;
      }
      return nb::make_tuple(out, false, nb::none(), nb::bytes("", 0), 0, 0);
    }
    const gemma::RequestResult res = result_;
    finish_active();
    if (res.reason == gemma::FinishReason::kError) raise(res.status.error());
    const char* reason =
        res.reason == gemma::FinishReason::kCancelled ? "cancelled" : gemma::server::finish_reason(res.reason);
    return nb::make_tuple(out, true, reason, to_bytes(res.tail), reused_ + res.stats.n_prompt, res.stats.n_generated);
  }

  // Stops a running generation (a closed stream, Ctrl-C) and waits for the engine to let go.
  void cancel() {
    nb::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    if (!active_) return;
    cancel_ = true;
    engine_->cancel(*active_);
    while (!done_) {
      auto r = engine_->step();
      if (!r.ok() || !*r) break;
    }
    events_.clear();
    finish_active();
  }

  // Appends tokens to the current sequence and keeps their logits (every row with logits_all,
  // else the last), as llama-cpp-python's eval.
  void eval(const std::vector<int32_t>& tokens) {
    if (tokens.empty()) return;
    for (int32_t id : tokens)
      if (id < 0 || id >= n_vocab()) raise(gemma::invalid_argument("token id {} is out of range", id));
    std::optional<Error> err;
    {
      nb::gil_scoped_release nogil;
      std::lock_guard lock(mu_);
      if (active_) {
        err = gemma::invalid_argument("a generation is running on this model");
      } else if (history_.size() + tokens.size() > static_cast<size_t>(n_ctx_)) {
        err = gemma::invalid_argument("{} tokens after {} do not fit the context of {}", tokens.size(), history_.size(),
                                      n_ctx_);
      } else {
        auto buf = std::make_shared<ScoreBuffer>();
        buf->cols = n_vocab();
        const int64_t first = static_cast<int64_t>(history_.size());
        const int64_t last = first + static_cast<int64_t>(tokens.size()) - 1;
        buf->rows = logits_all_ ? static_cast<int>(tokens.size()) : 1;
        buf->values.resize(static_cast<size_t>(buf->rows) * static_cast<size_t>(buf->cols));
        gemma::Request r;
        r.prompt = tokens;
        r.max_tokens = 0;
        r.keep = true;
        if (kept_) r.continue_from = *kept_;
        r.score_from = static_cast<int>(logits_all_ ? first : last);
        ScoreBuffer* b = buf.get();
        const int64_t row0 = logits_all_ ? first : last;
        r.on_prompt_logits = [b, row0](int position, std::span<const float> logits) {
          const size_t row = static_cast<size_t>(position - row0);
          std::copy_n(logits.begin(), static_cast<size_t>(b->cols), b->values.begin() + row * b->cols);
        };
        gemma::RequestResult res;
        r.on_done = [&res](const gemma::RequestResult& x) { res = x; };
        const gemma::RequestId id = engine_->submit(std::move(r));
        gemma::Status st = engine_->run_to_completion();
        if (!st.ok()) {
          err = st.error();
        } else if (res.reason == gemma::FinishReason::kError) {
          err = res.status.error();
        }
        if (err) {
          kept_.reset();
          history_.clear();
          engine_->release(id);
        } else {
          kept_ = id;
          history_ = engine_->sequence_tokens(id);
          scores_ = std::move(buf);
        }
      }
    }
    if (err) raise(*err);
  }

  // The last eval's logits as a [rows, n_vocab] float32 array on the buffer itself (no copy).
  nb::object scores() const {
    if (!scores_) return nb::none();
    auto* keep = new std::shared_ptr<ScoreBuffer>(scores_);
    nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<std::shared_ptr<ScoreBuffer>*>(p); });
    size_t shape[2] = {static_cast<size_t>(scores_->rows), static_cast<size_t>(scores_->cols)};
    return nb::cast(nb::ndarray<nb::numpy, const float, nb::ndim<2>>(scores_->values.data(), 2, shape, owner));
  }

  std::vector<int32_t> tokens() const { return history_; }

  void reset() {
    nb::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    drop_kept();
    scores_.reset();
  }

  nb::dict perplexity(nb::bytes text, int ctx) {
    if (ctx < 2) raise(gemma::invalid_argument("n_ctx must be at least 2 for perplexity (got {})", ctx));
    if (ctx > gemma::kMaxContext) check(gemma::check_context(ctx));
    std::optional<gemma::Result<gemma::PerplexityResult>> r;
    size_t n_tokens = 0;
    {
      nb::gil_scoped_release nogil;
      std::lock_guard lock(mu_);
      auto ids = tok().encode(std::string_view(text.c_str(), text.size()), true);
      if (!ids.ok()) {
        r = ids.error();
      } else {
        n_tokens = ids->size();
        r = gemma::perplexity(*model_, *backend_, *ids, ctx, kv_type_);  // as gemma perplexity
      }
    }
    gemma::PerplexityResult p = take(std::move(*r));
    nb::dict d;
    d["perplexity"] = p.ppl;
    d["error"] = p.error;
    d["n_chunks"] = p.n_chunks;
    d["n_scored"] = p.n_scored;
    d["n_tokens"] = n_tokens;
    d["running"] = p.running_ppl;
    return d;
  }

  // `gemma inspect`'s facts.
  nb::dict metadata() const {
    const gemma::ModelConfig& c = model_->config();
    const gemma::CheckpointInfo& info = model_->info();
    nb::dict d;
    d["file"] = info.path;
    d["format"] = info.format;
    d["file_bytes"] = info.file_bytes;
    d["generation"] = std::string(gemma::generation_name(c.generation));
    d["variant"] = c.variant;
    d["instruction_tuned"] = c.instruction_tuned;
    d["n_params"] = info.n_params;
    nb::dict types;
    for (const auto& [name, n] : info.tensors_by_dtype) types[nb::str(name.c_str())] = n;
    d["tensors_by_type"] = types;
    d["vocab_size"] = c.vocab_size;
    d["tokenizer_vocab_size"] = tok().vocab_size();
    d["tokenizer_source"] = info.tokenizer_source;
    d["hidden"] = c.hidden;
    d["n_layers"] = c.n_layers;
    d["n_heads"] = c.n_heads;
    d["n_kv_heads"] = c.n_kv_heads;
    d["head_dim"] = c.head_dim;
    d["ffn"] = c.ffn;
    d["context_length"] = c.context_length;
    d["sliding_window"] = c.sliding_window;
    std::string pattern;
    for (const gemma::LayerConfig& l : c.layers) pattern += l.sliding ? 'L' : 'G';
    d["layer_pattern"] = pattern;
    float local_base = 0, global_base = 0, global_scale = 1;
    for (const gemma::LayerConfig& l : c.layers) (l.sliding ? local_base : global_base) = l.rope_base;
    for (const gemma::LayerConfig& l : c.layers)
      if (!l.sliding) global_scale = l.rope_scale;
    d["rope_local_base"] = local_base;
    d["rope_global_base"] = global_base;
    d["rope_global_scale"] = global_scale;
    d["query_scale"] = c.query_scale;
    d["rms_eps"] = c.rms_eps;
    d["embed_scale"] = c.embed_scale;
    d["attn_softcap"] = c.attn_softcap;
    d["final_softcap"] = c.final_softcap;
    d["qk_norm"] = c.qk_norm;
    d["post_norms"] = c.post_norms;
    d["notes"] = info.notes;
    return d;
  }

 private:
  void drop_kept() {
    if (kept_) engine_->release(*kept_);
    kept_.reset();
    history_.clear();
  }
  // After a generation: its sequence (prompt + generated) becomes the current one.
  void finish_active() {
    if (!active_) return;
    const gemma::RequestId id = *active_;
    active_.reset();
    done_ = false;
    kept_.reset();  // a continuation took over the old kept sequence; the new id holds it now
    history_ = engine_->sequence_tokens(id);
    if (history_.empty()) {
      engine_->release(id);
    } else {
      kept_ = id;
    }
  }

  std::unique_ptr<gemma::Model> model_;
  std::unique_ptr<gemma::Backend> backend_;
  std::unique_ptr<gemma::Engine> engine_;  // destroyed first (~Core)
  std::mutex mu_;
  int n_ctx_ = 0;
  bool logits_all_ = false;
  gemma::DType kv_type_ = gemma::DType::F16;
  std::optional<gemma::RequestId> active_;
  bool done_ = false;
  bool cancel_ = false;
  int reused_ = 0;
  gemma::RequestResult result_;
  std::vector<Event> events_;
  std::optional<Error> step_error_, raise_later_;
  std::optional<gemma::RequestId> kept_;
  std::vector<int32_t> history_;
  std::shared_ptr<ScoreBuffer> scores_;
};

PyObject* new_error(nb::module_& m, const char* name, PyObject* bases, const char* doc) {
  const std::string full = std::string("gemma_engine.") + name;
  PyObject* t = PyErr_NewExceptionWithDoc(full.c_str(), doc, bases, nullptr);
  if (!t) throw nb::python_error();
  m.attr(name) = nb::handle(t);
  return t;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "gemma-engine's native core (use gemma_engine.Gemma)";
  g_error = new_error(m, "GemmaError", PyExc_RuntimeError, "An error reported by the engine.");
  auto sub = [&](const char* name, PyObject* extra, const char* doc) {
    PyObject* bases = extra ? PyTuple_Pack(2, g_error, extra) : PyTuple_Pack(1, g_error);
    PyObject* t = new_error(m, name, bases, doc);
    Py_DECREF(bases);
    return t;
  };
  g_kinds[static_cast<int>(ErrorKind::kInvalidArgument)] =
      sub("InvalidArgumentError", PyExc_ValueError, "Bad arguments or input (a ValueError).");
  g_kinds[static_cast<int>(ErrorKind::kNotFound)] = sub("NotFoundError", nullptr, "A missing file, tensor or key.");
  g_kinds[static_cast<int>(ErrorKind::kUnsupported)] =
      sub("UnsupportedError", nullptr, "Valid input this engine does not handle.");
  g_kinds[static_cast<int>(ErrorKind::kCorruptInput)] =
      sub("CorruptInputError", nullptr, "Malformed or truncated file contents.");
  g_kinds[static_cast<int>(ErrorKind::kResourceExhausted)] =
      sub("ResourceExhaustedError", nullptr, "Memory that cannot be reserved.");
  g_kinds[static_cast<int>(ErrorKind::kInternal)] = sub("InternalError", nullptr, "A failed invariant of the engine.");

  m.def("file_exists", [](const std::string& p) { return gemma::file_exists(p); });

  nb::class_<Core>(m, "Core")
      .def(nb::init<const std::string&, const std::string&, int, int, bool, bool, bool>(), "model_path"_a,
           "tokenizer_path"_a, "n_ctx"_a, "n_threads"_a, "logits_all"_a, "mmap"_a, "precise"_a)
      .def("n_ctx", &Core::n_ctx)
      .def("n_vocab", &Core::n_vocab)
      .def("n_threads", &Core::n_threads)
      .def("backend_name", &Core::backend_name)
      .def("instruction_tuned", &Core::instruction_tuned)
      .def("tokenize", &Core::tokenize, "text"_a, "add_bos"_a, "special"_a)
      .def("detokenize", &Core::detokenize, "tokens"_a, "special"_a = false)
      .def("render_chat", &Core::render_chat, "messages"_a)
      .def("stop_ids", &Core::stop_ids)
      .def("submit", &Core::submit, "prompt"_a, "max_tokens"_a, "temperature"_a, "top_k"_a, "top_p"_a, "min_p"_a,
           "repeat_penalty"_a, "repeat_last_n"_a, "frequency_penalty"_a, "presence_penalty"_a, "seed"_a.none(),
           "stop"_a, "logprobs"_a)
      .def("step", &Core::step)
      .def("cancel", &Core::cancel)
      .def("eval", &Core::eval, "tokens"_a)
      .def("scores", &Core::scores)
      .def("tokens", &Core::tokens)
      .def("reset", &Core::reset)
      .def("perplexity", &Core::perplexity, "text"_a, "n_ctx"_a)
      .def("metadata", &Core::metadata);
}

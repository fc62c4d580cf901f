#include "server/server.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "runtime/prompt.h"
#include "server/openai.h"

namespace gemma::server {

namespace {

using Clock = std::chrono::steady_clock;

// Replies are dumped with invalid UTF-8 replaced (a byte token on its own is not valid UTF-8);
// nlohmann::json would throw otherwise.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The legacy completions logprobs object (tokens, token_logprobs, top_logprobs as {token: logprob},
// text_offset) from per-token entries; `offset` is the text offset of the first entry's token and
// is advanced past the last (a stream continues it in its next chunk).
json completion_logprobs(const json& entries, size_t& offset) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const json& e : entries) {
    tokens.push_back(e["token"]);
    lps.push_back(e["logprob"]);
    json t = json::object();
    for (const json& x : e["top_logprobs"]) t[x["token"].get<std::string>()] = x["logprob"];
    tops.push_back(std::move(t));
    offsets.push_back(offset);
    offset += e["token"].get<std::string>().size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// httplib 0.11 tells a handler nothing about its client hanging up (a streamed reply notices at its
// next write, a non-streamed one only at its final write, after the whole generation) and does not
// hand it the connection's socket. The socket is found among the process's descriptors by the
// connection's two ends (what httplib reports as remote and local address and port), once per
// non-streamed request; -1 if none matches.
std::string numeric_host(const sockaddr_storage& a, socklen_t len, int& port) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return {};
  port = std::atoi(serv);
  return host;
}

int find_client_socket(const httplib::Request& q) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, self{};
    socklen_t peer_len = sizeof peer, self_len = sizeof self;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &self_len) != 0)
      continue;
    int peer_port = -1, self_port = -1;
    if (numeric_host(peer, peer_len, peer_port) == q.remote_addr && peer_port == q.remote_port &&
        numeric_host(self, self_len, self_port) == q.local_addr && self_port == q.local_port)
      return fd;
  }
  return -1;
}

// Whether the peer of a connected socket has closed it: a peek that reads 0 bytes (or fails for
// a reason other than "nothing yet") says so. Bytes waiting (a pipelined request) are left alone.
bool client_gone(int fd) {
  if (fd < 0) return false;
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// A latency histogram in Prometheus' cumulative form.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void add(double v) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += v;
    ++n_;
  }
  void write(std::string& out, const std::string& name, const std::string& help) const {
    std::lock_guard<std::mutex> lock(mu_);
    out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cum += counts_[i];
      out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cum);
    }
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, n_, name, sum_, name, n_);
  }

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t n_ = 0;
};

// One choice being generated: what the engine thread hands to the HTTP thread.
struct Choice {
  RequestId id = 0;
  int index = 0;
  std::string text;               // not yet sent (stream) or all of it (non-stream)
  json logprobs = json::array();  // entries not yet sent
  bool done = false;
  RequestResult result;
  int n_prompt = 0;
};

// The choices of one HTTP request, guarded by one mutex so a stream can wait for any of them.
struct Exchange {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Choice>> choices;
  bool all_done() const {
    return std::all_of(choices.begin(), choices.end(), [](const auto& c) { return c->done; });
  }
};

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  httplib::Server http;
  std::atomic<const Model*> model{nullptr};
  Engine* engine = nullptr;
  std::thread engine_thread;
  std::atomic<bool> stopping{false};
  std::mutex wake_mu;
  std::condition_variable wake_cv;
  bool wake = false;
  std::atomic<int> in_flight{0};  // choices submitted and not finished
  std::mutex live_mu;             // guards live: every in-flight request id, for stop()
  std::map<RequestId, bool> live;
  std::atomic<uint64_t> next_id{1};
  std::mutex stop_mu;
  bool stopped = false;

  // Metrics. Gauges the engine thread writes after each step.
  std::mutex status_mu;
  std::map<int, uint64_t> requests_by_status;
  std::atomic<uint64_t> prompt_tokens{0}, generated_tokens{0}, cached_tokens{0}, cache_hits{0};
  std::atomic<int> running{0}, waiting{0}, slots_used{0}, slots_cached{0};
  Histogram ttft{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  Histogram token_latency{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};

  explicit Impl(ServerOptions o) : opt(std::move(o)) {}

  void count_status(int status) {
    std::lock_guard<std::mutex> lock(status_mu);
    ++requests_by_status[status];
  }
  void reply_error(httplib::Response& res, const Error& e, int status = 0) {
    res.status = status ? status : http_status(e.kind);
    if (res.status == 503) res.set_header("Retry-After", "1");
    res.set_content(dump(error_body(e)), "application/json");
    count_status(res.status);
  }
  void reply_json(httplib::Response& res, const json& j) {
    res.status = 200;
    res.set_content(dump(j), "application/json");
    count_status(200);
  }
  void wake_engine() {
    {
      std::lock_guard<std::mutex> lock(wake_mu);
      wake = true;
    }
    wake_cv.notify_one();
  }

  void engine_loop() {
    while (!stopping || in_flight > 0) {
      auto did = engine->step();
      running = engine->n_running();
      waiting = engine->n_waiting();
      slots_cached = engine->n_cached();
      slots_used = engine->options().max_sequences - engine->n_free_slots() - slots_cached;
      if (!did.ok()) {
        fmt::print(stderr, "gemma serve: engine step failed: {}\n", did.error().message);
      } else if (*did) {
        continue;
      }
      std::unique_lock<std::mutex> lock(wake_mu);
      wake_cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return wake; });
      wake = false;
    }
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (opt.api_key.empty()) return true;
    if (req.get_header_value("Authorization") == "Bearer " + opt.api_key) return true;
    reply_error(res, invalid_argument("a valid API key is needed: send 'Authorization: Bearer KEY'"), 401);
    return false;
  }
  // The model, or a 503 reply while it loads.
  const Model* ready(httplib::Response& res) {
    const Model* m = model.load();
    if (!m) reply_error(res, resource_exhausted("the model is still loading"), 503);
    if (m && stopping) {
      reply_error(res, resource_exhausted("the server is shutting down"), 503);
      return nullptr;
    }
    return m;
  }
  Result<json> parse_body(const httplib::Request& req) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return invalid_argument("the request body is not valid JSON");
    return body;
  }

  // Submits n choices of one prompt (each its own sequence) into ex. Refuses when the queue is full.
  Status submit(const Model& m, const ApiRequest& r, const std::vector<int32_t>& prompt, int first_index,
                std::shared_ptr<Exchange> ex) {
    const Tokenizer& tok = *m.tokenizer();
    const int n_ctx = engine->options().n_ctx;
    if (static_cast<int>(prompt.size()) >= n_ctx)
      return invalid_argument("the prompt is {} tokens; this server's context is {} (raise --ctx)", prompt.size(),
                              n_ctx);
    const int capacity = engine->options().max_sequences + opt.max_queue;
    if (in_flight + r.n > capacity)
      return resource_exhausted("the server is at capacity ({} sequences running or queued); retry later", capacity);
    for (int j = 0; j < r.n; ++j) {
      auto choice = std::make_unique<Choice>();
      Choice* c = choice.get();
      c->index = first_index + j;
      c->n_prompt = static_cast<int>(prompt.size());
      {
        std::lock_guard<std::mutex> lock(ex->mu);
        ex->choices.push_back(std::move(choice));
      }
      Request q;
      q.prompt = prompt;
      q.sampling = r.sampling;
      // One seed per choice: a given seed makes the whole reply reproducible, n > 1 still varies.
      q.sampling.seed =
          resolve_seed(r.seed ? std::optional<uint64_t>(*r.seed + static_cast<uint64_t>(j)) : std::nullopt);
      q.max_tokens = r.max_tokens >= 0 ? r.max_tokens : n_ctx;
      q.stop_ids = default_stop_ids(tok);
      q.stop_strings = r.stop;
      const bool want_lp = r.logprobs;
      const int top = r.top_logprobs;
      const int n_vocab = m.n_vocab_out();
      auto t_submit = Clock::now();
      auto t_last = std::make_shared<Clock::time_point>();
      q.on_token = [this, ex, c, want_lp, top, n_vocab, &tok, t_submit, t_last](const TokenEvent& ev) {
        const auto now = Clock::now();
        if (t_last->time_since_epoch().count() == 0) ttft.add(std::chrono::duration<double>(now - t_submit).count());
        else token_latency.add(std::chrono::duration<double>(now - *t_last).count());
        *t_last = now;
        ++generated_tokens;
        json lp;
        if (want_lp) lp = token_logprob(tok, ev.id, ev.logits, n_vocab, top);
        {
          std::lock_guard<std::mutex> lock(ex->mu);
          c->text += ev.text;
          if (want_lp) c->logprobs.push_back(std::move(lp));
        }
        ex->cv.notify_all();
        return true;
      };
      q.on_done = [this, ex, c](const RequestResult& res) {
        prompt_tokens += static_cast<uint64_t>(res.stats.n_prompt);
        cached_tokens += static_cast<uint64_t>(res.stats.n_cached);
        if (res.stats.n_cached > 0) ++cache_hits;
        {
          std::lock_guard<std::mutex> lock(ex->mu);
          c->text += res.tail;
          c->result = res;
          c->done = true;
        }
        {
          std::lock_guard<std::mutex> lock(live_mu);
          live.erase(c->id);
        }
        --in_flight;
        ex->cv.notify_all();
      };
      ++in_flight;
      {
        // The id is known only after submit, and the engine thread may finish the request first:
        // hold live_mu across submit so on_done's erase comes after this insert.
        std::lock_guard<std::mutex> lock(live_mu);
        const RequestId id = engine->submit(std::move(q));
        {
          std::lock_guard<std::mutex> l2(ex->mu);
          c->id = id;
        }
        live[id] = true;
      }
    }
    wake_engine();
    return {};
  }

  void cancel(Exchange& ex) {
    std::vector<RequestId> ids;
    {
      std::lock_guard<std::mutex> lock(ex.mu);
      for (const auto& c : ex.choices)
        if (!c->done) ids.push_back(c->id);
    }
    for (RequestId id : ids) engine->cancel(id);
    wake_engine();
  }

  // Waits for every choice of a non-streamed request; false when the client on socket `fd` hung up
  // meanwhile (checked every 50 ms), in which case its sequences are cancelled, freed at the next step.
  bool wait_all(Exchange& ex, int fd) {
    std::unique_lock<std::mutex> lock(ex.mu);
    while (!ex.cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return ex.all_done(); })) {
      if (!client_gone(fd)) continue;
      lock.unlock();
      cancel(ex);
      lock.lock();
      ex.cv.wait(lock, [&] { return ex.all_done(); });
      return false;
    }
    return true;
  }

  json usage_of(Exchange& ex, int n_prompt_total) {
    int gen = 0, cached = 0;
    for (const auto& c : ex.choices) {
      gen += c->result.stats.n_generated;
      cached += c->result.stats.n_cached;
    }
    // prompt_tokens counts the whole prompt, as OpenAI does; the part reused from the prefix cache
    // is reported in prompt_tokens_details.cached_tokens.
    return json{{"prompt_tokens", n_prompt_total},
                {"completion_tokens", gen},
                {"total_tokens", n_prompt_total + gen},
                {"prompt_tokens_details", {{"cached_tokens", cached}}}};
  }

  // The first error among finished choices (a refused request), if any.
  std::optional<Error> failure(Exchange& ex) {
    for (const auto& c : ex.choices)
      if (c->done && c->result.reason == FinishReason::kError && !c->result.status.ok())
        return c->result.status.error();
    return std::nullopt;
  }

  void handle_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    if (!authorized(req, res)) return;
    const Model* m = ready(res);
    if (!m) return;
    if (!m->tokenizer()) return reply_error(res, unsupported("the model has no tokenizer"));
    const Tokenizer& tok = *m->tokenizer();
    auto body = parse_body(req);
    if (!body.ok()) return reply_error(res, body.error());
    const int max_n = engine->options().max_sequences;
    auto parsed = chat ? parse_chat_request(*body, m->n_vocab_out(), max_n)
                       : parse_completion_request(*body, m->n_vocab_out(), max_n);
    if (!parsed.ok()) return reply_error(res, parsed.error());
    const ApiRequest r = std::move(*parsed);

    // Prompts as tokens: the chat template, or <bos> + text, or the ids as given.
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::string> echo_texts;
    if (chat) {
      auto ids = render_chat_tokens(tok, r.messages);
      if (!ids.ok()) return reply_error(res, ids.error());
      prompts.push_back(std::move(*ids));
    } else {
      for (const std::string& t : r.prompt_texts) {
        auto ids = render_text(tok, t);
        if (!ids.ok()) return reply_error(res, ids.error());
        prompts.push_back(std::move(*ids));
        echo_texts.push_back(t);
      }
      for (const auto& ids : r.prompt_ids) {
        prompts.push_back(ids);
        echo_texts.push_back(tok.decode(ids));
      }
    }
    auto ex = std::make_shared<Exchange>();
    int n_prompt_total = 0;
    for (size_t p = 0; p < prompts.size(); ++p) {
      if (Status st = submit(*m, r, prompts[p], static_cast<int>(p) * r.n, ex); !st.ok()) {
        cancel(*ex);
        return reply_error(res, st.error());
      }
      n_prompt_total += static_cast<int>(prompts[p].size());
    }
    const std::string id = fmt::format("{}-{:016x}", chat ? "chatcmpl" : "cmpl", next_id++);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    const std::string object = chat ? "chat.completion" : "text_completion";
    const std::string model_name = opt.model_name;

    if (!r.stream) {
      // Nobody left to reply to: 499, as nginx logs a client that closed first.
      if (!wait_all(*ex, find_client_socket(req))) {
        count_status(499);
        return;
      }
      if (auto e = failure(*ex)) return reply_error(res, *e);
      json choices = json::array();
      for (const auto& c : ex->choices) {
        json ch{{"index", c->index}, {"finish_reason", finish_reason(c->result.reason)}};
        if (chat) {
          ch["message"] = {{"role", "assistant"}, {"content", c->text}};
          ch["logprobs"] = r.logprobs ? json{{"content", c->logprobs}} : json(nullptr);
        } else {
          const std::string prefix = r.echo ? echo_texts[static_cast<size_t>(c->index / r.n)] : "";
          ch["text"] = prefix + c->text;
          ch["logprobs"] = nullptr;
          if (r.logprobs) {
            size_t off = prefix.size();
            ch["logprobs"] = completion_logprobs(c->logprobs, off);
          }
        }
        choices.push_back(std::move(ch));
      }
      json reply{{"id", id},           {"object", object},
                 {"created", created}, {"model", model_name},
                 {"choices", choices}, {"usage", usage_of(*ex, n_prompt_total)}};
      if (chat) reply["system_fingerprint"] = nullptr;
      return reply_json(res, reply);
    }

    // Streaming: server-sent events, one chunk per piece of text, a last chunk per choice with
    // its finish_reason, the usage chunk if asked, then [DONE]. A failed write (client gone)
    // cancels the request's sequences.
    count_status(200);
    const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
    auto started = std::make_shared<std::vector<bool>>(ex->choices.size(), false);
    auto finished = std::make_shared<std::vector<bool>>(ex->choices.size(), false);
    auto offsets = std::make_shared<std::vector<size_t>>(ex->choices.size(), 0);  // completions' text_offset
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, ex, r, id, created, model_name, chunk_object, chat, started, finished, offsets, echo_texts,
         n_prompt_total](size_t, httplib::DataSink& sink) {
          auto event = [&](const json& j) {
            const std::string s = "data: " + dump(j) + "\n\n";
            return sink.write(s.data(), s.size());
          };
          auto chunk = [&](json choice) {
            return json{{"id", id},
                        {"object", chunk_object},
                        {"created", created},
                        {"model", model_name},
                        {"choices", json::array({std::move(choice)})}};
          };
          std::vector<json> out;
          bool all_done = false;
          {
            std::unique_lock<std::mutex> lock(ex->mu);
            ex->cv.wait_for(lock, std::chrono::milliseconds(100), [&] {
              for (const auto& c : ex->choices)
                if (!c->text.empty() || !c->logprobs.empty() || c->done) return true;
              return false;
            });
            for (size_t i = 0; i < ex->choices.size(); ++i) {
              Choice& c = *ex->choices[i];
              if ((*finished)[i]) continue;
              if (c.done && c.result.reason == FinishReason::kError && !c.result.status.ok()) {
                out.push_back(error_body(c.result.status.error()));
                (*finished)[i] = true;
                continue;
              }
              std::string text = std::move(c.text);
              c.text.clear();
              json lps = std::move(c.logprobs);
              c.logprobs = json::array();
              const bool first = !(*started)[i];
              (*started)[i] = true;
              if (!chat && r.echo && first) {  // the echoed prompt comes before the first token
                const std::string& echoed = echo_texts[static_cast<size_t>(c.index / r.n)];
                text = echoed + text;
                (*offsets)[i] = echoed.size();
              }
              // A piece of text may come without its tokens' entries and the reverse (text held back
              // while it might start a stop string): a chunk goes out when either is new.
              const bool news = first || !text.empty() || !lps.empty();
              if (chat) {
                json delta = json::object();
                if (first) delta["role"] = "assistant";  // the first chunk of a choice names the role
                if (first || !text.empty()) delta["content"] = text;
                if (news)
                  out.push_back(
                      chunk({{"index", c.index},
                             {"delta", delta},
                             {"logprobs", r.logprobs && !lps.empty() ? json{{"content", lps}} : json(nullptr)},
                             {"finish_reason", nullptr}}));
              } else if (!text.empty() || !lps.empty()) {
                out.push_back(chunk({{"index", c.index},
                                     {"text", text},
                                     {"logprobs", r.logprobs ? completion_logprobs(lps, (*offsets)[i]) : json(nullptr)},
                                     {"finish_reason", nullptr}}));
              }
              if (c.done) {
                (*finished)[i] = true;
                if (chat)
                  out.push_back(chunk({{"index", c.index},
                                       {"delta", json::object()},
                                       {"logprobs", nullptr},
                                       {"finish_reason", finish_reason(c.result.reason)}}));
                else
                  out.push_back(chunk({{"index", c.index},
                                       {"text", ""},
                                       {"logprobs", nullptr},
                                       {"finish_reason", finish_reason(c.result.reason)}}));
              }
            }
            all_done = std::all_of(finished->begin(), finished->end(), [](bool b) { return b; });
          }
          for (const json& j : out)
            if (!event(j)) {
              cancel(*ex);
              return false;
            }
          if (!all_done) {
            if (sink.is_writable && !sink.is_writable()) {
              cancel(*ex);
              return false;
            }
            return true;
          }
          if (r.include_usage) {
            json u{{"id", id},
                   {"object", chunk_object},
                   {"created", created},
                   {"model", model_name},
                   {"choices", json::array()},
                   {"usage", usage_of(*ex, n_prompt_total)}};
            if (!event(u)) return false;
          }
          const std::string end = "data: [DONE]\n\n";
          sink.write(end.data(), end.size());
          sink.done();
          return true;
        },
        [this, ex](bool success) {
          if (!success) cancel(*ex);  // the connection ended before the stream did
        });
  }

  void handle_tokenize(const httplib::Request& req, httplib::Response& res, bool encode) {
    if (!authorized(req, res)) return;
    const Model* m = ready(res);
    if (!m) return;
    if (!m->tokenizer()) return reply_error(res, unsupported("the model has no tokenizer"));
    auto body = parse_body(req);
    if (!body.ok()) return reply_error(res, body.error());
    if (!body->is_object()) return reply_error(res, invalid_argument("the request body must be a JSON object"));
    const Tokenizer& tok = *m->tokenizer();
    if (encode) {
      // llama-server names the text "content", vLLM "prompt"; both are accepted.
      const json* text = body->contains("content")  ? &(*body)["content"]
                         : body->contains("prompt") ? &(*body)["prompt"]
                                                    : nullptr;
      if (!text || !text->is_string())
        return reply_error(res, invalid_argument("'content' (or 'prompt') must be a string"));
      bool add_special = false;
      if (body->contains("add_special") && (*body)["add_special"].is_boolean()) add_special = (*body)["add_special"];
      auto ids = tok.encode(text->get<std::string>(), add_special);
      if (!ids.ok()) return reply_error(res, ids.error());
      return reply_json(res,
                        json{{"tokens", *ids}, {"count", ids->size()}, {"max_model_len", engine->options().n_ctx}});
    }
    if (!body->contains("tokens") || !(*body)["tokens"].is_array())
      return reply_error(res, invalid_argument("'tokens' must be an array of token ids"));
    std::vector<int32_t> ids;
    for (const json& x : (*body)["tokens"]) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= tok.vocab_size())
        return reply_error(res, invalid_argument("'tokens' holds an id outside the vocabulary"));
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    const std::string text = tok.decode(ids);
    return reply_json(res, json{{"content", text}, {"prompt", text}});
  }

  std::string metrics() {
    std::string out;
    out += "# HELP gemma_requests_total HTTP requests answered, by status.\n# TYPE gemma_requests_total counter\n";
    {
      std::lock_guard<std::mutex> lock(status_mu);
      for (const auto& [status, n] : requests_by_status)
        out += fmt::format("gemma_requests_total{{status=\"{}\"}} {}\n", status, n);
    }
    const int slots = engine ? engine->options().max_sequences : 0;
    out += fmt::format(
        "# HELP gemma_prompt_tokens_total Prompt tokens prefilled.\n# TYPE gemma_prompt_tokens_total counter\n"
        "gemma_prompt_tokens_total {}\n"
        "# HELP gemma_generation_tokens_total Tokens generated.\n# TYPE gemma_generation_tokens_total counter\n"
        "gemma_generation_tokens_total {}\n"
        "# HELP gemma_queue_depth Sequences waiting for a KV slot.\n# TYPE gemma_queue_depth gauge\n"
        "gemma_queue_depth {}\n"
        "# HELP gemma_active_sequences Sequences prefilling or decoding.\n# TYPE gemma_active_sequences gauge\n"
        "gemma_active_sequences {}\n"
        "# HELP gemma_kv_cache_usage_ratio Share of the KV slots held by active sequences.\n"
        "# TYPE gemma_kv_cache_usage_ratio gauge\n"
        "gemma_kv_cache_usage_ratio {}\n"
        "# HELP gemma_prefix_cache_sequences KV slots holding finished sequences for reuse (freed on demand).\n"
        "# TYPE gemma_prefix_cache_sequences gauge\n"
        "gemma_prefix_cache_sequences {}\n"
        "# HELP gemma_prefix_cache_hits_total Requests that reused a cached prefix.\n"
        "# TYPE gemma_prefix_cache_hits_total counter\n"
        "gemma_prefix_cache_hits_total {}\n"
        "# HELP gemma_prompt_tokens_cached_total Prompt tokens taken from the prefix cache instead of prefilled.\n"
        "# TYPE gemma_prompt_tokens_cached_total counter\n"
        "gemma_prompt_tokens_cached_total {}\n",
        prompt_tokens.load(), generated_tokens.load(), waiting.load(), running.load(),
        slots ? static_cast<double>(slots_used.load()) / slots : 0.0, slots_cached.load(), cache_hits.load(),
        cached_tokens.load());
    ttft.write(out, "gemma_time_to_first_token_seconds", "Time from request to first token.");
    token_latency.write(out, "gemma_time_per_output_token_seconds", "Time between consecutive tokens of a sequence.");
    return out;
  }

  void routes() {
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& q, httplib::Response& s) { handle_generate(q, s, true); });
    http.Post("/v1/completions",
              [this](const httplib::Request& q, httplib::Response& s) { handle_generate(q, s, false); });
    http.Post("/tokenize", [this](const httplib::Request& q, httplib::Response& s) { handle_tokenize(q, s, true); });
    http.Post("/detokenize", [this](const httplib::Request& q, httplib::Response& s) { handle_tokenize(q, s, false); });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& s) {
      if (!model.load()) return reply_error(s, resource_exhausted("the model is still loading"), 503);
      if (stopping) return reply_error(s, resource_exhausted("the server is shutting down"), 503);
      reply_json(s, json{{"status", "ok"}});
    });
    http.Get("/v1/models", [this](const httplib::Request& q, httplib::Response& s) {
      if (!authorized(q, s)) return;
      json data = json::array();
      if (model.load())
        data.push_back({{"id", opt.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "gemma-engine"}});
      reply_json(s, json{{"object", "list"}, {"data", data}});
    });
    http.Get("/metrics", [this](const httplib::Request& q, httplib::Response& s) {
      if (!authorized(q, s)) return;
      s.set_content(metrics(), "text/plain; version=0.0.4");
    });
    // Unknown routes and handler exceptions answer with OpenAI's error envelope.
    http.set_error_handler([](const httplib::Request&, httplib::Response& s) {
      if (!s.body.empty()) return;
      if (s.status == 404) s.set_content(dump(error_body(not_found("no such route"))), "application/json");
    });
    http.set_exception_handler([this](const httplib::Request&, httplib::Response& s, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) { what = e.what(); } catch (...) {
      }
      reply_error(s, internal_error("{}", what), 500);
    });
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  s.http.set_payload_max_length(size_t{64} << 20);  // a long chat history; images later
  s.http.set_read_timeout(60);
  s.http.set_write_timeout(60);
  const int threads = s.opt.http_threads > 0 ? s.opt.http_threads : 32;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.routes();
}

Server::~Server() { stop(); }

Result<int> Server::bind() {
  Impl& s = *impl_;
  if (s.opt.port == 0) {
    const int port = s.http.bind_to_any_port(s.opt.host);
    if (port <= 0) return resource_exhausted("cannot listen on {}: no free port", s.opt.host);
    return port;
  }
  if (!s.http.bind_to_port(s.opt.host, s.opt.port))
    return resource_exhausted("cannot listen on {}:{} (in use, or not an address of this machine)", s.opt.host,
                              s.opt.port);
  return s.opt.port;
}

void Server::attach(const Model& model, Engine& engine) {
  Impl& s = *impl_;
  s.engine = &engine;
  s.engine_thread = std::thread([&s] { s.engine_loop(); });
  s.model = &model;
}

Status Server::serve() {
  if (!impl_->http.listen_after_bind() && !impl_->stopping)
    return internal_error("the HTTP server stopped unexpectedly");
  return {};
}

void Server::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.stop_mu);
    if (s.stopped) return;
    s.stopped = true;
  }
  s.stopping = true;
  if (s.engine) {
    std::vector<RequestId> ids;
    {
      std::lock_guard<std::mutex> lock(s.live_mu);
      for (const auto& [id, _] : s.live) ids.push_back(id);
    }
    for (RequestId id : ids) s.engine->cancel(id);
    s.wake_engine();
    const auto deadline = Clock::now() + std::chrono::duration<double>(s.opt.shutdown_seconds);
    while (s.in_flight > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  s.http.stop();
  if (s.engine_thread.joinable()) {
    s.in_flight = 0;  // past the deadline, the loop ends even if a request never finished
    s.wake_engine();
    s.engine_thread.join();
  }
}

}  // namespace gemma::server

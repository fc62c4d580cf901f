#include "server/openai.h"

#include <algorithm>
#include <cmath>

namespace gemma::server {

namespace {

// A field that may be absent or null (OpenAI's clients send null for "not given").
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

Status number(const json& body, const char* name, double lo, double hi, float& out) {
  const json* f = field(body, name);
  if (!f) return {};
  if (!f->is_number()) return invalid_argument("'{}' must be a number", name);
  const double v = f->get<double>();
  if (!(v >= lo && v <= hi)) return invalid_argument("'{}' must be between {} and {} (got {})", name, lo, hi, v);
  out = static_cast<float>(v);
  return {};
}

Status integer(const json& body, const char* name, int64_t lo, int64_t hi, int& out) {
  const json* f = field(body, name);
  if (!f) return {};
  if (!f->is_number_integer()) return invalid_argument("'{}' must be an integer", name);
  const int64_t v = f->get<int64_t>();
  if (v < lo || v > hi) return invalid_argument("'{}' must be between {} and {} (got {})", name, lo, hi, v);
  out = static_cast<int>(v);
  return {};
}

Status boolean(const json& body, const char* name, bool& out) {
  const json* f = field(body, name);
  if (!f) return {};
  if (!f->is_boolean()) return invalid_argument("'{}' must be a boolean", name);
  out = f->get<bool>();
  return {};
}

// The fields both endpoints share: sampling, stop, n, stream, max_tokens.
Status parse_common(const json& body, int n_vocab, int max_n, ApiRequest& r) {
  if (!body.is_object()) return invalid_argument("the request body must be a JSON object");
  SamplerParams& s = r.sampling;
  // OpenAI's defaults: temperature 1, top_p 1, and no top-k (vLLM's extension fields follow).
  s.temperature = 1, s.top_p = 1, s.top_k = 0, s.min_p = 0;
  GE_TRY(number(body, "temperature", 0, 2, s.temperature));
  GE_TRY(number(body, "top_p", 0, 1, s.top_p));
  if (s.top_p == 0) return invalid_argument("'top_p' must be greater than 0");
  GE_TRY(integer(body, "top_k", -1, 1 << 30, s.top_k));
  if (s.top_k < 0) s.top_k = 0;  // vLLM's -1: no limit
  GE_TRY(number(body, "min_p", 0, 1, s.min_p));
  GE_TRY(number(body, "frequency_penalty", -2, 2, s.frequency_penalty));
  GE_TRY(number(body, "presence_penalty", -2, 2, s.presence_penalty));
  GE_TRY(number(body, "repetition_penalty", 0.01, 100, s.repeat_penalty));
  s.repeat_last_n = -1;  // vLLM's repetition_penalty covers the whole prompt and output
  if (const json* lb = field(body, "logit_bias")) {
    if (!lb->is_object()) return invalid_argument("'logit_bias' must be an object of token id -> bias");
    if (lb->size() > 1024) return invalid_argument("'logit_bias' holds more than 1024 entries");
    for (auto it = lb->begin(); it != lb->end(); ++it) {
      int64_t id = -1;
      const std::string& key = it.key();
      if (key.empty() || key.size() > 9 ||
          !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return invalid_argument("'logit_bias' key '{}' is not a token id", key.substr(0, 32));
      id = std::stoll(key);
      if (id >= n_vocab) return invalid_argument("'logit_bias' token id {} is outside the vocabulary", id);
      if (!it.value().is_number()) return invalid_argument("'logit_bias' values must be numbers");
      const double b = it.value().get<double>();
      if (!(b >= -100 && b <= 100)) return invalid_argument("'logit_bias' values must be between -100 and 100");
      s.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(b));
    }
  }
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) return invalid_argument("'seed' must be an integer");
    r.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
  }
  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 16) return invalid_argument("'stop' holds more than 16 sequences");
      for (const json& x : *stop) {
        if (!x.is_string()) return invalid_argument("'stop' must be a string or a list of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      return invalid_argument("'stop' must be a string or a list of strings");
    }
    std::erase_if(r.stop, [](const std::string& x) { return x.empty(); });
  }
  GE_TRY(integer(body, "n", 1, max_n, r.n));
  GE_TRY(boolean(body, "stream", r.stream));
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) return invalid_argument("'stream_options' must be an object");
    GE_TRY(boolean(*so, "include_usage", r.include_usage));
  }
  // max_completion_tokens (the newer name) wins over max_tokens when both are given.
  GE_TRY(integer(body, "max_tokens", 0, 1 << 24, r.max_tokens));
  GE_TRY(integer(body, "max_completion_tokens", 0, 1 << 24, r.max_tokens));
  return {};
}

// A message's content: a string, or an array of content parts of which text parts are joined.
Result<std::string> message_text(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return invalid_argument("message 'content' must be a string or an array of content parts");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      return invalid_argument("a content part must be an object with a 'type'");
    const std::string type = part["type"].get<std::string>();
    if (type == "text") {
      if (!part.contains("text") || !part["text"].is_string()) return invalid_argument("a text part needs 'text'");
      if (!text.empty()) text += "\n";
      text += part["text"].get<std::string>();
    } else if (type == "image_url") {
      return Error{ErrorKind::kUnsupported, "image content parts are not supported by this server yet"};
    } else {
      return invalid_argument("content part type '{}' is not supported", type.substr(0, 32));
    }
  }
  return text;
}

}  // namespace

Result<ApiRequest> parse_chat_request(const json& body, int n_vocab, int max_n) {
  ApiRequest r;
  r.chat = true;
  GE_TRY(parse_common(body, n_vocab, max_n, r));
  const json* msgs = field(body, "messages");
  if (!msgs || !msgs->is_array() || msgs->empty()) return invalid_argument("'messages' must be a non-empty array");
  for (const json& m : *msgs) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return invalid_argument("each message needs a 'role' string");
    ChatMessage cm;
    cm.role = m["role"].get<std::string>();
    if (cm.role == "developer") cm.role = "system";  // OpenAI's newer name for the system role
    if (cm.role != "system" && cm.role != "user" && cm.role != "assistant")
      return invalid_argument("message role '{}' is not supported (system, user, assistant)", cm.role.substr(0, 32));
    if (m.contains("content") && !m["content"].is_null()) { GE_ASSIGN(cm.content, message_text(m["content"])); }
    r.messages.push_back(std::move(cm));
  }
  GE_TRY(boolean(body, "logprobs", r.logprobs));
  GE_TRY(integer(body, "top_logprobs", 0, 20, r.top_logprobs));
  if (r.top_logprobs > 0 && !r.logprobs) return invalid_argument("'top_logprobs' needs 'logprobs': true");
  return r;
}

Result<ApiRequest> parse_completion_request(const json& body, int n_vocab, int max_n) {
  ApiRequest r;
  r.chat = false;
  GE_TRY(parse_common(body, n_vocab, max_n, r));
  const json* p = field(body, "prompt");
  if (!p) return invalid_argument("'prompt' is required");
  auto ids_of = [&](const json& a) -> Result<std::vector<int32_t>> {
    std::vector<int32_t> ids;
    for (const json& x : a) {
      if (!x.is_number_integer()) return invalid_argument("'prompt' token ids must be integers");
      const int64_t id = x.get<int64_t>();
      if (id < 0 || id >= n_vocab) return invalid_argument("'prompt' token id {} is outside the vocabulary", id);
      ids.push_back(static_cast<int32_t>(id));
    }
    if (ids.empty()) return invalid_argument("'prompt' token list is empty");
    return ids;
  };
  if (p->is_string()) {
    r.prompt_texts.push_back(p->get<std::string>());
  } else if (p->is_array() && !p->empty() && (*p)[0].is_string()) {
    for (const json& x : *p) {
      if (!x.is_string()) return invalid_argument("'prompt' must be a string, a list of strings, or token ids");
      r.prompt_texts.push_back(x.get<std::string>());
    }
  } else if (p->is_array() && !p->empty() && (*p)[0].is_array()) {
    for (const json& x : *p) {
      if (!x.is_array()) return invalid_argument("'prompt' must be a string, a list of strings, or token ids");
      GE_ASSIGN(auto ids, ids_of(x));
      r.prompt_ids.push_back(std::move(ids));
    }
  } else if (p->is_array() && !p->empty()) {
    GE_ASSIGN(auto ids, ids_of(*p));
    r.prompt_ids.push_back(std::move(ids));
  } else {
    return invalid_argument("'prompt' must be a string, a list of strings, or token ids");
  }
  if (r.prompt_texts.size() + r.prompt_ids.size() > 64) return invalid_argument("at most 64 prompts per request");
  if (r.n * (r.prompt_texts.size() + r.prompt_ids.size()) > static_cast<size_t>(max_n))
    return invalid_argument("prompts x n = {} exceeds the server's {} parallel sequences",
                            r.n * (r.prompt_texts.size() + r.prompt_ids.size()), max_n);
  GE_TRY(boolean(body, "echo", r.echo));
  if (const json* lp = field(body, "logprobs")) {
    if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > 5)
      return invalid_argument("'logprobs' must be an integer between 0 and 5");
    r.logprobs = true;
    r.top_logprobs = static_cast<int>(lp->get<int64_t>());
  }
  return r;
}

const char* finish_reason(FinishReason r) { return r == FinishReason::kStop ? "stop" : "length"; }

json error_body(const Error& e) {
  const char* type = e.kind == ErrorKind::kInternal            ? "server_error"
                     : e.kind == ErrorKind::kResourceExhausted ? "server_overloaded"
                     : e.kind == ErrorKind::kNotFound          ? "not_found_error"
                                                               : "invalid_request_error";
  return json{{"error", {{"message", e.message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
}

json token_logprob(const Tokenizer& tok, int32_t id, std::span<const float> logits, int n_vocab, int top_n) {
  const size_t V = std::min(logits.size(), static_cast<size_t>(n_vocab));
  float mx = -INFINITY;
  for (size_t i = 0; i < V; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  const double lse = static_cast<double>(mx) + std::log(sum);
  auto entry = [&](int32_t t) {
    const std::string bytes = tok.token_bytes(t);
    json b = json::array();
    for (unsigned char c : bytes) b.push_back(c);
    // Not every token is valid UTF-8 on its own (byte tokens): the text is the lossy decode,
    // `bytes` the exact ones, as OpenAI reports them.
    return json{{"token", tok.decode({&t, 1})},
                {"logprob", static_cast<double>(logits[static_cast<size_t>(t)]) - lse},
                {"bytes", std::move(b)}};
  };
  json e = entry(id);
  json top = json::array();
  if (top_n > 0) {
    std::vector<int32_t> idx(V);
    for (size_t i = 0; i < V; ++i) idx[i] = static_cast<int32_t>(i);
    const size_t k = std::min(V, static_cast<size_t>(top_n));
    std::partial_sort(idx.begin(), idx.begin() + static_cast<int64_t>(k), idx.end(), [&](int32_t a, int32_t b) {
      return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
    });
    for (size_t i = 0; i < k; ++i) top.push_back(entry(idx[i]));
  }
  e["top_logprobs"] = std::move(top);
  return e;
}

}  // namespace gemma::server

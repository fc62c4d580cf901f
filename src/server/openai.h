// OpenAI's HTTP API, as plain functions: a request body parsed into what the engine needs, and
// the reply objects built field by field as the `openai` Python package's types declare them
// (ChatCompletion, ChatCompletionChunk, Completion, the error envelope). No HTTP here: the
// server (server.h) moves bytes, these decide what they mean, and tests call them directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "runtime/prompt.h"
#include "runtime/sampler.h"
#include "util/result.h"

namespace gemma::server {

using json = nlohmann::json;

// What /v1/chat/completions and /v1/completions ask for, in the engine's terms.
struct ApiRequest {
  bool chat = true;
  std::vector<ChatMessage> messages;             // chat
  std::vector<std::string> prompt_texts;         // completions: one choice set per prompt
  std::vector<std::vector<int32_t>> prompt_ids;  // completions given as token ids
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int max_tokens = -1;         // -1: until a stop or the context is full
  SamplerParams sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int n = 1;
  bool echo = false;      // completions: the prompt text before the completion
  bool logprobs = false;  // chat: logprobs true; completions: logprobs given
  int top_logprobs = 0;   // chat: top_logprobs; completions: the logprobs number
};

// Parses and range-checks a body; errors are invalid_argument with OpenAI-style messages naming
// the field. n_vocab bounds logit_bias ids; max_n bounds n (the server's --parallel).
Result<ApiRequest> parse_chat_request(const json& body, int n_vocab, int max_n);
Result<ApiRequest> parse_completion_request(const json& body, int n_vocab, int max_n);

// OpenAI's finish_reason for how a request ended: "stop" or "length".
const char* finish_reason(FinishReason r);

// {"error": {"message", "type", "param", "code"}}; type from the kind ("invalid_request_error", ...).
json error_body(const Error& e);

// One token's log-probability entry (ChatCompletionTokenLogprob): the chosen token's logprob
// under the distribution it was drawn from, and the top_n most likely tokens'.
json token_logprob(const Tokenizer& tok, int32_t id, std::span<const float> logits, int n_vocab, int top_n);

}  // namespace gemma::server

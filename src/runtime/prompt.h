// Prompt policy: how text and conversations become tokens, which tokens end a reply, and the
// defaults every front end shares (context size, seed, sampling limits). The CLI, the server and
// the Python package call these instead of keeping rules of their own.
//
// The Gemma chat format (docs/spec/architecture.md §6) is the same for Gemma 1, 2 and 3:
//   <bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n{reply}<end_of_turn>\n...
// Gemma has no system role: a system message is prepended to the first user turn, separated by a
// blank line (Gemma 3's template does this; Gemma 1/2's templates refuse a system message, and we
// merge it the same way rather than refuse). Message text is trimmed, as the templates do. Turns
// are tokenized with special-token matching, so `<start_of_turn>` becomes its single token.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace gemma {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (or "model", Gemma's own name for it)
  std::string content;
};

// The whole conversation as text (without <bos>). Roles after an optional leading system message
// must alternate user/assistant starting with user, as the official templates require. With
// add_generation_prompt the text ends with "<start_of_turn>model\n" for the reply to follow.
Result<std::string> render_chat(std::span<const ChatMessage> messages, bool add_generation_prompt = true);
// render_chat, tokenized, with <bos> first.
Result<std::vector<int32_t>> render_chat_tokens(const Tokenizer& tok, std::span<const ChatMessage> messages,
                                                bool add_generation_prompt = true);

// One user turn of a conversation whose earlier turns are already in the KV cache: for the first
// turn "<start_of_turn>user\n{system}\n\n{message}<end_of_turn>\n<start_of_turn>model\n" (system
// may be empty); later turns start by closing the model's previous reply with "<end_of_turn>\n",
// since generation stops when the model samples <end_of_turn>, before that token is cached.
// The caller adds <bos> once, at the start of the conversation.
std::string format_user_turn(const std::string& message, const std::string& system, bool first_turn);

// CodeGemma fill-in-the-middle: <bos><|fim_prefix|>{before}<|fim_suffix|>{after}<|fim_middle|>;
// the model writes the middle and ends it with <|file_separator|>, which `stop_ids` receives.
Result<std::vector<int32_t>> render_fill_in_middle(const Tokenizer& tok, const std::string& before,
                                                   const std::string& after, std::vector<int32_t>& stop_ids);

// Plain text completion: <bos> + text.
Result<std::vector<int32_t>> render_text(const Tokenizer& tok, const std::string& text);

// Tokens that end a reply: <eos>, and <end_of_turn> where the vocabulary has it.
std::vector<int32_t> default_stop_ids(const Tokenizer& tok);

// The context a front end uses when the user gives none: the model's trained length, at most
// kDefaultContext (KV memory is reserved lazily, but a 128K default would surprise on big models).
inline constexpr int kDefaultContext = 8192;
int default_context(const ModelConfig& config);
// Range-checks a user's --ctx: positive and at most kMaxContext. Like llama.cpp, a context past
// the model's trained length is allowed (the front end notes it: quality degrades there).
inline constexpr int kMaxContext = 1 << 24;
Status check_context(int64_t n_ctx);

// The seed rule: a given seed (any value, 0 included) makes sampling reproducible; none draws one.
uint64_t resolve_seed(std::optional<uint64_t> seed);

// The sampling options' ranges: temperature >= 0, top_k >= 0, top_p in (0, 1].
Status check_sampling(const SamplerParams& p);

// Strips leading/trailing whitespace (the official templates trim message content).
std::string trim(const std::string& s);

}  // namespace gemma

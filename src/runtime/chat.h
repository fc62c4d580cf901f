// The Gemma chat format (docs/spec/architecture.md §6). Gemma has no system role: a system prompt is
// prepended to the first user turn, separated by a blank line. Turns are rendered as text and
// tokenized with special-token matching, so `<start_of_turn>` becomes its single token.
#pragma once

#include <string>

namespace gemma {

// "<start_of_turn>user\n{system}\n\n{message}<end_of_turn>\n<start_of_turn>model\n" for the first
// turn (system may be empty). Later turns start by closing the model's previous reply with
// "<end_of_turn>\n": generation stops when the model samples <end_of_turn>, before that token
// enters the KV cache. The caller adds <bos> once, at the start of the conversation.
std::string format_user_turn(const std::string& message, const std::string& system, bool first_turn);

// Strips leading/trailing whitespace (the official templates trim message content).
std::string trim(const std::string& s);

}  // namespace gemma

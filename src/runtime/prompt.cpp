#include "runtime/prompt.h"

#include <cmath>
#include <random>

namespace gemma {

std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string format_user_turn(const std::string& message, const std::string& system, bool first_turn) {
  std::string content = trim(message);
  if (first_turn && !trim(system).empty()) content = trim(system) + "\n\n" + content;
  return std::string(first_turn ? "" : "<end_of_turn>\n") + "<start_of_turn>user\n" + content +
         "<end_of_turn>\n<start_of_turn>model\n";
}

Result<std::string> render_chat(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  size_t i = 0;
  std::string system;
  if (!messages.empty() && messages[0].role == "system") {
    system = trim(messages[0].content);
    i = 1;
  }
  std::string out;
  bool expect_user = true;
  for (bool first = true; i < messages.size(); ++i, first = false) {
    const ChatMessage& m = messages[i];
    const bool user = m.role == "user";
    const bool model = m.role == "assistant" || m.role == "model";
    if (!user && !model)
      return invalid_argument(
          "message {} has role '{}'; a Gemma conversation has system (first only), user and assistant", i, m.role);
    if (user != expect_user)
      return invalid_argument(
          "message {} is from the {}: after an optional system message, roles must alternate user, "
          "assistant, user, ...",
          i, m.role);
    std::string content = trim(m.content);
    if (first && !system.empty()) content = system + "\n\n" + content;
    out += std::string("<start_of_turn>") + (user ? "user" : "model") + "\n" + content + "<end_of_turn>\n";
    expect_user = !expect_user;
  }
  if (out.empty() && system.empty()) return invalid_argument("the conversation has no messages");
  if (out.empty()) out = "<start_of_turn>user\n" + system + "<end_of_turn>\n";  // a system message alone
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

Result<std::vector<int32_t>> render_chat_tokens(const Tokenizer& tok, std::span<const ChatMessage> messages,
                                                bool add_generation_prompt) {
  GE_ASSIGN(std::string text, render_chat(messages, add_generation_prompt));
  GE_ASSIGN(std::vector<int32_t> ids, tok.encode(text, false));
  ids.insert(ids.begin(), tok.bos_id());
  return ids;
}

Result<std::vector<int32_t>> render_fill_in_middle(const Tokenizer& tok, const std::string& before,
                                                   const std::string& after, std::vector<int32_t>& stop_ids) {
  for (const char* t : {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"})
    if (!tok.find(t)) return invalid_argument("this model has no fill-in-the-middle token {} (CodeGemma has)", t);
  if (auto sep = tok.find("<|file_separator|>")) stop_ids.push_back(*sep);
  return tok.encode("<|fim_prefix|>" + before + "<|fim_suffix|>" + after + "<|fim_middle|>", true);
}

Result<std::vector<int32_t>> render_text(const Tokenizer& tok, const std::string& text) {
  return tok.encode(text, true);
}

std::vector<int32_t> default_stop_ids(const Tokenizer& tok) {
  std::vector<int32_t> ids{tok.eos_id()};
  if (auto eot = tok.end_of_turn_id()) ids.push_back(*eot);
  return ids;
}

int default_context(const ModelConfig& c) {
  return c.context_length > 0 ? std::min(c.context_length, kDefaultContext) : kDefaultContext;
}

Status check_context(int64_t n_ctx) {
  if (n_ctx <= 0 || n_ctx > kMaxContext) return invalid_argument("--ctx must be in 1..{} (got {})", kMaxContext, n_ctx);
  return {};
}

uint64_t resolve_seed(std::optional<uint64_t> seed) {
  if (seed) return *seed;
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

Status check_sampling(const SamplerParams& p) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature))
    return invalid_argument("--temperature must be a finite number >= 0 (got {})", p.temperature);
  if (p.top_k < 0) return invalid_argument("--top-k must be >= 0 (got {})", p.top_k);
  if (!(p.top_p > 0 && p.top_p <= 1)) return invalid_argument("--top-p must be in (0, 1] (got {})", p.top_p);
  if (!(p.min_p >= 0 && p.min_p <= 1)) return invalid_argument("--min-p must be in [0, 1] (got {})", p.min_p);
  if (!(p.repeat_penalty > 0) || !std::isfinite(p.repeat_penalty))
    return invalid_argument("--repeat-penalty must be a finite number > 0 (got {})", p.repeat_penalty);
  if (p.repeat_last_n < -1) return invalid_argument("--repeat-last-n must be >= -1 (got {})", p.repeat_last_n);
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2))
    return invalid_argument("--frequency-penalty must be in [-2, 2] (got {})", p.frequency_penalty);
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2))
    return invalid_argument("--presence-penalty must be in [-2, 2] (got {})", p.presence_penalty);
  for (const auto& [id, bias] : p.logit_bias)
    if (!(bias >= -100 && bias <= 100)) return invalid_argument("a logit bias must be in [-100, 100] (got {})", bias);
  return {};
}

}  // namespace gemma

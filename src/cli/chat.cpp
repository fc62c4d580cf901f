// gemma chat: a multi-turn conversation on stdin/stdout. The KV cache persists across turns, so
// each turn prefills only its own tokens, never the history.
#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/chat.h"
#include "runtime/session.h"

namespace gemma::cli {

namespace {

struct ChatArgs {
  ModelArgs m;
  std::string system;
  int max_tokens = 512;
  float temperature = 1.0f;
  int top_k = 64;
  float top_p = 0.95f;
  uint64_t seed = 0;
  int ctx = 0;
  bool verbose = false;
};

int chat(const ChatArgs& a) {
  auto model = load_model(a.m);
  if (!model.ok()) return fail(model.error());
  const Model& mdl = **model;
  const Tokenizer* tok = mdl.tokenizer();
  if (!tok) return fail("the checkpoint has no tokenizer; pass --tokenizer PATH");
  if (!mdl.config().instruction_tuned)
    fmt::print(stderr, "gemma: note: this checkpoint has no chat template (a base model); replies may ramble\n");
  const int n_ctx = a.ctx > 0 ? a.ctx : std::min(mdl.config().context_length, 8192);
  CpuBackend backend(thread_count(a.m.threads));
  auto session = Session::create(mdl, backend, n_ctx);
  if (!session.ok()) return fail(session.error());
  Sampler sampler(SamplerParams{a.temperature, a.top_k, a.top_p, a.seed ? a.seed : std::random_device{}()});
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.stop_ids.push_back(tok->eos_id());
  if (auto eot = tok->end_of_turn_id()) opt.stop_ids.push_back(*eot);
  const bool interactive = isatty(STDIN_FILENO);
  bool first = true;
  std::string line;
  for (;;) {
    if (interactive) fmt::print(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (trim(line).empty()) continue;
    auto enc = tok->encode(format_user_turn(line, a.system, first), false);
    if (!enc.ok()) {
      fail(enc.error());
      continue;
    }
    std::vector<int32_t> ids;
    if (first) ids.push_back(tok->bos_id());
    ids.insert(ids.end(), enc->begin(), enc->end());
    if ((*session)->n_past() + static_cast<int>(ids.size()) >= n_ctx) {
      return fail(fmt::format("the conversation no longer fits in the context of {} tokens (raise --ctx)", n_ctx));
    }
    Utf8StreamDecoder utf8;
    auto st = (*session)->generate(ids, opt, sampler, [&](int32_t id) {
      const std::string s = utf8.push(tok->token_bytes(id));
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    const std::string tail = utf8.flush() + "\n";
    std::fwrite(tail.data(), 1, tail.size(), stdout);
    std::fflush(stdout);
    if (!st.ok()) return fail(st.error());
    if (a.verbose)
      fmt::print(stderr, "gemma: turn prefill {} tokens ({:.1f} tok/s), decode {} tokens ({:.1f} tok/s), context {}/{}\n",
                 st->n_prompt, st->prefill_tps(), st->n_generated, st->decode_tps(), (*session)->n_past(), n_ctx);
    first = false;
  }
  return 0;
}

}  // namespace

Command add_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* sub = app.add_subcommand("chat", "Multi-turn conversation (one user message per line on stdin)");
  add_model_options(sub, a->m);
  sub->add_option("--system", a->system, "System prompt (Gemma prepends it to the first user turn)");
  sub->add_option("-n,--max-tokens", a->max_tokens, "Maximum tokens per reply")->capture_default_str();
  sub->add_option("--temperature,--temp", a->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", a->top_k, "Top-k")->capture_default_str();
  sub->add_option("--top-p", a->top_p, "Top-p")->capture_default_str();
  sub->add_option("--seed", a->seed, "Random seed (0: random)");
  sub->add_option("-c,--ctx", a->ctx, "Context size (default: min(model context, 8192))");
  sub->add_flag("-v,--verbose", a->verbose, "Print speeds and context use after each turn");
  return [a] { return chat(*a); };
}

}  // namespace gemma::cli

// gemma run: one prompt in, a streamed completion out; speeds on stderr.
#include <cstdio>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/chat.h"
#include "runtime/session.h"

namespace gemma::cli {

namespace {

struct RunArgs {
  ModelArgs m;
  std::string prompt;
  bool prompt_given = false;
  int max_tokens = 256;
  float temperature = 1.0f;
  int top_k = 64;
  float top_p = 0.95f;
  uint64_t seed = 0;
  bool seed_given = false;
  int ctx = 0;
  bool raw = false;
  bool chat = false;
  std::string system;
  std::string fim_prefix, fim_suffix;
  bool fim = false;
};

int run(const RunArgs& a) {
  if (a.max_tokens < 0) return fail("--max-tokens must be >= 0");
  if (a.temperature < 0) return fail("--temperature must be >= 0");
  if (a.top_p <= 0 || a.top_p > 1) return fail("--top-p must be in (0, 1]");
  auto model = load_model(a.m);
  if (!model.ok()) return fail(model.error());
  const Model& mdl = **model;
  const Tokenizer* tok = mdl.tokenizer();
  if (!tok) return fail("the checkpoint has no tokenizer; pass --tokenizer PATH");
  // CodeGemma fill-in-the-middle: <|fim_prefix|>{before}<|fim_suffix|>{after}<|fim_middle|>, the
  // model writes the middle and ends it with <|file_separator|> (docs/spec/architecture.md §5.4).
  std::vector<int32_t> ids;
  std::vector<int32_t> extra_stops;
  if (a.fim) {
    for (const char* t : {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"})
      if (!tok->find(t)) return fail(fmt::format("this model has no fill-in-the-middle token {} (CodeGemma has)", t));
    auto enc = tok->encode("<|fim_prefix|>" + a.fim_prefix + "<|fim_suffix|>" + a.fim_suffix + "<|fim_middle|>", true);
    if (!enc.ok()) return fail(enc.error());
    ids = std::move(*enc);
    if (auto sep = tok->find("<|file_separator|>")) extra_stops.push_back(*sep);
  }
  const std::string text = a.fim ? "" : a.prompt_given ? a.prompt : read_stdin();

  // Instruction-tuned models get the chat template unless --raw; --chat forces it.
  const bool templated = !a.fim && !a.raw && (a.chat || mdl.config().instruction_tuned);
  if (templated) {
    auto enc = tok->encode(format_user_turn(text, a.system, true), false);
    if (!enc.ok()) return fail(enc.error());
    ids.push_back(tok->bos_id());
    ids.insert(ids.end(), enc->begin(), enc->end());
  } else if (!a.fim) {
    auto enc = tok->encode(text, true);
    if (!enc.ok()) return fail(enc.error());
    ids = std::move(*enc);
  }
  const int n_ctx = a.ctx > 0 ? a.ctx : std::min(mdl.config().context_length, 4096);
  if (static_cast<int>(ids.size()) > n_ctx)
    return fail(fmt::format("the prompt is {} tokens, longer than the context of {} (raise --ctx)", ids.size(), n_ctx));

  CpuBackend backend(thread_count(a.m.threads));
  auto session = Session::create(mdl, backend, n_ctx);
  if (!session.ok()) return fail(session.error());
  SamplerParams sp{a.temperature, a.top_k, a.top_p, a.seed_given ? a.seed : std::random_device{}()};
  Sampler sampler(sp);
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.stop_ids.push_back(tok->eos_id());
  if (auto eot = tok->end_of_turn_id()) opt.stop_ids.push_back(*eot);
  opt.stop_ids.insert(opt.stop_ids.end(), extra_stops.begin(), extra_stops.end());
  Utf8StreamDecoder utf8;
  auto stats = (*session)->generate(ids, opt, sampler, [&](int32_t id) {
    const std::string s = utf8.push(tok->token_bytes(id));
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  const std::string tail = utf8.flush();
  std::fwrite(tail.data(), 1, tail.size(), stdout);
  std::fputc('\n', stdout);
  if (!stats.ok()) return fail(stats.error());
  fmt::print(stderr, "gemma: prefill {} tokens at {:.1f} tok/s, decode {} tokens at {:.1f} tok/s ({} threads, {}){}\n",
             stats->n_prompt, stats->prefill_tps(), stats->n_generated, stats->decode_tps(), backend.n_threads(),
             backend.name(), stats->context_full ? "; stopped: context full" : "");
  return 0;
}

}  // namespace

Command add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* sub = app.add_subcommand("run", "Generate a completion for one prompt (prompt on stdin if --prompt is absent)");
  add_model_options(sub, a->m);
  sub->add_option("-p,--prompt", a->prompt, "Prompt text")->each([a](const std::string&) { a->prompt_given = true; });
  sub->add_option("-n,--max-tokens", a->max_tokens, "Maximum tokens to generate")->capture_default_str();
  sub->add_option("--temperature,--temp", a->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", a->top_k, "Keep the k most likely tokens (0 = all)")->capture_default_str();
  sub->add_option("--top-p", a->top_p, "Nucleus sampling mass")->capture_default_str();
  sub->add_option("--seed", a->seed, "Random seed")->each([a](const std::string&) { a->seed_given = true; });
  sub->add_option("-c,--ctx", a->ctx, "Context size in tokens (default: min(model context, 4096))");
  sub->add_flag("--raw", a->raw, "Do not apply the chat template");
  sub->add_flag("--chat", a->chat, "Apply the chat template even if the model is not instruction-tuned");
  sub->add_option("--system", a->system, "System prompt (prepended to the user turn, as Gemma's template does)");
  sub->add_option("--fim-prefix", a->fim_prefix, "CodeGemma fill-in-the-middle: the code before the cursor")
      ->each([a](const std::string&) { a->fim = true; });
  sub->add_option("--fim-suffix", a->fim_suffix, "CodeGemma fill-in-the-middle: the code after the cursor")
      ->each([a](const std::string&) { a->fim = true; });
  return [a] { return run(*a); };
}

}  // namespace gemma::cli

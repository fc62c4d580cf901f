// gemma run: one prompt in, a streamed completion out; speeds on stderr.
#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/images.h"
#include "runtime/engine.h"
#include "runtime/prompt.h"

namespace gemma::cli {

namespace {

struct RunArgs {
  ModelArgs m;
  ComputeArgs compute;
  std::string prompt;
  bool prompt_given = false;
  int max_tokens = 256;
  float temperature = 1.0f;
  int top_k = 64;
  float top_p = 0.95f;
  SamplerParams penalties;  // min-p and the penalties (add_penalty_options)
  uint64_t seed = 0;
  bool seed_given = false;
  int64_t ctx = 0;
  bool raw = false;
  bool chat = false;
  std::string system;
  std::vector<std::string> stop;
  std::string fim_prefix, fim_suffix;
  bool fim = false;
  ImageArgs images;
};

// Prints the completion of `req` and the speeds; the exit code.
int generate(Engine& engine, const Backend& backend, Request req) {
  req.on_token = [](const TokenEvent& ev) {
    std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  RequestResult result;
  req.on_done = [&](const RequestResult& r) { result = r; };
  engine.submit(std::move(req));
  const Status ran = engine.run_to_completion();
  std::fwrite(result.tail.data(), 1, result.tail.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!ran.ok()) return fail(ran.error());
  if (!result.status.ok()) return fail(result.status.error());
  const RequestStats& st = result.stats;
  fmt::print(stderr, "gemma: prefill {} tokens at {:.1f} tok/s, decode {} tokens at {:.1f} tok/s ({} threads, {}){}\n",
             st.n_prompt, st.prefill_tps(), st.n_generated, st.decode_tps(), backend.n_threads(), backend.name(),
             result.reason == FinishReason::kContext ? "; stopped: context full" : "");
  return 0;
}

// run with --image: the prompt's markers (or images first) laid out as HF's processor does, the
// context checked before the tower is loaded where the config allows (cli/images.h).
int run_with_images(const RunArgs& a, const Model& mdl, const Tokenizer& tok, const SamplerParams& sp, int n_ctx) {
  if (a.fim) return fail("--image cannot be combined with fill-in-the-middle");
  if (Status st = check_image_args(a.images); !st.ok()) return fail(st.error());
  auto images = load_images(a.images.images);
  if (!images.ok()) return fail(images.error());
  const std::string user = a.prompt_given ? a.prompt : read_stdin();
  auto placed = place_image_markers(user, static_cast<int>(images->size()));
  if (!placed.ok()) return fail(placed.error());
  Result<std::string> text = *placed;
  if (!a.raw && (a.chat || mdl.config().instruction_tuned)) {
    std::vector<ChatMessage> messages;
    if (!a.system.empty()) messages.push_back({"system", a.system});
    messages.push_back({"user", *placed});
    text = render_chat(messages);
  }
  if (!text.ok()) return fail(text.error());
  auto path = resolve_model_path(a.m.model, true);
  if (!path.ok()) return fail(path.error());
  auto setup = make_engine(mdl, a.m, a.compute, n_ctx);
  if (!setup.ok()) return fail(setup.error());
  Vision vision(mdl, *path, a.images.mmproj);
  Request req;
  if (Status st = build_image_request(vision, *setup->backend, tok, *text, *images, a.images.pan_and_scan_options(),
                                      true, 0, n_ctx, req);
      !st.ok())
    return fail(st.error());
  req.stop_ids = default_stop_ids(tok);
  req.sampling = sp;
  req.sampling.seed = resolve_seed(a.seed_given ? std::optional<uint64_t>(a.seed) : std::nullopt);
  req.max_tokens = a.max_tokens;
  req.stop_strings = a.stop;
  return generate(*setup->engine, *setup->backend, std::move(req));
}

int run(const RunArgs& a) {
  if (a.max_tokens < 0) return fail("--max-tokens must be >= 0");
  SamplerParams sp = a.penalties;
  sp.temperature = a.temperature, sp.top_k = a.top_k, sp.top_p = a.top_p;
  if (Status st = check_sampling(sp); !st.ok()) return fail(st.error());
  auto model = load_model(a.m);
  if (!model.ok()) return fail(model.error());
  const Model& mdl = **model;
  const Tokenizer* tok = mdl.tokenizer();
  if (!tok) return fail("the checkpoint has no tokenizer; pass --tokenizer PATH");
  if (a.ctx != 0)
    if (Status st = check_context(a.ctx); !st.ok()) return fail(st.error());
  const int n_ctx = a.ctx > 0 ? static_cast<int>(a.ctx) : default_context(mdl.config());
  if (!a.images.images.empty()) return run_with_images(a, mdl, *tok, sp, n_ctx);

  Request req;
  req.stop_ids = default_stop_ids(*tok);
  Result<std::vector<int32_t>> ids = std::vector<int32_t>{};
  if (a.fim) {
    ids = render_fill_in_middle(*tok, a.fim_prefix, a.fim_suffix, req.stop_ids);
  } else {
    const std::string text = a.prompt_given ? a.prompt : read_stdin();
    // Instruction-tuned models get the chat template unless --raw; --chat forces it.
    if (!a.raw && (a.chat || mdl.config().instruction_tuned)) {
      std::vector<ChatMessage> messages;
      if (!a.system.empty()) messages.push_back({"system", a.system});
      messages.push_back({"user", text});
      ids = render_chat_tokens(*tok, messages);
    } else {
      ids = render_text(*tok, text);
    }
  }
  if (!ids.ok()) return fail(ids.error());
  if (static_cast<int64_t>(ids->size()) > n_ctx)
    return fail(
        fmt::format("the prompt is {} tokens, longer than the context of {} (raise --ctx)", ids->size(), n_ctx));

  auto setup = make_engine(mdl, a.m, a.compute, n_ctx);
  if (!setup.ok()) return fail(setup.error());
  Engine& engine = *setup->engine;
  const Backend& backend = *setup->backend;

  req.prompt = std::move(*ids);
  req.sampling = sp;
  req.sampling.seed = resolve_seed(a.seed_given ? std::optional<uint64_t>(a.seed) : std::nullopt);
  req.max_tokens = a.max_tokens;
  req.stop_strings = a.stop;
  return generate(engine, backend, std::move(req));
}

}  // namespace

Command add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* sub =
      app.add_subcommand("run", "Generate a completion for one prompt (prompt on stdin if --prompt is absent)");
  add_model_options(sub, a->m);
  sub->add_option("-p,--prompt", a->prompt, "Prompt text")->each([a](const std::string&) { a->prompt_given = true; });
  sub->add_option("-n,--max-tokens", a->max_tokens, "Maximum tokens to generate")->capture_default_str();
  sub->add_option("--temperature,--temp", a->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", a->top_k, "Keep the k most likely tokens (0 = all)")->capture_default_str();
  sub->add_option("--top-p", a->top_p, "Nucleus sampling mass")->capture_default_str();
  add_penalty_options(sub, a->penalties);
  sub->add_option("--seed", a->seed, "Random seed: any value makes sampling reproducible (default: a random one)")
      ->each([a](const std::string&) { a->seed_given = true; });
  sub->add_option("-c,--ctx", a->ctx, "Context size in tokens (default: min(model context, 8192))");
  sub->add_option("--stop", a->stop, "Stop when the output contains this text (not printed; repeatable)");
  add_compute_options(sub, a->compute);
  sub->add_flag("--raw", a->raw, "Do not apply the chat template");
  sub->add_flag("--chat", a->chat, "Apply the chat template even if the model is not instruction-tuned");
  sub->add_option("--system", a->system, "System prompt (prepended to the user turn, as Gemma's template does)");
  sub->add_option("--fim-prefix", a->fim_prefix, "CodeGemma fill-in-the-middle: the code before the cursor")
      ->each([a](const std::string&) { a->fim = true; });
  sub->add_option("--fim-suffix", a->fim_suffix, "CodeGemma fill-in-the-middle: the code after the cursor")
      ->each([a](const std::string&) { a->fim = true; });
  add_image_options(sub, a->images, true);
  return [a] { return run(*a); };
}

}  // namespace gemma::cli

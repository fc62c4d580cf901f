// gemma chat: a multi-turn conversation on stdin/stdout. Each turn is a request that continues
// the previous turn's sequence in the engine, so only the new turn is prefilled, never the history.
#include <cstdio>
#include <iostream>
#include <optional>

#include <fmt/format.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/images.h"
#include "runtime/engine.h"
#include "runtime/prompt.h"

namespace gemma::cli {

namespace {

struct ChatArgs {
  ModelArgs m;
  ComputeArgs compute;
  std::string system;
  int max_tokens = 512;
  float temperature = 1.0f;
  int top_k = 64;
  float top_p = 0.95f;
  SamplerParams penalties;  // min-p and the penalties (add_penalty_options)
  uint64_t seed = 0;
  bool seed_given = false;
  int64_t ctx = 0;
  bool verbose = false;
  ImageArgs images;  // --mmproj and pan-and-scan; images come from /image lines
};

int chat(const ChatArgs& a) {
  if (a.max_tokens < 0) return fail("--max-tokens must be >= 0");
  SamplerParams sp = a.penalties;
  sp.temperature = a.temperature, sp.top_k = a.top_k, sp.top_p = a.top_p;
  if (Status st = check_sampling(sp); !st.ok()) return fail(st.error());
  auto model = load_model(a.m);
  if (!model.ok()) return fail(model.error());
  const Model& mdl = **model;
  const Tokenizer* tok = mdl.tokenizer();
  if (!tok) return fail("the checkpoint has no tokenizer; pass --tokenizer PATH");
  if (Status st = check_image_args(a.images); !st.ok()) return fail(st.error());
  if (!mdl.config().instruction_tuned)
    fmt::print(stderr, "gemma: note: this checkpoint has no chat template (a base model); replies may ramble\n");
  if (a.ctx != 0)
    if (Status st = check_context(a.ctx); !st.ok()) return fail(st.error());
  const int n_ctx = a.ctx > 0 ? static_cast<int>(a.ctx) : default_context(mdl.config());
  auto setup = make_engine(mdl, a.m, a.compute, n_ctx);
  if (!setup.ok()) return fail(setup.error());
  Engine& engine = *setup->engine;
  // One sampler stream for the whole conversation: each turn's seed is drawn from it.
  std::mt19937_64 seeds(resolve_seed(a.seed_given ? std::optional<uint64_t>(a.seed) : std::nullopt));
  const bool interactive = isatty(STDIN_FILENO);
  std::optional<RequestId> previous;
  std::string line;
  auto model_path = resolve_model_path(a.m.model, true);
  if (!model_path.ok()) return fail(model_path.error());
  Vision vision(mdl, *model_path, a.images.mmproj);  // the tower loads with the first image
  std::vector<image::Image> pending_images;          // from /image PATH lines, for the next message
  // A bad image or turn: said on one line; an interactive session goes on, a script stops (exit 1).
  auto problem = [&](const Error& e) -> std::optional<int> {
    const int code = fail(e);
    if (interactive) return std::nullopt;
    return code;
  };
  for (;;) {
    if (interactive) fmt::print(stderr, "> ");
    auto got = read_line_bounded(std::cin, line);  // an endless line (/dev/zero) is refused, not buffered
    if (!got.ok()) return fail(got.error());
    if (!*got) break;
    if (trim(line).empty()) continue;
    // "/image PATH": decoded now (a bad file is reported at once), attached to the next message.
    if (const std::string t = trim(line); t.rfind("/image", 0) == 0 && (t.size() == 6 || t[6] == ' ')) {
      const std::string path = trim(t.substr(6));
      if (path.empty()) {
        if (auto code = problem(invalid_argument("/image needs a file: /image PATH"))) return *code;
        continue;
      }
      auto img = load_images(std::span<const std::string>(&path, 1));
      if (!img.ok()) {
        if (auto code = problem(img.error())) return *code;
        continue;
      }
      pending_images.push_back(std::move((*img)[0]));
      if (interactive) fmt::print(stderr, "gemma: image {} attached to the next message\n", path);
      continue;
    }
    const bool first = !previous;
    const int used = previous ? static_cast<int>(engine.sequence_tokens(*previous).size()) : 0;
    Request req;
    if (!pending_images.empty()) {
      // Image parts first in the user turn, as Gemma 3's chat template renders them.
      auto placed = place_image_markers(line, static_cast<int>(pending_images.size()));
      Status st = placed.ok() ? build_image_request(vision, *setup->backend, *tok,
                                                    format_user_turn(*placed, a.system, first), pending_images,
                                                    a.images.pan_and_scan_options(), first, used, n_ctx - 1, req)
                              : Status(placed.error());
      pending_images.clear();
      if (!st.ok()) {
        if (auto code = problem(st.error())) return *code;
        continue;
      }
    } else {
      auto enc = tok->encode(format_user_turn(line, a.system, first), false);
      if (!enc.ok()) {
        fail(enc.error());
        continue;
      }
      if (first) req.prompt.push_back(tok->bos_id());
      req.prompt.insert(req.prompt.end(), enc->begin(), enc->end());
    }
    if (used + static_cast<int>(req.prompt.size()) >= n_ctx)
      return fail(fmt::format("the conversation no longer fits in the context of {} tokens (raise --ctx)", n_ctx));
    req.continue_from = previous;
    req.keep = true;
    req.sampling = sp;
    req.sampling.seed = seeds();
    req.max_tokens = a.max_tokens;
    req.stop_ids = default_stop_ids(*tok);
    req.on_token = [](const TokenEvent& ev) {
      std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
    RequestResult result;
    req.on_done = [&](const RequestResult& r) { result = r; };
    previous = engine.submit(std::move(req));
    const Status ran = engine.run_to_completion();
    const std::string tail = result.tail + "\n";
    std::fwrite(tail.data(), 1, tail.size(), stdout);
    std::fflush(stdout);
    if (!ran.ok()) return fail(ran.error());
    if (!result.status.ok()) return fail(result.status.error());
    if (a.verbose)
      fmt::print(stderr,
                 "gemma: turn prefill {} tokens ({:.1f} tok/s), decode {} tokens ({:.1f} tok/s), context {}/{}\n",
                 result.stats.n_prompt, result.stats.prefill_tps(), result.stats.n_generated, result.stats.decode_tps(),
                 engine.sequence_tokens(*previous).size(), n_ctx);
  }
  return 0;
}

}  // namespace

Command add_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* sub = app.add_subcommand("chat", "Multi-turn conversation (one user message per line on stdin)");
  add_model_options(sub, a->m);
  add_compute_options(sub, a->compute);
  sub->add_option("--system", a->system, "System prompt (Gemma prepends it to the first user turn)");
  sub->add_option("-n,--max-tokens", a->max_tokens, "Maximum tokens per reply")->capture_default_str();
  sub->add_option("--temperature,--temp", a->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", a->top_k, "Top-k")->capture_default_str();
  sub->add_option("--top-p", a->top_p, "Top-p")->capture_default_str();
  add_penalty_options(sub, a->penalties);
  sub->add_option("--seed", a->seed, "Random seed: any value makes the conversation reproducible (default: random)")
      ->each([a](const std::string&) { a->seed_given = true; });
  sub->add_option("-c,--ctx", a->ctx, "Context size (default: min(model context, 8192))");
  sub->add_flag("-v,--verbose", a->verbose, "Print speeds and context use after each turn");
  // Images: a line "/image PATH" attaches the file to the next message (repeatable).
  add_image_options(sub, a->images, false);
  return [a] { return chat(*a); };
}

}  // namespace gemma::cli

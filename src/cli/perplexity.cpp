// gemma perplexity: llama-perplexity's method (runtime/perplexity.h), same output lines.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "runtime/perplexity.h"
#include "util/mapped_file.h"

namespace gemma::cli {

namespace {

struct PplArgs {
  ModelArgs m;
  ComputeArgs compute;
  std::string file;
  int ctx = 512;
};

int run_perplexity(const PplArgs& a) {
  auto model = load_model(a.m);
  if (!model.ok()) return fail(model.error());
  const Tokenizer* tok = (*model)->tokenizer();
  if (!tok) return fail("the checkpoint has no tokenizer; pass --tokenizer PATH");
  auto text = read_text_file(a.file);
  if (!text.ok()) return fail(text.error());
  auto ids = tok->encode(*text, true);
  if (!ids.ok()) return fail(ids.error());
  auto backend = make_backend(a.m, a.compute);
  if (!backend.ok()) return fail(backend.error());
  auto kv = kv_cache_type(a.compute);
  if (!kv.ok()) return fail(kv.error());
  const size_t n_chunks = ids->size() / static_cast<size_t>(std::max(a.ctx, 1));
  auto r = perplexity(**model, **backend, *ids, a.ctx, *kv, [&](int chunk, double ppl) {
    if (chunk == 1) fmt::print(stderr, "gemma: {} tokens, {} chunks of {}\n", ids->size(), n_chunks, a.ctx);
    fmt::print("[{}]{:.4f},", chunk, ppl);
    std::fflush(stdout);
  });
  fmt::print("\n");
  if (!r.ok()) return fail(r.error());
  fmt::print("Final estimate: PPL = {:.4f} +/- {:.5f}\n", r->ppl, r->error);
  return 0;
}

}  // namespace

Command add_perplexity(CLI::App& app) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* sub = app.add_subcommand("perplexity", "Perplexity of a text file, computed as llama-perplexity does");
  add_model_options(sub, a->m);
  add_compute_options(sub, a->compute);
  sub->add_option("-f,--file", a->file, "Text file")->required();
  sub->add_option("-c,--ctx", a->ctx, "Chunk (context) size")->capture_default_str();
  return [a] { return run_perplexity(*a); };
}

}  // namespace gemma::cli

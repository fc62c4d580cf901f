// gemma serve: the OpenAI-compatible HTTP server (server/server.h). Binds first, so /health
// answers 503 while the model loads, then loads, plans the KV pool (--parallel x --ctx) and
// serves until SIGINT or SIGTERM, which stop it cleanly (exit 0).
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <pthread.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "runtime/memory_plan.h"
#include "runtime/prompt.h"
#include "server/server.h"

namespace gemma::cli {

namespace {

struct ServeArgs {
  ModelArgs m;
  ComputeArgs compute;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  int64_t ctx = 0;
  int max_queue = 64;
  std::string api_key, api_key_file;
  std::string alias;
  bool no_prefix_cache = false;
  int cache_rollback = 0;
};

int serve(const ServeArgs& a) {
  if (a.parallel < 1 || a.parallel > 256) return fail("--parallel must be between 1 and 256");
  if (a.port < 0 || a.port > 65535) return fail("--port must be between 0 and 65535");
  if (a.max_queue < 0) return fail("--max-queue must be >= 0");
  if (a.cache_rollback < 0 || a.cache_rollback > 1 << 20) return fail("--cache-rollback must be between 0 and 2^20");
  if (a.ctx != 0)
    if (Status st = check_context(a.ctx); !st.ok()) return fail(st.error());
  server::ServerOptions so;
  so.host = a.host;
  so.port = a.port;
  so.max_queue = a.max_queue;
  so.api_key = a.api_key;
  if (!a.api_key_file.empty()) {
    std::ifstream in(a.api_key_file);
    if (!in) return fail(fmt::format("cannot read the API key file {}", a.api_key_file));
    std::getline(in, so.api_key);
    so.api_key = trim(so.api_key);
    if (so.api_key.empty()) return fail(fmt::format("the API key file {} is empty", a.api_key_file));
  }
  auto path = resolve_model_path(a.m.model);
  if (!path.ok()) return fail(path.error());
  so.model_name = a.alias.empty() ? std::filesystem::path(*path).filename().string() : a.alias;

  // Signals go to one thread that stops the server; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that goes away is a failed write, not a kill

  server::Server srv(so);
  auto port = srv.bind();
  if (!port.ok()) return fail(port.error());
  std::thread http([&] {
    Status st = srv.serve();
    if (!st.ok()) fail(st.error());
  });
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == 0) return;
    fmt::print(stderr, "gemma serve: {} received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv.stop();
  });
  auto finish = [&](int code) {
    srv.stop();
    pthread_kill(stopper.native_handle(), SIGTERM);  // wakes sigwait if no signal came
    stopper.join();
    http.join();
    return code;
  };

  ModelArgs margs = a.m;
  margs.model = *path;
  auto model = load_model(margs, true);
  if (!model.ok()) return finish(fail(model.error()));
  const Model& mdl = **model;
  if (!mdl.tokenizer()) return finish(fail("the checkpoint has no tokenizer; pass --tokenizer PATH"));
  auto backend = make_backend(a.m, a.compute);
  if (!backend.ok()) return finish(fail(backend.error()));
  EngineOptions eo;
  eo.n_ctx = a.ctx > 0 ? static_cast<int>(a.ctx) : default_context(mdl.config());
  eo.max_sequences = a.parallel;
  eo.step_tokens = std::max(256, a.parallel);
  eo.prefix_cache = !a.no_prefix_cache;
  eo.max_rollback = a.cache_rollback;
  auto kv = kv_cache_type(a.compute);
  if (!kv.ok()) return finish(fail(kv.error()));
  eo.kv_type = *kv;
  const MemoryPlan plan = plan_memory(mdl, eo);
  fmt::print(stderr,
             "gemma serve: {} sequences x {} positions; memory: weights {}, KV cache {} ({} a sequence), "
             "activations {}, total {}\n",
             eo.max_sequences, eo.n_ctx, human_bytes(plan.weights), human_bytes(plan.kv_total()),
             human_bytes(plan.kv_per_sequence), human_bytes(plan.scratch + plan.logits), human_bytes(plan.total()));
  auto engine = Engine::create(mdl, **backend, eo);
  if (!engine.ok()) return finish(fail(engine.error()));
  srv.attach(mdl, **engine);
  fmt::print(stderr, "gemma serve: listening on http://{}:{} (model {}, OpenAI API at /v1)\n", a.host, *port,
             so.model_name);
  stopper.join();
  http.join();
  srv.stop();
  return 0;
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* sub = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  add_model_options(sub, a->m);
  add_compute_options(sub, a->compute);
  sub->add_option("--host", a->host, "Address to listen on (loopback by default)")->capture_default_str();
  sub->add_option("--port", a->port, "Port to listen on")->capture_default_str();
  sub->add_option("-P,--parallel", a->parallel, "Sequences generated at once (KV slots)")->capture_default_str();
  sub->add_option("-c,--ctx", a->ctx, "Context per sequence (default: min(model context, 8192))");
  sub->add_option("--max-queue", a->max_queue, "Sequences that may wait for a slot; beyond, 503")
      ->capture_default_str();
  auto* key = sub->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY'");
  sub->add_option("--api-key-file", a->api_key_file, "Read the API key from a file")->excludes(key);
  sub->add_flag("--no-prefix-cache", a->no_prefix_cache,
                "Prefill every prompt in full instead of reusing cached prefixes of earlier requests");
  sub->add_option("--cache-rollback", a->cache_rollback,
                  "Tokens a cached sequence may be cut back by for reuse on sliding-window layers "
                  "(default: the step budget, 256; more costs KV memory, see the memory plan)");
  sub->add_option("--alias", a->alias, "Model name reported by /v1/models (default: the file name)");
  return [a] { return serve(*a); };
}

}  // namespace gemma::cli

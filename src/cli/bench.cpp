// gemma bench: prefill (pp) and decode (tg) speed, measured as llama-bench measures them, with
// the same JSON field names so scripts can compare the two. Each repetition starts from an empty
// cache (after -d tokens of untimed context); pp feeds <bos> + random ids in chunks of -b, tg
// decodes one random id at a time, computing the full logits each step.
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <optional>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "runtime/engine.h"

namespace gemma::cli {

namespace {

struct BenchArgs {
  ModelArgs m;
  ComputeArgs compute;
  DType kv_type = DType::F16;
  std::vector<int> n_prompt{512};
  std::vector<int> n_gen{128};
  std::vector<int> depth{0};
  std::vector<int> threads;
  int reps = 3;
  int batch = 256;  // the engine's default step budget
  std::string output = "md";
};

struct TestResult {
  int n_prompt = 0, n_gen = 0, n_depth = 0, threads = 0;
  std::vector<uint64_t> samples_ns;
  std::vector<double> ts() const {
    std::vector<double> v;
    for (uint64_t ns : samples_ns) v.push_back(1e9 * (n_prompt + n_gen) / static_cast<double>(ns));
    return v;
  }
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}
double stdev(const std::vector<double>& v) {  // sample standard deviation, as llama-bench
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// One repetition through the engine: an untimed request of -d tokens kept in the cache, then the
// timed request continuing it: pp feeds n_prompt random ids in chunks of -b with logits for the
// last; tg feeds n_gen random ids one per step with logits for each (max_chunk 1, score_from 0),
// so neither test pays for sampling, as in llama-bench.
Status run_once(const Model& model, Backend& be, const BenchArgs& a, TestResult& t, bool timed, std::mt19937& rng) {
  const int n_vocab = model.n_vocab_out();
  std::uniform_int_distribution<int32_t> rand_id(0, n_vocab - 1);
  const int32_t bos = model.tokenizer() ? model.tokenizer()->bos_id() : 2;
  EngineOptions eo;
  eo.n_ctx = t.n_depth + t.n_prompt + t.n_gen + 1;
  eo.step_tokens = a.batch;
  eo.kv_type = a.kv_type;
  GE_ASSIGN(auto engine, Engine::create(model, be, eo));
  auto random_ids = [&](int n, bool first) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& id : ids) id = rand_id(rng);
    if (first) ids[0] = bos;
    return ids;
  };
  Status failed;
  auto on_done = [&](const RequestResult& r) {
    if (!r.status.ok()) failed = r.status;
  };
  std::optional<RequestId> depth;
  if (t.n_depth > 0) {
    Request r;
    r.prompt = random_ids(t.n_depth, true);
    r.max_tokens = 0;
    r.keep = true;
    r.on_done = on_done;
    depth = engine->submit(std::move(r));
    GE_TRY(engine->run_to_completion());
    GE_TRY(failed);
  }
  Request r;
  r.continue_from = depth;
  r.max_tokens = 0;
  r.on_done = on_done;
  if (t.n_prompt > 0) {
    r.prompt = random_ids(t.n_prompt, !depth);
  } else {
    r.prompt = random_ids(t.n_gen, !depth);
    r.max_chunk = 1;
    r.score_from = 0;
    r.on_prompt_logits = [](int, std::span<const float>) {};
  }
  const auto t0 = std::chrono::steady_clock::now();
  engine->submit(std::move(r));
  GE_TRY(engine->run_to_completion());
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  GE_TRY(failed);
  if (timed) t.samples_ns.push_back(static_cast<uint64_t>(ns));
  return {};
}

std::string model_type(const Model& m) {
  std::string q;
  int most = 0;
  for (const auto& [name, n] : m.info().tensors_by_dtype)
    if (name != "F32" && n > most) most = n, q = name;
  return fmt::format("{} {} {}", generation_name(m.config().generation), m.config().variant, q.empty() ? "F32" : q);
}

int bench(const BenchArgs& a) {
  auto model = load_model(a.m, a.output != "md");
  if (!model.ok()) return fail(model.error());
  const Model& m = **model;
  std::vector<int> threads = a.threads.empty() ? std::vector<int>{thread_count(0)} : a.threads;
  std::vector<TestResult> tests;
  for (int th : threads)
    for (int d : a.depth) {
      for (int p : a.n_prompt)
        if (p > 0) tests.push_back({p, 0, d, th, {}});
      for (int n : a.n_gen)
        if (n > 0) tests.push_back({0, n, d, th, {}});
    }
  const bool md = a.output == "md";
  if (md) {
    fmt::print("| model | size | params | backend | threads | test | t/s | peak RSS |\n");
    fmt::print("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |\n");
  } else if (a.output == "json") {
    fmt::print("[\n");
  }
  std::mt19937 rng(42);
  bool first = true;
  for (TestResult& t : tests) {
    ModelArgs threads_only = a.m;
    threads_only.threads = t.threads;
    auto backend = make_backend(threads_only, a.compute);
    if (!backend.ok()) return fail(backend.error());
    Backend& be = **backend;
    Status st = run_once(m, be, a, t, false, rng);  // warm-up
    for (int r = 0; st.ok() && r < a.reps; ++r) st = run_once(m, be, a, t, true, rng);
    if (!st.ok()) return fail(st.error());
    const auto ts = t.ts();
    const std::string name = (t.n_prompt > 0 ? fmt::format("pp{}", t.n_prompt) : fmt::format("tg{}", t.n_gen)) +
                             (t.n_depth > 0 ? fmt::format(" @ d{}", t.n_depth) : "");
    const bool cuda = std::string_view(be.name()) == "cuda";  // --device cuda: no CPU kernel table to name
    if (md) {
      fmt::print("| {} | {} | {:.2f} M | {} | {} | {} | {:.2f} ± {:.2f} | {} |\n", model_type(m),
                 human_bytes(m.weights().bytes()), static_cast<double>(m.info().n_params) / 1e6,
                 cuda ? std::string("CUDA") : fmt::format("CPU ({})", be.name()), t.threads, name, mean(ts), stdev(ts),
                 human_bytes(peak_rss_bytes()));
      std::fflush(stdout);
      continue;
    }
    std::string kv_name(dtype_name(a.kv_type));
    for (char& ch : kv_name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::vector<double> ns_d(t.samples_ns.begin(), t.samples_ns.end());
    char time_buf[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(time_buf, sizeof time_buf, "%FT%TZ", std::gmtime(&now));
    nlohmann::ordered_json j = {{"build_commit", "gemma-engine"},
                                {"backends", cuda ? "CUDA" : "CPU"},
                                {"cpu_info", be.name()},
                                {"model_filename", m.info().path},
                                {"model_type", model_type(m)},
                                {"model_size", m.weights().bytes()},
                                {"model_n_params", m.info().n_params},
                                {"n_batch", a.batch},
                                {"n_ubatch", a.batch},
                                {"n_threads", t.threads},
                                {"type_k", kv_name},
                                {"type_v", kv_name},
                                {"n_prompt", t.n_prompt},
                                {"n_gen", t.n_gen},
                                {"n_depth", t.n_depth},
                                {"test_time", time_buf},
                                {"avg_ns", static_cast<uint64_t>(mean(ns_d))},
                                {"stddev_ns", static_cast<uint64_t>(stdev(ns_d))},
                                {"avg_ts", mean(ts)},
                                {"stddev_ts", stdev(ts)},
                                {"samples_ns", t.samples_ns},
                                {"samples_ts", ts},
                                {"peak_rss_bytes", peak_rss_bytes()}};
    if (a.output == "json") {
      fmt::print("{}{}", first ? "" : ",\n", j.dump(2));
    } else {
      fmt::print("{}\n", j.dump());
    }
    std::fflush(stdout);
    first = false;
  }
  if (a.output == "json") fmt::print("\n]\n");
  return 0;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench", "Prefill and decode speed, comparable with llama-bench");
  sub->add_option("-m,--model", a->m.model, "Checkpoint (default: Gemma 3 270M)");
  sub->add_option("--tokenizer", a->m.tokenizer, "tokenizer.json or tokenizer.model");
  add_mmap_flag(sub, a->m.mmap);
  add_compute_options(sub, a->compute);
  sub->add_option("-p,--n-prompt", a->n_prompt, "Prompt lengths to test (0 to skip)")->delimiter(',');
  sub->add_option("-n,--n-gen", a->n_gen, "Generation lengths to test (0 to skip)")->delimiter(',');
  sub->add_option("-d,--n-depth", a->depth, "Context already in the cache before each test")->delimiter(',');
  sub->add_option("-t,--threads", a->threads, "Thread counts to test")->delimiter(',');
  sub->add_option("-r,--repetitions", a->reps, "Repetitions of each test")->capture_default_str();
  sub->add_option("-b,--batch-size", a->batch, "Prefill chunk size")->capture_default_str();
  sub->add_option("-o,--output", a->output, "md, json or jsonl")
      ->check(CLI::IsMember({"md", "json", "jsonl"}))
      ->capture_default_str();
  return [a] {
    if (a->reps < 1) return fail("-r must be at least 1");
    if (a->batch < 1) return fail("-b must be at least 1");
    for (const auto* list : {&a->n_prompt, &a->n_gen, &a->depth})
      for (int v : *list)
        if (v < 0) return fail("-p, -n and -d take counts >= 0");
    for (int th : a->threads)
      if (th < 1) return fail("-t takes thread counts >= 1");
    auto kv = kv_cache_type(a->compute);
    if (!kv.ok()) return fail(kv.error());
    a->kv_type = *kv;
    return bench(*a);
  };
}

}  // namespace gemma::cli

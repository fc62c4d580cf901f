// Fuzzes whole-model loads (Model::load): format detection, the GGUF and safetensors loaders,
// config and variant detection, weight binding and the tokenizer from GGUF metadata. The input is
// written to a file in a private temporary folder: as model.gguf when it starts with "GGUF", else
// as model.safetensors beside the tiny Gemma 3 fixture's config.json (other magics, such as a
// torch zip, go to their loader by content). A load gives a model or an error; nothing runs.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/model.h"

namespace {

namespace fs = std::filesystem;

// The folder, made once per process with the fixture's config.json in it.
const fs::path& work_dir() {
  static const fs::path dir = [] {
    char tmpl[] = "/tmp/gemma_fuzz_model_load_XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    const fs::path d = tmpl;
    fs::copy_file(fs::path(GEMMA_FIXTURES_DIR) / "models/gemma3_tiny/config.json", d / "config.json");
    std::atexit([] { fs::remove_all(work_dir()); });
    return d;
  }();
  return dir;
}

void write_file(const fs::path& p, const uint8_t* data, size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool gguf = size >= 4 && std::memcmp(data, "GGUF", 4) == 0;
  const fs::path path = work_dir() / (gguf ? "model.gguf" : "model.safetensors");
  write_file(path, data, size);
  gemma::LoadOptions opts;
  opts.pages = gemma::FilePages::kMapped;
  auto m = gemma::Model::load(path.string(), opts);
  if (m.ok()) {
    const gemma::ModelConfig& c = (*m)->config();
    if (c.n_layers <= 0 || c.hidden <= 0 || (*m)->n_vocab_out() <= 0) __builtin_trap();
  }
  fs::remove(path);
  return 0;
}

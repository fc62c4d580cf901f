#include "support/test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

namespace gemma::test {

std::string fixture(const std::string& relative) { return std::string(GEMMA_FIXTURES_DIR) + "/" + relative; }

std::string real_model_path() {
  if (const char* env = std::getenv("GEMMA_TEST_MODEL")) return env;
  std::string p = GEMMA_REAL_MODEL_PATH;
  return std::filesystem::exists(p) ? p : "";
}

bool real_model_required() {
  const char* env = std::getenv("GEMMA_REQUIRE_REAL_MODEL");
  return env && std::string(env) == "1";
}

std::string temp_dir() {
  std::random_device rd;
  auto dir =
      std::filesystem::temp_directory_path() / ("gemma_test_" + std::to_string(rd()) + "_" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Status attend(Backend& backend, const AttentionArgs& a) {
  SequenceKv seq;
  seq.n_tokens = a.n_tokens;
  seq.k_cache = const_cast<void*>(a.k_cache);
  seq.v_cache = const_cast<void*>(a.v_cache);
  seq.capacity = a.capacity;
  seq.bidirectional = a.bidirectional;
  BatchAttention b;
  b.q = a.q;
  b.out = a.out;
  b.positions = a.positions;
  b.n_heads = a.n_heads;
  b.n_kv_heads = a.n_kv_heads;
  b.head_dim = a.head_dim;
  b.kv_type = a.kv_type;
  b.window = a.window;
  b.scale = a.scale;
  b.softcap = a.softcap;
  b.sequences = {&seq, 1};
  return backend.attention(b);
}

ForwardBuffers forward_buffers(Backend& backend, const ModelConfig& config, int max_tokens) {
  auto b = ForwardBuffers::create(backend, config, max_tokens);
  if (!b.ok()) {
    ADD_FAILURE() << "ForwardBuffers::create: " << b.error().message;
    return {};
  }
  return std::move(*b);
}

}  // namespace gemma::test

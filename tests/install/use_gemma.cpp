// Loads a model, runs one greedy request through the engine and prints the generated token ids,
// using nothing but the installed public header.
#include <gemma.h>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: use_gemma MODEL\n");
    return 2;
  }
  auto model = gemma::Model::load(argv[1]);
  if (!model.ok()) return std::fprintf(stderr, "load: %s\n", model.error().message.c_str()), 1;
  auto backend = gemma::create_backend({.device = "cpu", .threads = 1});
  if (!backend.ok()) return std::fprintf(stderr, "backend: %s\n", backend.error().message.c_str()), 1;
  gemma::EngineOptions options;
  options.n_ctx = 64;
  auto engine = gemma::Engine::create(**model, **backend, options);
  if (!engine.ok()) return std::fprintf(stderr, "engine: %s\n", engine.error().message.c_str()), 1;
  gemma::Request r;
  r.prompt = {2, 10, 20, 30};
  r.max_tokens = 5;
  r.sampling.temperature = 0;
  std::vector<int32_t> ids;
  r.on_token = [&](const gemma::TokenEvent& ev) {
    ids.push_back(ev.id);
    return true;
  };
  (*engine)->submit(std::move(r));
  if (gemma::Status st = (*engine)->run_to_completion(); !st.ok())
    return std::fprintf(stderr, "run: %s\n", st.error().message.c_str()), 1;
  for (int32_t id : ids) std::printf("%d ", id);
  std::printf("\n");
  return ids.size() == 5 ? 0 : 1;
}

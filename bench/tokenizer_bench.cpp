// Tokenizer throughput: encoding ~1 MB of mixed text (prose, CJK, emoji, code).
#include <benchmark/benchmark.h>

#include "tokenizer/tokenizer.h"

namespace {

const gemma::Tokenizer& tokenizer() {
  static const gemma::Tokenizer t =
      std::move(gemma::Tokenizer::from_file(GEMMA_FIXTURES_DIR "/tokenizer/tokenizer.json.zst")).value();
  return t;
}

void BM_Encode1MB(benchmark::State& state) {
  std::string text;
  const std::string para =
      "The quick brown fox jumps over the lazy dog. Lorem ipsum dolor sit amet, 123456 consectetur; "
      "日本語のテキストも少し。Ünïcödé and emoji 🙂🚀 and code: for (int i = 0; i < n; ++i) { x += i; }\n";
  while (text.size() < (1u << 20)) text += para;
  const auto& t = tokenizer();
  for (auto _ : state) benchmark::DoNotOptimize(t.encode(text, true));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_Encode1MB)->Unit(benchmark::kMillisecond);

void BM_LoadTokenizerJson(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(gemma::Tokenizer::from_file(GEMMA_FIXTURES_DIR "/tokenizer/tokenizer.json.zst"));
}
BENCHMARK(BM_LoadTokenizerJson)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();

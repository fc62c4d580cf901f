// Tokenizer throughput: encoding ~1 MB of mixed text (prose, CJK, emoji, code), and loading.
// Run: build/bench/tokenizer_bench (MB/s is the "bytes_per_second" counter).
#include <benchmark/benchmark.h>

#include <string>

#include "tokenizer/tokenizer.h"

namespace {

const gemma::Tokenizer& tokenizer(bool sentencepiece) {
  static const gemma::Tokenizer json =
      std::move(gemma::Tokenizer::from_file(GEMMA_FIXTURES_DIR "/tokenizer/tokenizer.json.zst")).value();
  static const gemma::Tokenizer model =
      std::move(gemma::Tokenizer::from_file(GEMMA_FIXTURES_DIR "/tokenizer/tokenizer.model.zst")).value();
  return sentencepiece ? model : json;
}

// ~1 MB of one paragraph repeated; with_newlines=false makes the whole text one BPE stretch (no
// added token splits it), the case an O(n^2) merge loop cannot survive.
std::string mixed_text(bool with_newlines) {
  const std::string para =
      "The quick brown fox jumps over the lazy dog. Lorem ipsum dolor sit amet, 123456 consectetur; "
      "日本語のテキストも少し。Ünïcödé and emoji 🙂🚀🫩 "
      "and code: for (int i = 0; i < n; ++i) { x += i; } "
      "Ελληνικά и кириллица.";
  std::string text;
  while (text.size() < (1u << 20)) text += para + (with_newlines ? "\n" : " ");
  return text;
}

// Args: {with_newlines, sentencepiece}.
void BM_Encode1MB(benchmark::State& state) {
  const std::string text = mixed_text(state.range(0) != 0);
  const auto& t = tokenizer(state.range(1) != 0);
  for (auto _ : state) benchmark::DoNotOptimize(t.encode(text, true));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_Encode1MB)
    ->ArgNames({"newlines", "spm"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Unit(benchmark::kMillisecond);

void BM_Decode1MB(benchmark::State& state) {
  const std::string text = mixed_text(true);
  const auto& t = tokenizer(false);
  const std::vector<int32_t> ids = t.encode(text, false).value();
  for (auto _ : state) benchmark::DoNotOptimize(t.decode(ids));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_Decode1MB)->Unit(benchmark::kMillisecond);

void BM_LoadTokenizerJson(benchmark::State& state) {
  const std::string path = GEMMA_FIXTURES_DIR "/tokenizer/tokenizer.json.zst";
  for (auto _ : state) benchmark::DoNotOptimize(gemma::Tokenizer::from_file(path));
}
BENCHMARK(BM_LoadTokenizerJson)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_LoadTokenizerModel(benchmark::State& state) {
  const std::string path = GEMMA_FIXTURES_DIR "/tokenizer/tokenizer.model.zst";
  for (auto _ : state) benchmark::DoNotOptimize(gemma::Tokenizer::from_file(path));
}
BENCHMARK(BM_LoadTokenizerModel)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();

// The real Gemma 3 270M Q4_K_M GGUF against its committed references
// (tests/fixtures/real_model/reference.json, made by tools/fixtures_real_model.py): HF transformers
// in float32 on the dequantized GGUF weights, and llama.cpp itself. Six prompts, raw and
// chat-templated; each has HF's 32 greedy tokens.
//  - Precise mode (float activations, the reference's arithmetic): one forward over the prompt and
//    HF's greedy tokens (teacher forcing). The argmax at every prompt position must be HF's, the
//    argmax after the prompt and each greedy token must be HF's next greedy token (so greedy
//    decoding gives HF's 32 tokens), and the logits at the last prompt position must match HF's
//    top 32 to float32 rounding. One forward dequantizes each weight row once for all ~50-125
//    tokens; decoding token by token dequantized the 262144-row output projection per token (the
//    decode path in precise mode is covered by the parity tests, chunk 1 and engine greedy).
//  - Default (fast) mode, int8 activations like llama.cpp, through the engine as a user runs it
//    (F16 KV cache, token-by-token decode): the logit error against HF is bounded, the greedy
//    tokens are compared with both references and their agreement with HF has a floor. The same
//    teacher-forced forward in fast mode measures the error against precise mode over the whole
//    vocabulary at every position.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_backend.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "support/test_support.h"

namespace gemma {
namespace {

struct Outcome {
  std::vector<int32_t> greedy;
  std::vector<float> last_logits;
};

// Greedy tokens through the engine, and the logits the first one was chosen from.
void run(const Model& m, Backend& be, const std::vector<int32_t>& prompt, int n_new, DType kv, Outcome& o) {
  EngineOptions eo;
  eo.n_ctx = static_cast<int>(prompt.size()) + n_new + 1;
  eo.kv_type = kv;
  auto e = Engine::create(m, be, eo);
  ASSERT_TRUE(e.ok()) << e.error().message;
  Request r;
  r.prompt = prompt;
  r.sampling = SamplerParams{0, 0, 1, 0};
  r.max_tokens = n_new;
  r.on_token = [&](const TokenEvent& ev) {
    if (o.greedy.empty()) o.last_logits.assign(ev.logits.begin(), ev.logits.end());
    o.greedy.push_back(ev.id);
    return true;
  };
  (*e)->submit(std::move(r));
  ASSERT_TRUE((*e)->run_to_completion().ok());
  ASSERT_EQ(o.greedy.size(), static_cast<size_t>(n_new));
}

// The logits at every position of one forward over `tokens` (one chunk, a fresh cache).
void forward_all(const Model& m, Backend& be, const std::vector<int32_t>& tokens, DType kv,
                 std::vector<float>& logits) {
  const int n = static_cast<int>(tokens.size());
  auto cache = KvCache::create(be, m.config(), n, n, kv);
  ASSERT_TRUE(cache.ok()) << cache.error().message;
  ForwardBuffers buf = test::forward_buffers(be, m.config(), n);
  SequenceChunk sc(cache->get(), tokens, n);
  Status st = m.forward({&sc, 1}, be, buf, logits);
  ASSERT_TRUE(st.ok()) << st.error().message;
  ASSERT_EQ(logits.size(), tokens.size() * static_cast<size_t>(m.config().vocab_size));
}

int32_t argmax(const float* row, int n) { return static_cast<int32_t>(std::max_element(row, row + n) - row); }

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// Precise mode against HF, max |Δlogit| over HF's top 32 at the last prompt position. Both sides
// are float32 on the same dequantized weights; only the summation order and the vectorized
// exp/tanh differ. Measured: 7.6e-6 to 4.3e-5 on logits of magnitude ~20 (about 2e-6 relative,
// like the tiny parity models' ~1e-6). 2e-4 (~1e-5 relative) leaves 4x for another summation order
// (AVX2 vs AVX-512 kernels) and is still far below anything that rounds to 16 bits (bf16/f16
// weights or activations: ~1e-3 relative) or llama.cpp's own F32 run on these weights (0.011 to
// 0.039, reference.json llamacpp_f32_dequant_check).
constexpr double kPreciseBound = 2e-4;
// Fast mode against HF, same logits. Measured 0.16-0.69; llama.cpp's int8 path is 0.27-0.91 off on
// the same logits (top32_last_llamacpp) and 0.82-1.69 over the whole vocabulary there.
constexpr double kFastBound = 1.5;
// Fast vs precise over the whole vocabulary at every position of the teacher-forced forward:
// measured 0.72-3.42 (the worst at early prompt positions); llama.cpp vs HF over its prompt
// positions is 1.32-3.99 (max_abs_logit_diff_hf_vs_llamacpp).
constexpr double kFastAllBound = 6.0;
// Fast greedy vs HF. A token can only flip where HF's top-2 margin is within the two logits'
// combined error; measured flips happen at margins 0.01-0.22. So fast must agree with HF for at
// least as long as every HF margin is >= 1 (together 41 tokens), and for at least 64 of the 192
// tokens in all: measured 100 (prefixes 11, 3, 32, 32, 10, 12); llama.cpp itself gets 112.
constexpr double kFastSafeMargin = 1.0;
constexpr size_t kFastGreedyFloor = 64;

TEST(RealModel, GreedyAndLogitsMatchReferences) {
  GEMMA_REQUIRE_REAL_MODEL();
  std::ifstream in(test::fixture("real_model/reference.json"));
  ASSERT_TRUE(in) << "missing tests/fixtures/real_model/reference.json";
  const nlohmann::json ref = nlohmann::json::parse(in);
  ASSERT_EQ(ref["prompts"].size(), 6u);
  auto model = Model::load(test::real_model_path());
  ASSERT_TRUE(model.ok()) << model.error().message;
  const Model& m = **model;
  const int V = m.config().vocab_size;
  const int n_new = ref["n_new"].get<int>();
  CpuBackend precise(2, CpuOptions{true}), fast(2);
  double worst_precise = 0, worst_fast = 0, worst_fast_all = 0;
  size_t fast_agree = 0;
  int fast_identical = 0;
  for (const auto& p : ref["prompts"]) {
    const std::string text = p["text"].get<std::string>();
    SCOPED_TRACE(text);
    const auto prompt = p["prompt_ids"].get<std::vector<int32_t>>();
    const auto hf = p["greedy_ids_hf"].get<std::vector<int32_t>>();
    const auto lc = p["greedy_ids_llamacpp"].get<std::vector<int32_t>>();
    const auto hf_argmax = p["hf_argmax"].get<std::vector<int32_t>>();
    const auto margins = p["greedy_margins_hf"].get<std::vector<double>>();
    ASSERT_EQ(hf.size(), static_cast<size_t>(n_new));
    ASSERT_EQ(hf_argmax.size(), prompt.size());
    ASSERT_EQ(margins.size(), hf.size());
    // Our tokenizer gives the reference's prompt ids.
    auto ids = m.tokenizer()->encode(p["prompt_text"].get<std::string>(), false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, prompt);

    // The prompt and HF's greedy tokens but the last (whose successor is not in the reference).
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), hf.begin(), hf.end() - 1);
    const size_t last = prompt.size() - 1;  // the row the first greedy token is chosen from
    std::vector<float> a, f;
    ASSERT_NO_FATAL_FAILURE(forward_all(m, precise, seq, DType::F32, a));
    ASSERT_NO_FATAL_FAILURE(forward_all(m, fast, seq, DType::F16, f));
    int prompt_argmax_ok = 0;
    for (size_t i = 0; i < prompt.size(); ++i) prompt_argmax_ok += argmax(&a[i * V], V) == hf_argmax[i];
    EXPECT_EQ(prompt_argmax_ok, static_cast<int>(prompt.size())) << "precise argmax at the prompt positions";
    std::vector<int32_t> greedy_precise;
    for (size_t j = 0; j < hf.size(); ++j) greedy_precise.push_back(argmax(&a[(last + j) * V], V));
    EXPECT_EQ(greedy_precise, hf) << "precise greedy (teacher-forced)";
    double d_fast_all = 0;
    for (size_t i = 0; i < a.size(); ++i) d_fast_all = std::max(d_fast_all, std::fabs(double(f[i]) - a[i]));
    EXPECT_LT(d_fast_all, kFastAllBound) << "fast vs precise, all logits at all positions";

    Outcome b;
    ASSERT_NO_FATAL_FAILURE(run(m, fast, prompt, n_new, DType::F16, b));
    double d_precise = 0, d_fast = 0;
    for (const auto& e : p["top32_last_hf"]) {
      const auto id = static_cast<size_t>(e[0].get<int32_t>());
      const double v = e[1].get<double>();
      d_precise = std::max(d_precise, std::fabs(a[last * V + id] - v));
      d_fast = std::max(d_fast, std::fabs(b.last_logits[id] - v));
    }
    EXPECT_LT(d_precise, kPreciseBound);
    EXPECT_LT(d_fast, kFastBound);
    const size_t vs_hf = common_prefix(b.greedy, hf), vs_lc = common_prefix(b.greedy, lc);
    size_t safe = 0;
    while (safe < margins.size() && margins[safe] >= kFastSafeMargin) ++safe;
    EXPECT_GE(vs_hf, safe) << "fast greedy flipped a token HF chose by a margin >= " << kFastSafeMargin;
    worst_precise = std::max(worst_precise, d_precise);
    worst_fast = std::max(worst_fast, d_fast);
    worst_fast_all = std::max(worst_fast_all, d_fast_all);
    fast_agree += vs_hf;
    fast_identical += vs_hf == hf.size();
    std::printf(
        "real model %-40s precise: greedy %s, max|Δ| top-32 %.2e | fast: max|Δ| %.3f (vs precise, all logits %.3f), "
        "greedy = HF for %zu (floor %zu), = llama.cpp for %zu of %d\n",
        nlohmann::json(text.substr(0, 36)).dump().c_str(), greedy_precise == hf ? "identical" : "DIFFERENT", d_precise,
        d_fast, d_fast_all, vs_hf, safe, vs_lc, n_new);
  }
  EXPECT_GE(fast_agree, kFastGreedyFloor) << "fast greedy tokens equal to HF's, before the first difference";
  RecordProperty("max_abs_logit_diff_precise", std::to_string(worst_precise));
  RecordProperty("max_abs_logit_diff_fast", std::to_string(worst_fast));
  std::printf(
      "real model: max |Δlogit| vs HF (top-32 at the last prompt position): precise %.2e, fast %.3f; fast vs precise "
      "(all logits, all positions) %.3f; fast greedy = HF for %zu of %zu tokens, identical on %d of %zu prompts\n",
      worst_precise, worst_fast, worst_fast_all, fast_agree, ref["prompts"].size() * static_cast<size_t>(n_new),
      fast_identical, ref["prompts"].size());
}

}  // namespace
}  // namespace gemma

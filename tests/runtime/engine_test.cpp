// The step-wise engine: sequences batched together give what each gives alone; stop strings;
// continuing, rolling back and copying cached sequences give what a cold run gives.
#include "runtime/engine.h"

#include <functional>
#include <map>

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"
#include "runtime/stop_strings.h"
#include "support/test_support.h"

namespace gemma {
namespace {

// What one request produced: its tokens and the logits each was sampled from.
struct Trace {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;
  FinishReason reason = FinishReason::kError;
  bool done = false;
};

Request traced(std::vector<int32_t> prompt, int max_tokens, Trace& t) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.on_token = [&t](const TokenEvent& ev) {
    t.ids.push_back(ev.id);
    t.logits.emplace_back(ev.logits.begin(), ev.logits.end());
    return true;
  };
  r.on_done = [&t](const RequestResult& res) {
    t.reason = res.reason;
    t.done = true;
    EXPECT_TRUE(res.status.ok()) << res.status.error().message;
  };
  return r;
}

std::vector<int32_t> prompt_of(int n, int salt) {
  std::vector<int32_t> p{2};  // <bos>
  for (int i = 1; i < n; ++i) p.push_back(4 + (i * 37 + salt * 11) % 250);
  return p;
}

struct Mode {
  const char* file;
  bool precise;
};

class EngineTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    auto m = Model::load(test::fixture(std::string("models/gemma3_tiny/") + GetParam().file));
    ASSERT_TRUE(m.ok()) << m.error().message;
    model_ = std::move(*m);
  }
  // Results must not depend on the batch. In fast mode the block-quantized weights' kernels sum
  // every token's blocks in one order whatever the call holds (kernels/cpu/block_traits_avx2.h),
  // so a sequence batched with others, or a prompt split into other chunks, gives bit-identical
  // logits (exact()). Float weights, and the precise path (float32 activations against
  // dequantized rows), still sum in an order that depends on how many tokens the call has: a
  // float32 rounding difference, about 7e-7 of a product (tolerance below). Float weights in
  // fast mode keep the KV cache in float16, where such a difference can move a value by one f16
  // step and a logit of this random tiny model by up to ~0.05; there the test holds the greedy
  // tokens identical and the logits within 0.1.
  bool precise() const { return GetParam().precise; }
  bool exact() const { return !precise() && std::string(GetParam().file).find("q8_0") != std::string::npos; }
  float tolerance() const { return precise() ? 1e-4f : 0.1f; }
  CpuOptions cpu() const { return CpuOptions{precise()}; }
  DType kv() const { return precise() ? DType::F32 : DType::F16; }

  Trace alone(const std::vector<int32_t>& prompt, int max_tokens) {
    CpuBackend be(1, cpu());
    EngineOptions o;
    o.n_ctx = 128;
    o.step_tokens = 8;
    o.kv_type = kv();
    auto e = Engine::create(*model_, be, o);
    Trace t;
    EXPECT_TRUE(e.ok()) << e.error().message;  // ASSERT_* cannot return a value
    if (!e.ok()) return t;
    (*e)->submit(traced(prompt, max_tokens, t));
    EXPECT_TRUE((*e)->run_to_completion().ok());
    return t;
  }

  void expect_same(const Trace& a, const Trace& b, const std::string& what) {
    ASSERT_EQ(a.ids, b.ids) << what;
    ASSERT_EQ(a.logits.size(), b.logits.size()) << what;
    for (size_t i = 0; i < a.logits.size(); ++i)
      for (size_t v = 0; v < a.logits[i].size(); ++v) {
        if (exact()) {
          ASSERT_EQ(a.logits[i][v], b.logits[i][v]) << what << " token " << i << " logit " << v;
          continue;
        }
        ASSERT_NEAR(a.logits[i][v], b.logits[i][v], tolerance() * (1 + std::abs(a.logits[i][v])))
            << what << " token " << i << " logit " << v;
      }
  }

  std::unique_ptr<Model> model_;
};

TEST_P(EngineTest, BatchedSequencesEqualSequencesAlone) {
  // Prompts longer than the 8-token step and the 16-position sliding window, so prefill takes
  // several steps, rings wrap, and decode tokens share steps with other sequences' prefill.
  const std::vector<std::vector<int32_t>> prompts = {prompt_of(21, 1), prompt_of(5, 2), prompt_of(40, 3),
                                                     prompt_of(13, 4), prompt_of(30, 5)};
  const std::vector<int> max_tokens = {24, 6, 20, 30, 16};
  std::vector<Trace> ref;
  for (size_t i = 0; i < prompts.size(); ++i) ref.push_back(alone(prompts[i], max_tokens[i]));

  CpuBackend be(2, cpu());
  EngineOptions o;
  o.kv_type = kv();
  o.n_ctx = 128;
  o.max_sequences = 3;  // five requests through three slots: some wait for a finished one
  o.step_tokens = 8;
  auto e = Engine::create(*model_, be, o);
  ASSERT_TRUE(e.ok()) << e.error().message;
  std::vector<Trace> got(prompts.size() + 1);
  (*e)->submit(traced(prompts[0], max_tokens[0], got[0]));
  (*e)->submit(traced(prompts[1], max_tokens[1], got[1]));
  // A request that is cancelled mid-batch: its neighbours must not notice.
  const RequestId doomed = (*e)->submit(traced(prompt_of(17, 9), 50, got[5]));
  int steps = 0;
  for (; steps < 4; ++steps) ASSERT_TRUE((*e)->step().ok());
  (*e)->submit(traced(prompts[2], max_tokens[2], got[2]));  // arrive while others decode
  for (; steps < 9; ++steps) ASSERT_TRUE((*e)->step().ok());
  (*e)->cancel(doomed);
  (*e)->submit(traced(prompts[3], max_tokens[3], got[3]));
  (*e)->submit(traced(prompts[4], max_tokens[4], got[4]));
  ASSERT_TRUE((*e)->run_to_completion().ok());
  EXPECT_EQ(got[5].reason, FinishReason::kCancelled);
  EXPECT_GT(got[5].ids.size(), 0u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_TRUE(got[i].done);
    EXPECT_EQ(got[i].reason, FinishReason::kLength);
    expect_same(ref[i], got[i], "request " + std::to_string(i));
  }
  EXPECT_EQ((*e)->n_free_slots(), 3);
}

TEST_P(EngineTest, ContinuedSequenceEqualsColdRun) {
  // A chat-like continuation: run a prompt, keep it, then extend it with more tokens. The
  // continuation must produce what a cold run of the whole token sequence produces.
  CpuBackend be(2, cpu());
  EngineOptions o;
  o.kv_type = kv();
  o.n_ctx = 128;
  o.max_sequences = 2;
  o.step_tokens = 8;
  auto e = Engine::create(*model_, be, o);
  ASSERT_TRUE(e.ok());
  Trace first;
  Request r1 = traced(prompt_of(30, 7), 10, first);
  r1.keep = true;
  const RequestId id1 = (*e)->submit(std::move(r1));
  ASSERT_TRUE((*e)->run_to_completion().ok());
  const std::vector<int32_t> cached = (*e)->sequence_tokens(id1);
  // The last generated token was never fed: the cache holds the prompt and 9 of the 10 tokens.
  ASSERT_EQ(cached.size(), 30u + 9u);

  const std::vector<int32_t> more = {40, 41, 42};
  Trace cont;
  Request r2 = traced(more, 12, cont);
  r2.continue_from = id1;
  r2.keep = true;
  const RequestId id2 = (*e)->submit(std::move(r2));
  ASSERT_TRUE((*e)->run_to_completion().ok());

  std::vector<int32_t> whole = cached;
  whole.push_back(first.ids.back());
  whole.insert(whole.end(), more.begin(), more.end());
  expect_same(alone(whole, 12), cont, "continuation");

  // Roll back 6 tokens (within the step budget, so sliding layers still hold what they need) and
  // extend with different tokens: equal to a cold run of the shortened history + the new tokens.
  const std::vector<int32_t> hist = (*e)->sequence_tokens(id2);
  const int cut = static_cast<int>(hist.size()) - 6;
  const std::vector<int32_t> other = {50, 51};
  Trace rolled;
  Request r3 = traced(other, 8, rolled);
  r3.continue_from = id2;
  r3.truncate_to = cut;
  r3.keep = true;
  const RequestId id3 = (*e)->submit(std::move(r3));
  ASSERT_TRUE((*e)->run_to_completion().ok());
  std::vector<int32_t> cold(hist.begin(), hist.begin() + cut);
  cold.insert(cold.end(), other.begin(), other.end());
  expect_same(alone(cold, 8), rolled, "rollback");

  // A cached prefix copied into a new sequence (the kept one stays as it is).
  const std::vector<int32_t> base = (*e)->sequence_tokens(id3);
  const int reuse = static_cast<int>(base.size()) - 3;
  Trace copied;
  Request r4 = traced({60, 61, 62, 63}, 8, copied);
  r4.prefix_from = id3;
  r4.prefix_len = reuse;
  (*e)->submit(std::move(r4));
  ASSERT_TRUE((*e)->run_to_completion().ok());
  std::vector<int32_t> cold2(base.begin(), base.begin() + reuse);
  for (int32_t t : {60, 61, 62, 63}) cold2.push_back(t);
  expect_same(alone(cold2, 8), copied, "prefix copy");
  EXPECT_EQ((*e)->sequence_tokens(id3), base);

  // Deeper than the rings keep: refused with a clear error, not wrong output.
  Trace too_deep;
  Request r5 = traced({70}, 4, too_deep);
  r5.continue_from = id3;
  r5.truncate_to = 2;
  Status refused;
  r5.on_done = [&](const RequestResult& res) { refused = res.status; };
  (*e)->submit(std::move(r5));
  ASSERT_TRUE((*e)->run_to_completion().ok());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("roll a sequence back"), std::string::npos) << refused.error().message;
}

TEST_P(EngineTest, PrefixCacheHitsEqualColdRuns) {
  // The prefix cache: finished sequences stay in their slots and a request sharing a prefix with
  // one reuses it. Every hit must give exactly what a cold run of the same prompt gives.
  CpuBackend be(2, cpu());
  EngineOptions o;
  o.kv_type = kv();
  o.n_ctx = 128;
  o.max_sequences = 2;
  o.step_tokens = 8;
  o.max_rollback = 40;  // lets a reuse cut up to 40 tokens off on the 16-position sliding layer
  o.prefix_cache = true;
  auto e = Engine::create(*model_, be, o);
  ASSERT_TRUE(e.ok());
  // Runs a request through the caching engine; returns its trace and how many prompt tokens
  // came from the cache.
  auto run = [&](const std::vector<int32_t>& prompt, int n, RequestId* id = nullptr) {
    auto t = std::make_unique<Trace>();
    Request r = traced(prompt, n, *t);
    int cached = -1;
    auto done = r.on_done;
    r.on_done = [&cached, done](const RequestResult& res) {
      cached = res.stats.n_cached;
      done(res);
    };
    const RequestId rid = (*e)->submit(std::move(r));
    if (id) *id = rid;
    EXPECT_TRUE((*e)->run_to_completion().ok());
    return std::make_pair(std::move(t), cached);
  };

  RequestId id1 = 0, id2 = 0, id3 = 0;
  const std::vector<int32_t> p1 = prompt_of(30, 7);
  auto [t1, c1] = run(p1, 10, &id1);
  EXPECT_EQ(c1, 0);
  EXPECT_EQ((*e)->n_cached(), 1);
  const std::vector<int32_t> h1 = (*e)->sequence_tokens(id1);  // prompt + 9 fed tokens
  ASSERT_EQ(h1.size(), 39u);

  // Turn 2 of a chat: the client resends everything plus a new turn. Only the new part is fed.
  std::vector<int32_t> p2 = p1;
  p2.insert(p2.end(), t1->ids.begin(), t1->ids.end());
  for (int32_t x : {40, 41, 42}) p2.push_back(x);
  auto [t2, c2] = run(p2, 12, &id2);
  EXPECT_EQ(c2, 39);
  expect_same(alone(p2, 12), *t2, "turn 2");
  EXPECT_TRUE((*e)->sequence_tokens(id1).empty());  // moved into turn 2's sequence

  // The last 5 tokens re-tokenized differently: the cached sequence is rolled back 5 tokens.
  const std::vector<int32_t> h2 = (*e)->sequence_tokens(id2);
  std::vector<int32_t> p3(h2.begin(), h2.end() - 5);
  for (int32_t x : {50, 51}) p3.push_back(x);
  auto [t3, c3] = run(p3, 8, &id3);
  EXPECT_EQ(c3, static_cast<int>(h2.size()) - 5);
  expect_same(alone(p3, 8), *t3, "rolled back");

  // Another conversation sharing only the first 20 tokens: the prefix is copied (a long tail
  // would be cut away) and the cached sequence stays whole for its own conversation.
  const std::vector<int32_t> h3 = (*e)->sequence_tokens(id3);
  ASSERT_GT(h3.size(), 20u + 32u);
  ASSERT_LE(h3.size(), 20u + 40u);
  std::vector<int32_t> p4(h3.begin(), h3.begin() + 20);
  for (int32_t x : {60, 61, 62, 63}) p4.push_back(x);
  auto [t4, c4] = run(p4, 8);
  EXPECT_EQ(c4, 20);
  expect_same(alone(p4, 8), *t4, "copied prefix");
  EXPECT_EQ((*e)->sequence_tokens(id3), h3);
  EXPECT_EQ((*e)->n_cached(), 2);

  // Sharing only <bos> and a few tokens with sequences much longer than the rings can roll back:
  // no reuse, and both slots are cache entries, so the least recently used one is freed for it.
  const std::vector<int32_t> p5 = prompt_of(12, 99);
  auto [t5, c5] = run(p5, 6);
  EXPECT_EQ(c5, 0);
  expect_same(alone(p5, 6), *t5, "evicting");
  EXPECT_EQ((*e)->n_cached(), 2);
  EXPECT_EQ((*e)->n_free_slots(), 0);

  // A prompt that is wholly cached still gets fresh logits: its last token is fed again.
  const std::vector<int32_t> h5(p5.begin(), p5.end());
  auto [t6, c6] = run(h5, 6);
  EXPECT_EQ(c6, 11);
  expect_same(alone(h5, 6), *t6, "whole prompt cached");
}

INSTANTIATE_TEST_SUITE_P(Weights, EngineTest,
                         ::testing::Values(Mode{"model.q8_0.gguf", true}, Mode{"model.f32.gguf", true},
                                           Mode{"model.q8_0.gguf", false}, Mode{"model.f32.gguf", false}),
                         [](const auto& param_info) {
                           return std::string(param_info.param.precise ? "precise_" : "fast_") +
                                  (std::string(param_info.param.file).find("q8_0") != std::string::npos ? "q8_0"
                                                                                                        : "f32");
                         });

TEST(Engine, RefusesBadRequestsWithoutStoppingOthers) {
  auto m = Model::load(test::fixture("models/gemma3_tiny/model.q8_0.gguf"));
  ASSERT_TRUE(m.ok());
  CpuBackend be(1);
  EngineOptions o;
  o.n_ctx = 32;
  o.max_sequences = 2;
  o.step_tokens = 8;
  auto e = Engine::create(**m, be, o);
  ASSERT_TRUE(e.ok());
  std::map<std::string, Status> results;
  auto submit = [&](const std::string& name, std::vector<int32_t> prompt, int max_tokens) {
    Request r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.on_done = [&results, name](const RequestResult& res) { results[name] = res.status; };
    (*e)->submit(std::move(r));
  };
  submit("good", prompt_of(6, 1), 4);
  submit("too long", prompt_of(40, 2), 4);
  submit("bad id", {2, 100000}, 4);
  submit("empty", {}, 4);
  submit("negative", {2}, -1);
  ASSERT_TRUE((*e)->run_to_completion().ok());
  ASSERT_EQ(results.size(), 5u);
  EXPECT_TRUE(results["good"].ok());
  EXPECT_NE(results["too long"].error().message.find("longer than the context"), std::string::npos);
  EXPECT_NE(results["bad id"].error().message.find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(results["empty"].error().message.find("no prompt tokens"), std::string::npos);
  EXPECT_NE(results["negative"].error().message.find("max_tokens"), std::string::npos);
  EXPECT_EQ((*e)->n_free_slots(), 2);
}

// Image soft tokens: runs of the prompt given as embeddings, attending each other both ways. The
// engine must feed each run in one chunk even where the step budget would cut it, and give what
// one forward pass over the whole prompt gives (the reference: every row as an embedding, the
// runs as bidirectional spans, nothing chunked).
TEST(Engine, EmbeddedRunsAreNeverCutAndEqualOneUnchunkedPass) {
  auto m = Model::load(test::fixture("models/gemma3_tiny/model.f32.gguf"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  const Model& model = **m;
  const ModelConfig& c = model.config();
  const size_t H = static_cast<size_t>(c.hidden), V = static_cast<size_t>(c.vocab_size);
  const std::vector<int32_t> prompt = prompt_of(22, 6);
  // Three "images": rows [0, 3), [5, 11) and [13, 17). With 8-token steps a plain split would cut
  // the second at 8; with a neighbour's 7-token prompt in the first step, only one token of that
  // step's budget is left when the first image is due.
  const std::vector<std::pair<int, int>> runs = {{0, 3}, {5, 6}, {13, 4}};
  std::vector<PromptEmbeddings> images;
  uint32_t state = 12345;
  for (auto [offset, rows] : runs) {
    PromptEmbeddings e;
    e.offset = offset;
    for (size_t i = 0; i < static_cast<size_t>(rows) * H; ++i) {
      state = state * 1664525u + 1013904223u;
      e.values.push_back(static_cast<float>(static_cast<int32_t>(state >> 8) % 2001 - 1000) * 1e-3f);
    }
    images.push_back(std::move(e));
  }

  // Reference logits of the prompt's last position.
  CpuBackend be(1, CpuOptions{true});
  std::vector<float> ref;
  {
    auto cache = KvCache::create(be, c, 64, 64, DType::F32);
    ASSERT_TRUE(cache.ok());
    ForwardBuffers buf = test::forward_buffers(be, c, 64);
    std::vector<float> x(prompt.size() * H);
    ASSERT_TRUE(be.embed(model.weights().embedding, prompt, c.embed_scale, x.data()).ok());
    std::vector<PositionSpan> spans;
    for (const PromptEmbeddings& e : images) {
      std::copy(e.values.begin(), e.values.end(), x.begin() + static_cast<int64_t>(e.offset) * c.hidden);
      spans.push_back({e.offset, e.offset + static_cast<int32_t>(e.values.size() / H)});
    }
    SequenceChunk chunk(cache->get(), {}, 1);
    chunk.embeddings = x;
    chunk.bidirectional = spans;
    ASSERT_TRUE(model.forward({&chunk, 1}, be, buf, ref).ok());
    ASSERT_EQ(ref.size(), V);
  }

  auto run = [&](int step_tokens, int max_sequences, bool with_neighbours) {
    EngineOptions o;
    o.n_ctx = 96;
    o.step_tokens = step_tokens;
    o.max_sequences = max_sequences;
    o.kv_type = DType::F32;
    auto e = Engine::create(model, be, o);
    Trace t, n1, n2;
    EXPECT_TRUE(e.ok()) << e.error().message;
    if (!e.ok()) return t;
    if (with_neighbours)  // other sequences prefilling and decoding around the images
      (*e)->submit(traced(prompt_of(7, 1), 30, n1));
    Request r = traced(prompt, 12, t);
    r.embeddings = images;
    (*e)->submit(std::move(r));
    if (with_neighbours) (*e)->submit(traced(prompt_of(19, 2), 10, n2));
    EXPECT_TRUE((*e)->run_to_completion().ok());
    EXPECT_EQ(t.reason, FinishReason::kLength);
    return t;
  };
  const Trace whole = run(64, 1, false), chunked = run(8, 1, false), batched = run(8, 3, true);
  ASSERT_EQ(whole.ids.size(), 12u);
  for (size_t v = 0; v < V; ++v) ASSERT_NEAR(whole.logits[0][v], ref[v], 1e-4f * (1 + std::abs(ref[v]))) << v;
  for (const Trace* t : {&chunked, &batched}) {
    ASSERT_EQ(t->ids, whole.ids);
    for (size_t i = 0; i < whole.logits.size(); ++i)
      for (size_t v = 0; v < V; ++v)
        ASSERT_NEAR(t->logits[i][v], whole.logits[i][v], 1e-4f * (1 + std::abs(whole.logits[i][v]))) << i << " " << v;
  }
  // A cut image would differ: positions 5..7 would not see 8..10 (a check that the test can fail).
  std::vector<float> cut;
  {
    auto cache = KvCache::create(be, c, 64, 64, DType::F32);
    ASSERT_TRUE(cache.ok());
    ForwardBuffers buf = test::forward_buffers(be, c, 64);
    std::vector<float> x(prompt.size() * H);
    ASSERT_TRUE(be.embed(model.weights().embedding, prompt, c.embed_scale, x.data()).ok());
    for (const PromptEmbeddings& e : images)
      std::copy(e.values.begin(), e.values.end(), x.begin() + static_cast<int64_t>(e.offset) * c.hidden);
    const std::vector<PositionSpan> first = {{0, 3}, {5, 8}}, rest = {{8, 11}, {13, 17}};
    SequenceChunk a(cache->get(), {}, 0), b(cache->get(), {}, 1);
    a.embeddings = std::span<const float>(x).first(8 * H);
    a.bidirectional = first;
    b.embeddings = std::span<const float>(x).subspan(8 * H);
    b.bidirectional = rest;
    ASSERT_TRUE(model.forward({&a, 1}, be, buf, cut).ok());
    ASSERT_TRUE(model.forward({&b, 1}, be, buf, cut).ok());
  }
  float max_diff = 0;
  for (size_t v = 0; v < V; ++v) max_diff = std::max(max_diff, std::abs(cut[v] - ref[v]));
  EXPECT_GT(max_diff, 1e-3f);
}

TEST(Engine, RefusesEmbeddedRunsItCannotKeepWhole) {
  auto m = Model::load(test::fixture("models/gemma3_tiny/model.q8_0.gguf"));
  ASSERT_TRUE(m.ok());
  const size_t H = static_cast<size_t>((*m)->config().hidden);
  CpuBackend be(1);
  EngineOptions o;
  o.n_ctx = 64;
  o.max_sequences = 3;
  o.step_tokens = 8;  // a run may hold at most 8 - 2 tokens: the others' decode tokens must fit too
  auto e = Engine::create(**m, be, o);
  ASSERT_TRUE(e.ok());
  std::map<std::string, Status> results;
  auto submit = [&](const std::string& name, std::vector<PromptEmbeddings> runs,
                    std::function<void(Request&)> edit = {}) {
    Request r;
    r.prompt = prompt_of(16, 3);
    r.max_tokens = 2;
    r.embeddings = std::move(runs);
    r.keep = name == "kept";
    if (edit) edit(r);
    r.on_done = [&results, name](const RequestResult& res) { results[name] = res.status; };
    return (*e)->submit(std::move(r));
  };
  auto rows = [&](int offset, int n) {
    return PromptEmbeddings{offset, std::vector<float>(static_cast<size_t>(n) * H, 0.01f)};
  };
  const RequestId kept = submit("kept", {rows(4, 6)});
  submit("too big", {rows(2, 7)});
  submit("ragged", {PromptEmbeddings{2, std::vector<float>(H + 1, 0.f)}});
  submit("overlap", {rows(2, 4), rows(5, 2)});
  submit("outside", {rows(14, 4)});
  ASSERT_TRUE((*e)->run_to_completion().ok());
  submit("cut inside", {}, [&](Request& r) {
    r.continue_from = kept;
    r.truncate_to = 7;
  });
  submit("prefix inside", {}, [&](Request& r) {
    r.prefix_from = kept;
    r.prefix_len = 5;
  });
  ASSERT_TRUE((*e)->run_to_completion().ok());
  ASSERT_EQ(results.size(), 7u);
  EXPECT_TRUE(results["kept"].ok());
  EXPECT_EQ(results["too big"].error().kind, ErrorKind::kResourceExhausted);
  for (const char* name : {"ragged", "overlap", "outside", "cut inside", "prefix inside"})
    EXPECT_EQ(results[name].error().kind, ErrorKind::kInvalidArgument) << name << ": " << results[name].error().message;
  EXPECT_NE(results["cut inside"].error().message.find("inside the embedded run [4, 10)"), std::string::npos);
}

TEST(Engine, ContextFullEndsTheRequest) {
  auto m = Model::load(test::fixture("models/gemma3_tiny/model.q8_0.gguf"));
  ASSERT_TRUE(m.ok());
  CpuBackend be(1);
  EngineOptions o;
  o.n_ctx = 12;
  auto e = Engine::create(**m, be, o);
  ASSERT_TRUE(e.ok());
  Trace t;
  (*e)->submit(traced(prompt_of(8, 3), 100, t));
  ASSERT_TRUE((*e)->run_to_completion().ok());
  EXPECT_EQ(t.reason, FinishReason::kContext);
  EXPECT_EQ(t.ids.size(), 5u);  // positions 8..11 are fed, the 5th token has no room
}

TEST(StopStrings, MatchAcrossTokensAndNeverEmit) {
  StopStringMatcher m({"</end>", "STOP"});
  std::string out;
  for (const char* piece : {"Hello <", "/e", "nd> never"}) out += m.push(piece);
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(out, "Hello ");
  EXPECT_EQ(m.push("more"), "");

  StopStringMatcher n({"</end>"});
  std::string held = n.push("a </");  // "</" could start the stop string: held back
  EXPECT_EQ(held, "a ");
  held += n.push("b");  // it didn't: released
  EXPECT_EQ(held, "a </b");
  EXPECT_EQ(n.push("x <"), "x ");
  EXPECT_EQ(n.flush(), "<");  // generation ended: the held text belongs to the output
  EXPECT_FALSE(n.matched());

  StopStringMatcher none({});
  EXPECT_EQ(none.push("anything"), "anything");
}

}  // namespace
}  // namespace gemma

namespace gemma {
namespace {

// Every KV cache type, in precise mode on float32 weights so the cache is the only rounding: the
// first token's logits stay near a float32 cache's by what the type's rounding of K and V allows
// (f16 keeps 11 significant bits, bf16 8, q8_0 a step of 1/127 of each block's largest value),
// and differ from it at all (the type is really used). Measured: 4e-4, 5e-3 and 9e-3 of the largest
// logit; the bounds leave 2.5-4x.
TEST(Engine, EveryKvCacheTypeStaysNearFloat32) {
  auto m = Model::load(test::fixture("models/gemma3_tiny/model.f32.gguf"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto first_logits = [&](DType kv) {
    CpuBackend be(1, CpuOptions{true});
    EngineOptions o;
    o.n_ctx = 64;
    o.step_tokens = 8;
    o.kv_type = kv;
    auto e = Engine::create(**m, be, o);
    EXPECT_TRUE(e.ok()) << e.error().message;  // ASSERT_* cannot return a value
    if (!e.ok()) return std::vector<float>{};
    Trace t;
    (*e)->submit(traced(prompt_of(30, 4), 2, t));
    EXPECT_TRUE((*e)->run_to_completion().ok());
    EXPECT_TRUE(t.done && !t.logits.empty());
    return t.logits.empty() ? std::vector<float>{} : t.logits[0];
  };
  const std::vector<float> exact = first_logits(DType::F32);
  ASSERT_FALSE(exact.empty());
  float scale = 0;
  for (float v : exact) scale = std::max(scale, std::abs(v));
  for (auto [kv, bound] : {std::pair{DType::F16, 1.5e-3f}, {DType::BF16, 2e-2f}, {DType::Q8_0, 3e-2f}}) {
    const std::vector<float> got = first_logits(kv);
    ASSERT_EQ(got.size(), exact.size());
    float worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - exact[i]));
    RecordProperty(std::string("worst_over_scale_") + std::string(dtype_name(kv)), std::to_string(worst / scale));
    EXPECT_GT(worst, 0.0f) << dtype_name(kv) << " cache gave float32's logits exactly: was it used?";
    EXPECT_LE(worst, bound * scale) << dtype_name(kv);
  }
}

}  // namespace
}  // namespace gemma

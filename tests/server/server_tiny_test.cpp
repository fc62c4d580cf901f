// The HTTP server on the tiny random-weight Gemma 3 (tests/fixtures/models/gemma3_tiny): fast
// enough for the sanitizer build, so the request parsing, SSE streaming, batching, prefix-cache
// and error paths run under AddressSanitizer and UndefinedBehaviorSanitizer too. Its vocabulary
// has byte pieces but no chat-turn tokens, so it serves completions; the chat route is covered
// on the real model (server_test.cpp).
#include <numeric>
#include <thread>

#include <gtest/gtest.h>

#include "server_harness.h"
#include "support/test_support.h"

namespace gemma::server {
namespace {

using nlohmann::json;
using namespace test_harness;

const Model& tiny_model() {
  static std::unique_ptr<Model> m = [] {
    auto r = Model::load(test::fixture("models/gemma3_tiny/model.f32.gguf"));
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? std::move(*r) : nullptr;
  }();
  return *m;
}

TEST(ServerTiny, CompletionsStreamedOrNotEqualTheEngineAlone) {
  const Model& m = tiny_model();
  const std::string prompt = "abc def ghi";
  auto ids = render_text(*m.tokenizer(), prompt);
  ASSERT_TRUE(ids.ok());
  const std::string want = engine_alone(m, *ids, 24);
  Running s(m, 2);
  auto c = s.client();
  const json body = {{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}, {"logprobs", 2}};
  const json r = post(c, "/v1/completions", body);
  EXPECT_EQ(r["choices"][0]["text"], want);
  EXPECT_EQ(r["choices"][0]["logprobs"]["tokens"].size(), r["usage"]["completion_tokens"].get<size_t>());
  json sb = body;
  sb["stream"] = true;
  bool done = false;
  std::string text;
  for (const json& ev : stream(c, "/v1/completions", sb, &done))
    if (!ev["choices"].empty()) text += ev["choices"][0]["text"].get<std::string>();
  EXPECT_TRUE(done);
  EXPECT_EQ(text, want);
}

TEST(ServerTiny, ConcurrentRequestsAndPrefixHitsEqualColdRuns) {
  const Model& m = tiny_model();
  // Prompts sharing a long prefix: with the cache on, later ones reuse earlier ones' rows (moved
  // or copied), and every reply still equals a cold engine's.
  const std::string base = "the quick brown fox jumps over the lazy dog and then ";
  const std::vector<std::string> prompts = {base + "runs", base + "sleeps", base + "eats", base + "runs far",
                                            "something else entirely"};
  std::vector<std::string> want;
  for (const std::string& p : prompts) want.push_back(engine_alone(m, *render_text(*m.tokenizer(), p), 16));
  Running s(m, 2, {}, /*prefix_cache=*/true);
  std::vector<std::string> got(prompts.size());
  std::vector<int> cached(prompts.size(), 0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      auto c = s.client();
      const json r = post(c, "/v1/completions", {{"prompt", prompts[i]}, {"max_tokens", 16}, {"temperature", 0}});
      got[i] = r["choices"][0]["text"];
      cached[i] = r["usage"]["prompt_tokens_details"]["cached_tokens"];
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << prompts[i];
  // Sequentially now: which entries the concurrent phase left depends on timing (two slots, LRU),
  // but after a prompt has run once, running it again reuses all but its last token.
  auto c = s.client();
  const json body = {{"prompt", prompts[0]}, {"max_tokens", 16}, {"temperature", 0}};
  EXPECT_EQ(post(c, "/v1/completions", body)["choices"][0]["text"], want[0]);
  const json again = post(c, "/v1/completions", body);
  EXPECT_EQ(again["choices"][0]["text"], want[0]);
  EXPECT_EQ(again["usage"]["prompt_tokens_details"]["cached_tokens"], again["usage"]["prompt_tokens"].get<int>() - 1);
  EXPECT_GT(std::accumulate(cached.begin(), cached.end(), 0), 0);  // the concurrent phase hit too
}

TEST(ServerTiny, BadRequestsEndOnlyThemselves) {
  const Model& m = tiny_model();
  Running s(m, 1);
  auto c = s.client();
  auto raw = [&](const std::string& body) { return c.Post("/v1/completions", body, "application/json"); };
  EXPECT_EQ(raw("{not json")->status, 400);
  EXPECT_EQ(raw("[1,2]")->status, 400);
  EXPECT_EQ(raw(std::string("{\"prompt\": \"\xff\xfe\"}"))->status, 400);
  EXPECT_EQ(raw(json{{"prompt", "hi"}, {"max_tokens", -1}}.dump())->status, 400);
  EXPECT_EQ(raw(json{{"prompt", std::string(5000, 'a')}, {"max_tokens", 4}}.dump())->status, 400);  // over 512
  EXPECT_EQ(raw(json{{"prompt", json::array({999999})}}.dump())->status, 400);  // id outside the vocabulary
  EXPECT_EQ(c.Get("/v1/nowhere")->status, 404);
  // A stream the client abandons at once.
  post_streaming(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 200}, {"stream", true}},
                 [](const char*, size_t) { return false; });
  const json ok = post(c, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(ok["usage"]["completion_tokens"], 3);
  const json tok = post(c, "/tokenize", {{"content", "abc"}});
  EXPECT_FALSE(tok["tokens"].empty());
}

}  // namespace
}  // namespace gemma::server

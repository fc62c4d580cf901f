// The HTTP server end to end on the real Gemma 3 270M: replies equal the engine's own greedy
// output, alone and with other requests in the same batches; streams concatenate to the same
// text; stop strings never leak; bad requests, a full queue, a missing API key and a client that
// hangs up each end that request only.
#include "server/server.h"

#include <httplib.h>

#include <atomic>
#include <functional>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/prompt.h"
#include "server_harness.h"
#include "support/test_support.h"

namespace gemma::server {
namespace {

using nlohmann::json;
using namespace test_harness;

// One model for the whole suite (loading it per test would dominate).
const Model* real_model() {
  static std::unique_ptr<Model> m = [] {
    std::unique_ptr<Model> out;
    if (test::real_model_path().empty()) return out;
    auto r = Model::load(test::real_model_path());
    if (r.ok()) out = std::move(*r);
    return out;
  }();
  return m.get();
}

TEST(Server, ChatAndCompletionEqualTheEngineAloneStreamedOrNot) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  Running s(m, 2);
  auto c = s.client();
  const std::vector<ChatMessage> msgs = {{"system", "Answer briefly."}, {"user", "Name a colour."}};
  auto ids = render_chat_tokens(*m.tokenizer(), msgs);
  ASSERT_TRUE(ids.ok());
  const std::string want = engine_alone(m, *ids, 12);
  const json body = {
      {"model", "gemma-test"},
      {"messages",
       {{{"role", "system"}, {"content", "Answer briefly."}}, {{"role", "user"}, {"content", "Name a colour."}}}},
      {"max_tokens", 12},
      {"temperature", 0}};
  const json r = post(c, "/v1/chat/completions", body);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["model"], "gemma-test");
  ASSERT_EQ(r["choices"].size(), 1u);
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], want);
  EXPECT_EQ(r["usage"]["prompt_tokens"], ids->size());
  EXPECT_EQ(r["usage"]["total_tokens"],
            r["usage"]["prompt_tokens"].get<int>() + r["usage"]["completion_tokens"].get<int>());

  json sbody = body;
  sbody["stream"] = true;
  sbody["stream_options"] = {{"include_usage", true}};
  bool done = false;
  const std::vector<json> events = stream(c, "/v1/chat/completions", sbody, &done);
  ASSERT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    EXPECT_TRUE(events[i]["choices"][0]["finish_reason"].is_null());
    text += events[i]["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text, want);
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], r["choices"][0]["finish_reason"]);
  EXPECT_TRUE(events.back()["choices"].empty());
  EXPECT_EQ(events.back()["usage"], r["usage"]);

  auto text_ids = render_text(*m.tokenizer(), "The history of the bicycle begins in");
  ASSERT_TRUE(text_ids.ok());
  const std::string want2 = engine_alone(m, *text_ids, 16);
  const json comp = post(
      c, "/v1/completions",
      {{"prompt", "The history of the bicycle begins in"}, {"max_tokens", 16}, {"temperature", 0}, {"echo", true}});
  EXPECT_EQ(comp["object"], "text_completion");
  EXPECT_EQ(comp["choices"][0]["text"], "The history of the bicycle begins in" + want2);
  EXPECT_EQ(comp["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(comp["usage"]["completion_tokens"], 16);
}

TEST(Server, ConcurrentRequestsEqualEachAlone) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  const std::vector<std::string> prompts = {"The capital of France is",
                                            "Water boils at",
                                            "Once upon a time, there",
                                            "The largest planet in the solar system",
                                            "In 1492,",
                                            "def fibonacci(n):"};
  std::vector<std::string> want;
  for (const std::string& p : prompts) want.push_back(engine_alone(m, *render_text(*m.tokenizer(), p), 20));
  Running s(m, 3);  // six requests through three slots: some wait, all share batches
  std::vector<std::string> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      auto c = s.client();
      const json body = {{"prompt", prompts[i]}, {"max_tokens", 20}, {"temperature", 0}};
      if (i % 2) {
        got[i] = post(c, "/v1/completions", body)["choices"][0]["text"];
      } else {
        json sb = body;
        sb["stream"] = true;
        for (const json& ev : stream(c, "/v1/completions", sb))
          if (!ev["choices"].empty()) got[i] += ev["choices"][0]["text"].get<std::string>();
      }
    });
  for (auto& t : threads) t.join();
  // Block-quantized weights in fast mode are batch-invariant (kernels), so equal means equal.
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << prompts[i];
}

// A chat whose client resends the whole history each turn: with the prefix cache on, every turn
// after the first takes most of its prompt from the cache (usage.prompt_tokens_details says how
// much) and still replies exactly what a cold engine replies to the same history.
TEST(Server, MultiTurnChatReusesThePrefixAndEqualsColdRuns) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  Running s(m, 2, {}, /*prefix_cache=*/true);
  auto c = s.client();
  std::vector<ChatMessage> history = {{"system", "Answer briefly."}};
  json messages = json::array({{{"role", "system"}, {"content", "Answer briefly."}}});
  const std::vector<std::string> questions = {"Name a colour.", "Name a fruit of that colour.", "How do you eat it?"};
  for (size_t turn = 0; turn < questions.size(); ++turn) {
    history.push_back({"user", questions[turn]});
    messages.push_back({{"role", "user"}, {"content", questions[turn]}});
    auto ids = render_chat_tokens(*m.tokenizer(), history);
    ASSERT_TRUE(ids.ok());
    const std::string want = engine_alone(m, *ids, 10);
    const json r = post(c, "/v1/chat/completions", {{"messages", messages}, {"max_tokens", 10}, {"temperature", 0}});
    const std::string got = r["choices"][0]["message"]["content"];
    EXPECT_EQ(got, want) << "turn " << turn;
    const int cached = r["usage"]["prompt_tokens_details"]["cached_tokens"];
    if (turn == 0) {
      EXPECT_EQ(cached, 0);
    } else {  // everything up to the previous reply (the template re-renders its end) is reused
      EXPECT_GT(cached, r["usage"]["prompt_tokens"].get<int>() / 2) << r["usage"].dump();
      EXPECT_LT(cached, r["usage"]["prompt_tokens"].get<int>());
    }
    history.push_back({"assistant", got});
    messages.push_back({{"role", "assistant"}, {"content", got}});
  }
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("gemma_prefix_cache_hits_total 2"), std::string::npos) << metrics;
}

TEST(Server, StopStringsEndTheReplyAndNeverLeak) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  auto ids = render_text(*m.tokenizer(), "The history of the bicycle begins in");
  const std::string full = engine_alone(m, *ids, 24);  // " the 18th century. The first bicycle ..."
  const size_t at = full.find("century");
  ASSERT_NE(at, std::string::npos) << full;
  Running s(m, 1);
  auto c = s.client();
  const json body = {{"prompt", "The history of the bicycle begins in"},
                     {"max_tokens", 24},
                     {"temperature", 0},
                     {"stop", {"centu", "zzz"}}};
  const json r = post(c, "/v1/completions", body);
  EXPECT_EQ(r["choices"][0]["text"], full.substr(0, at));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  json sb = body;
  sb["stream"] = true;
  std::string text;
  for (const json& ev : stream(c, "/v1/completions", sb))
    if (!ev["choices"].empty()) text += ev["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, full.substr(0, at));
}

TEST(Server, BadRequestsGetErrorsAndTheServerGoesOn) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  ServerOptions so;
  so.api_key = "sekret";
  Running s(m, 1, so);
  auto c = s.client();
  // /health needs no key; everything else does.
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto unauth = c.Get("/v1/models");
  ASSERT_TRUE(unauth);
  EXPECT_EQ(unauth->status, 401);
  EXPECT_EQ(json::parse(unauth->body)["error"]["type"], "invalid_request_error");
  c.set_bearer_token_auth("sekret");
  const json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "gemma-test");

  auto garbage = c.Post("/v1/chat/completions", "{not json", "application/json");
  ASSERT_TRUE(garbage);
  EXPECT_EQ(garbage->status, 400);
  EXPECT_NE(json::parse(garbage->body)["error"]["message"].get<std::string>().find("JSON"), std::string::npos);
  post(c, "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"temperature", 9}}, 400);
  post(c, "/v1/chat/completions", {{"messages", {{{"role", "assistant"}, {"content", "x"}}}}}, 400);
  post(c, "/v1/chat/completions",
       {{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", {{"url", "data:"}}}}}}}}}},
       415);
  std::string longp;
  for (int i = 0; i < 600; ++i) longp += "word ";
  const json over = post(c, "/v1/completions", {{"prompt", longp}}, 400);
  EXPECT_NE(over["error"]["message"].get<std::string>().find("context"), std::string::npos);
  // Invalid UTF-8 inside a JSON string is not JSON (RFC 8259): refused, not tokenized.
  auto bad_utf8 = c.Post("/v1/completions", "{\"prompt\": \"\xff\xfe\", \"max_tokens\": 2}", "application/json");
  ASSERT_TRUE(bad_utf8);
  EXPECT_EQ(bad_utf8->status, 400);
  auto missing = c.Get("/v1/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  const json tk = post(c, "/tokenize", {{"content", "Hello world"}});
  EXPECT_EQ(tk["count"], tk["tokens"].size());
  const json dt = post(c, "/detokenize", {{"tokens", tk["tokens"]}});
  EXPECT_EQ(dt["content"], "Hello world");
  post(c, "/detokenize", {{"tokens", {-1}}}, 400);

  // After all that, a normal request still works, and /metrics counted the statuses.
  const json ok = post(c, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(ok["usage"]["completion_tokens"], 3);
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("gemma_requests_total{status=\"400\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("gemma_time_to_first_token_seconds_count"), std::string::npos);
  EXPECT_NE(metrics.find("gemma_generation_tokens_total"), std::string::npos);
}

TEST(Server, FullQueueAnswers503AndAHangUpFreesTheSlot) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  ServerOptions so;
  so.max_queue = 0;  // one slot, no waiting room
  Running s(m, 1, so);
  // A long stream that the client abandons after a few chunks.
  std::atomic<int> chunks{0};
  std::atomic<bool> hung_up{false};
  std::thread reader([&] {
    auto c = s.client();
    const json body = {{"prompt", "Tell me a long story."}, {"max_tokens", 400}, {"temperature", 0}, {"stream", true}};
    post_streaming(c, "/v1/completions", body, [&](const char*, size_t) {
      if (++chunks < 4) return true;
      hung_up = true;
      return false;  // the client closes the connection mid-stream
    });
  });
  while (chunks == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!hung_up) {  // the slot is busy: a second request is refused with Retry-After
    auto c = s.client();
    auto res = c.Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  }
  reader.join();
  // The abandoned sequence is cancelled: the slot frees long before 400 tokens could be generated.
  auto c = s.client();
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    auto res = c.Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}.dump(), "application/json");
    ASSERT_TRUE(res);
    status = res->status;
    if (status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(status, 200);
}

// A client that gives up on a non-streamed reply (its read times out, it closes the connection)
// has its sequence cancelled within a few engine steps, not after the whole generation: the
// server counts it as 499 and the only slot serves the next request.
TEST(Server, NonStreamedHangUpIsNoticedAndFreesTheSlot) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  ServerOptions so;
  so.max_queue = 0;
  Running s(m, 1, so);
  {
    httplib::Client c("127.0.0.1", s.port);
    c.set_read_timeout(1);  // gives up long before 480 tokens (end tokens banned) are generated
    const json body = {
        {"prompt", "Count to a thousand:"}, {"max_tokens", 480}, {"logit_bias", {{"1", -100}, {"106", -100}}}};
    auto res = c.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_FALSE(res);  // timed out
  }
  auto c = s.client();
  const auto t0 = std::chrono::steady_clock::now();
  bool counted = false;
  while (!counted && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3)) {
    counted = c.Get("/metrics")->body.find("gemma_requests_total{status=\"499\"} 1") != std::string::npos;
    if (!counted) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(counted);
  const json ok = post(c, "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 2}, {"temperature", 0}});
  EXPECT_EQ(ok["usage"]["completion_tokens"], 2);
}

TEST(Server, StopEndsInFlightStreamsPromptly) {
  GEMMA_REQUIRE_REAL_MODEL();
  const Model& m = *real_model();
  auto s = std::make_unique<Running>(m, 2);
  std::atomic<int> chunks{0};
  std::thread reader([&] {
    auto c = s->client();
    const json body = {{"prompt", "Count to a thousand:"}, {"max_tokens", 480}, {"stream", true}};
    post_streaming(c, "/v1/completions", body, [&](const char*, size_t) {
      ++chunks;
      return true;
    });
  });
  while (chunks < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto t0 = std::chrono::steady_clock::now();
  s.reset();  // stop(): cancels the stream, which ends with a finish_reason, then [DONE]
  reader.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_LT(chunks.load(), 400);
}

}  // namespace
}  // namespace gemma::server

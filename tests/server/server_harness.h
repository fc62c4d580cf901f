// What the server tests share: a server on a free port with its own engine, the engine's own
// greedy output as the reference, and small HTTP helpers (plain, streamed, SSE events).
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_backend.h"
#include "runtime/prompt.h"
#include "server/server.h"

namespace gemma::server::test_harness {

using nlohmann::json;

// A server on a free port with its own engine.
struct Running {
  CpuBackend backend{2};
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Server> server;
  std::thread thread;
  int port = 0;

  Running(const Model& m, int parallel, ServerOptions so = {}, bool prefix_cache = false) {
    EngineOptions eo;
    eo.n_ctx = 512;
    eo.max_sequences = parallel;
    eo.step_tokens = 64;
    eo.prefix_cache = prefix_cache;
    auto e = Engine::create(m, backend, eo);
    EXPECT_TRUE(e.ok());
    engine = std::move(*e);
    so.port = 0;
    so.model_name = "gemma-test";
    server = std::make_unique<Server>(so);
    auto p = server->bind();
    EXPECT_TRUE(p.ok());
    port = *p;
    thread = std::thread([this] { EXPECT_TRUE(server->serve().ok()); });
    server->attach(m, *engine);
  }
  ~Running() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60);
    return c;
  }
};

// The engine's own greedy continuation of `prompt`, as text: the reference for the server.
inline std::string engine_alone(const Model& m, const std::vector<int32_t>& prompt, int max_tokens,
                                std::vector<std::string> stop = {}) {
  CpuBackend be(2);
  EngineOptions eo;
  eo.n_ctx = 512;
  eo.step_tokens = 64;
  auto e = Engine::create(m, be, eo);
  EXPECT_TRUE(e.ok());
  std::string text;
  Request r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.stop_ids = default_stop_ids(*m.tokenizer());
  r.stop_strings = std::move(stop);
  r.on_token = [&](const TokenEvent& ev) {
    text += ev.text;
    return true;
  };
  r.on_done = [&](const RequestResult& res) { text += res.tail; };
  (*e)->submit(std::move(r));
  EXPECT_TRUE((*e)->run_to_completion().ok());
  return text;
}

// POSTs body and hands each piece of the response body to `receive` (false: hang up). httplib
// 0.11's client takes a receiver only through a prepared Request.
inline httplib::Result post_streaming(httplib::Client& c, const std::string& path, const json& body,
                                      std::function<bool(const char*, size_t)> receive) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [receive](const char* data, size_t n, uint64_t, uint64_t) { return receive(data, n); };
  return c.send(req);
}

inline json post(httplib::Client& c, const std::string& path, const json& body, int expect_status = 200) {
  auto res = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(res) << path;
  if (!res) return {};
  EXPECT_EQ(res->status, expect_status) << res->body;
  return json::parse(res->body, nullptr, false);
}

// Reads a stream's events; returns the parsed data objects (without [DONE]) and whether [DONE] came.
inline std::vector<json> stream(httplib::Client& c, const std::string& path, const json& body, bool* done = nullptr) {
  std::string buf;
  std::vector<json> events;
  bool got_done = false;
  auto res = post_streaming(c, path, body, [&](const char* data, size_t n) {
    buf.append(data, n);
    for (size_t at; (at = buf.find("\n\n")) != std::string::npos;) {
      std::string ev = buf.substr(0, at);
      buf.erase(0, at + 2);
      EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
      if (ev == "data: [DONE]") got_done = true;
      else events.push_back(json::parse(ev.substr(6)));
    }
    return true;
  });
  EXPECT_TRUE(res);
  if (done) *done = got_done;
  return events;
}

}  // namespace gemma::server::test_harness

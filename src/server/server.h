// `gemma serve`: an OpenAI-compatible HTTP server over the step-wise engine. HTTP threads parse
// requests and submit them; one engine thread steps the engine, so every active sequence shares
// each forward pass (continuous batching: one decode token per running sequence plus prefill
// chunks of waiting ones, runtime/engine.h). Tokens reach the waiting HTTP thread through a
// per-request queue; a client that goes away has its sequences cancelled at the next step.
//
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
// GET /metrics (Prometheus text), POST /tokenize, POST /detokenize. The bodies are built in
// openai.h. /health answers 503 until attach() hands in the model, so a load balancer can wait.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "model/model.h"
#include "runtime/engine.h"
#include "util/result.h"

namespace gemma::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;              // 0: any free port (tests)
  std::string api_key;          // non-empty: every route but /health needs "Authorization: Bearer KEY"
  std::string model_name;       // what /v1/models lists and replies name
  int max_queue = 64;           // choices that may wait for a KV slot; beyond: 503 with Retry-After
  int http_threads = 0;         // 0: 2 x the engine's sequences + 4 (streams hold a thread each)
  double shutdown_seconds = 5;  // stop(): in-flight streams are cancelled and given this long to end
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the socket; returns the port (the chosen one when options.port is 0).
  Result<int> bind();
  // Hands in the loaded model and its engine (they must outlive the server) and starts the engine
  // thread; /health turns 200.
  void attach(const Model& model, Engine& engine);
  // Serves until stop(); call from one thread after bind().
  Status serve();
  // Stops accepting, cancels every in-flight request, waits (bounded) for their streams to end
  // and for serve() to return. Safe from any thread, once or more.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gemma::server

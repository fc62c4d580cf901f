// gemma_engine._server: the `gemma serve` HTTP server (src/server/server.h) inside a Python
// process. gemma_engine.ray_serve starts one per Ray Serve replica on a loopback port and
// forwards the replica's requests to it, so the OpenAI request parsing, continuous batching,
// prefix cache and reply building are the C++ server's, not a second copy in Python.
//
// A separate module from _core because it links cpp-httplib (a shared library on Debian,
// libcpp-httplib0.11): `import gemma_engine` and the Gemma class keep needing only the system
// libraries, and only the Ray deployment needs the HTTP library installed.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>

#include "gemma.h"
#include "server/server.h"
#include "util/thread_pool.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

[[noreturn]] void raise(const gemma::Error& e) {
  if (e.kind == gemma::ErrorKind::kInvalidArgument) throw nb::value_error(e.message.c_str());
  throw std::runtime_error(e.message);
}

template <typename T>
T take(gemma::Result<T> r) {
  if (!r.ok()) raise(r.error());
  return std::move(r).value();
}

// The model, backend, engine and server of one `gemma serve`, set up as src/cli/serve.cpp does
// (same engine options: --parallel slots, step budget max(256, parallel), prefix cache on).
class HttpServer {
 public:
  HttpServer(const std::string& model_path, const std::string& tokenizer_path, const std::string& model_name,
             const std::string& host, int port, int n_ctx, int n_threads, int parallel, int max_queue,
             bool prefix_cache) {
    if (parallel < 1 || parallel > 256) raise(gemma::invalid_argument("parallel must be between 1 and 256"));
    if (port < 0 || port > 65535) raise(gemma::invalid_argument("port must be between 0 and 65535"));
    if (max_queue < 0) raise(gemma::invalid_argument("max_queue must be >= 0"));
    if (n_threads < 0 || n_threads > gemma::kMaxThreads)
      raise(gemma::invalid_argument("n_threads must be between 0 and {}", gemma::kMaxThreads));
    if (n_ctx != 0)
      if (gemma::Status st = gemma::check_context(n_ctx); !st.ok()) raise(st.error());
    gemma::server::ServerOptions so;
    so.host = host;
    so.port = port;
    so.max_queue = max_queue;
    so.model_name = model_name;
    gemma::Result<std::unique_ptr<gemma::Model>> model = gemma::internal_error("not loaded");
    gemma::Result<std::unique_ptr<gemma::Backend>> backend = gemma::internal_error("not created");
    {
      nb::gil_scoped_release nogil;
      gemma::LoadOptions lo;
      lo.tokenizer_path = tokenizer_path;
      model = gemma::Model::load(model_path, lo);
      gemma::BackendOptions bo;
      bo.threads = n_threads;
      if (model.ok()) backend = gemma::create_backend(bo);
    }
    model_ = take(std::move(model));
    backend_ = take(std::move(backend));
    if (!model_->tokenizer()) raise(gemma::invalid_argument("the checkpoint has no tokenizer; pass tokenizer_path"));
    gemma::EngineOptions eo;
    eo.n_ctx = n_ctx > 0 ? n_ctx : gemma::default_context(model_->config());
    eo.max_sequences = parallel;
    eo.step_tokens = std::max(256, parallel);
    eo.prefix_cache = prefix_cache;
    engine_ = take(gemma::Engine::create(*model_, *backend_, eo));
    server_ = std::make_unique<gemma::server::Server>(so);
    port_ = take(server_->bind());
    server_->attach(*model_, *engine_);
    http_ = std::thread([this] { (void)server_->serve(); });
  }

  ~HttpServer() { stop(); }

  int port() const { return port_; }

  // Cancels in-flight requests (bounded wait, as gemma serve on SIGTERM) and joins the HTTP thread.
  void stop() {
    if (!server_) return;
    nb::gil_scoped_release nogil;
    server_->stop();
    if (http_.joinable()) http_.join();
    server_.reset();
    engine_.reset();  // before the backend and model it refers to
  }

 private:
  std::unique_ptr<gemma::Model> model_;
  std::unique_ptr<gemma::Backend> backend_;
  std::unique_ptr<gemma::Engine> engine_;
  std::unique_ptr<gemma::server::Server> server_;
  std::thread http_;
  int port_ = 0;
};

}  // namespace

NB_MODULE(_server, m) {
  m.doc() = "gemma serve's OpenAI HTTP server, run inside this process (gemma_engine.ray_serve uses it)";
  nb::class_<HttpServer>(m, "HttpServer")
      .def(nb::init<const std::string&, const std::string&, const std::string&, const std::string&, int, int, int, int,
                    int, bool>(),
           "model_path"_a, "tokenizer_path"_a = "", "model_name"_a = "gemma", "host"_a = "127.0.0.1", "port"_a = 0,
           "n_ctx"_a = 0, "n_threads"_a = 0, "parallel"_a = 4, "max_queue"_a = 64, "prefix_cache"_a = true)
      .def("port", &HttpServer::port)
      .def("stop", &HttpServer::stop);
}

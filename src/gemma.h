// gemma-engine's library API, in one include. A program loads a model, makes a backend, and
// drives an engine:
//
//   auto model = gemma::Model::load("gemma-3-270m.gguf");          // any supported checkpoint
//   auto backend = gemma::create_backend({.device = "cpu"});
//   auto engine = gemma::Engine::create(**model, **backend, {.n_ctx = 4096});
//   gemma::Request r;
//   r.prompt = *gemma::render_text(*(*model)->tokenizer(), "The history of the bicycle");
//   r.on_token = [](const gemma::TokenEvent& ev) { fputs(ev.text.c_str(), stdout); return true; };
//   (*engine)->submit(std::move(r));
//   (void)(*engine)->run_to_completion();
//
// Every fallible call returns gemma::Result<T> or gemma::Status (util/result.h): an error is a
// one-line message and an ErrorKind, never an exception or an abort. Installed with the library
// (cmake --install), found with find_package(gemma_engine) and linked as gemma::gemma_core.
#pragma once

#include "kernels/backend.h"      // Backend, create_backend, BackendOptions, kv types
#include "model/config.h"         // ModelConfig: what was detected from the checkpoint
#include "model/model.h"          // Model::load, LoadOptions, CheckpointInfo
#include "runtime/engine.h"       // Engine, EngineOptions, Request, TokenEvent, RequestResult
#include "runtime/memory_plan.h"  // plan_memory: what an engine will occupy, before allocating
#include "runtime/perplexity.h"   // perplexity over a token stream, llama.cpp's method
#include "runtime/prompt.h"       // chat templates, fill-in-the-middle, stop ids, context/seed rules
#include "runtime/sampler.h"      // SamplerParams
#include "tokenizer/tokenizer.h"  // Tokenizer: encode / decode
#include "util/result.h"          // Result, Status, Error, ErrorKind

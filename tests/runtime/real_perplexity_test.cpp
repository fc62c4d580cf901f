// Perplexity of the real 270M model on a few pages of text agrees with llama-perplexity's number
// (tests/fixtures/real_model/perplexity.json) within 1%.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_backend.h"
#include "runtime/perplexity.h"
#include "support/test_support.h"
#include "util/mapped_file.h"

namespace gemma {
namespace {

TEST(RealPerplexity, AgreesWithLlamaCpp) {
  GEMMA_REQUIRE_REAL_MODEL();
  std::ifstream in(test::fixture("real_model/perplexity.json"));
  const auto ref = nlohmann::json::parse(in);
  auto m = Model::load(test::real_model_path());
  ASSERT_TRUE(m.ok());
  auto text = read_text_file(test::fixture(ref["text"].get<std::string>()));
  ASSERT_TRUE(text.ok());
  auto ids = (*m)->tokenizer()->encode(*text, true);
  ASSERT_TRUE(ids.ok());
  CpuBackend be(2);
  auto r = perplexity(**m, be, *ids, ref["ctx"].get<int>());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const double want = ref["llamacpp_ppl"].get<double>();
  std::printf("perplexity: gemma-engine %.4f +/- %.5f, llama.cpp %.4f (%+.3f%%)\n", r->ppl, r->error, want,
              100 * (r->ppl / want - 1));
  EXPECT_EQ(r->n_chunks, static_cast<int>(ref["llamacpp_chunks"].size()));
  EXPECT_LT(std::fabs(r->ppl / want - 1), 0.01);
}

}  // namespace
}  // namespace gemma

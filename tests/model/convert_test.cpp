// `gemma convert` round trips: a converted checkpoint gives the reference logits of its source
// (tests/fixtures/models/*/ref), and our Q8_0/Q4_0 quantization is bit-identical to the gguf
// package's.
#include "model/export.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "kernels/cpu/cpu_backend.h"
#include "support/gguf_builder.h"
#include "support/test_support.h"
#include "util/zstd_file.h"

namespace gemma {
namespace {

namespace fs = std::filesystem;

// Max |Δlogit| / logit scale of `path` against a reference JSON, in precise mode.
double relative_error(const std::string& path, const std::string& ref_json) {
  std::ifstream in(ref_json);
  const auto ref = nlohmann::json::parse(in);
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  if (!m.ok()) return 1e9;
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  auto raw = read_file_maybe_zstd((fs::path(ref_json).parent_path() / ref["logits"].get<std::string>()).string());
  EXPECT_TRUE(raw.ok()) << raw.error().message;
  if (!raw.ok()) return 1e9;
  const float* want = reinterpret_cast<const float*>(raw->data());
  CpuBackend be(2, CpuOptions{true});
  auto cache = KvCache::create(be, (*m)->config(), static_cast<int>(prompt.size()), 64, DType::F32);
  EXPECT_TRUE(cache.ok()) << cache.error().message;
  if (!cache.ok()) return 1e9;
  ForwardBuffers buf = test::forward_buffers(be, (*m)->config(), 64);
  std::vector<float> logits;
  SequenceChunk sc{cache->get(), prompt, static_cast<int>(prompt.size())};
  EXPECT_TRUE((*m)->forward({&sc, 1}, be, buf, logits).ok());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    diff = std::max(diff, std::fabs(double(logits[i]) - want[i]));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / scale;
}

std::string tiny(const std::string& rel) { return test::fixture("models/" + rel); }

TEST(Convert, RoundTripsKeepTheLogits) {
  const std::string dir = test::temp_dir();
  struct Case {
    std::string in, out, ref;
    std::optional<DType> type;
  };
  const std::vector<Case> cases = {
      {"gemma3_tiny/model.safetensors", "st_to.gguf", "gemma3_tiny/ref/safetensors_f32.json", {}},
      {"gemma3_tiny/bf16/model.safetensors.index.json", "bf16_to.gguf", "gemma3_tiny/ref/safetensors_bf16.json", {}},
      {"gemma3_tiny/model.f32.gguf", "gguf_to_hf", "gemma3_tiny/ref/gguf_f32.json", {}},
      {"gemma3_tiny/model.f32.gguf", "q8.gguf", "gemma3_tiny/ref/gguf_q8_0.json", DType::Q8_0},
      {"gemma3_tiny_kquant/model.q4_k_m.gguf", "kq.gguf", "gemma3_tiny_kquant/ref/gguf_q4_k_m.json", {}},
      {"gemma3_tiny_scaled/model.safetensors", "scaled_hf", "gemma3_tiny_scaled/ref/safetensors_f32.json", {}},
  };
  for (const Case& c : cases) {
    auto m = Model::load(tiny(c.in));
    ASSERT_TRUE(m.ok()) << m.error().message;
    const std::string out = dir + "/" + c.out;
    const bool gguf = c.out.size() > 5 && c.out.substr(c.out.size() - 5) == ".gguf";
    Status st = gguf ? export_gguf(**m, out, {c.type}) : export_hf(**m, out, {c.type});
    ASSERT_TRUE(st.ok()) << st.error().message;
    const double err = relative_error(out, tiny(c.ref));
    std::printf("convert %s -> %s: max |Δlogit| / scale vs %s = %.2g\n", c.in.c_str(), c.out.c_str(), c.ref.c_str(),
                err);
    EXPECT_LT(err, 1e-4) << c.in << " -> " << c.out;
  }
}

TEST(Convert, QuantizationIsBitIdenticalToGgufPackage) {
  auto m = Model::load(tiny("gemma3_tiny/model.f32.gguf"));
  ASSERT_TRUE(m.ok());
  const std::string out = test::temp_dir() + "/q8.gguf";
  ASSERT_TRUE(export_gguf(**m, out, {DType::Q8_0}).ok());
  auto ours = GgufFile::open(out);
  auto ref = GgufFile::open(tiny("gemma3_tiny/model.q8_0.gguf"));
  ASSERT_TRUE(ours.ok() && ref.ok());
  int same = 0;
  for (const auto& [name, t] : (*ref)->tensors().all()) {
    const Tensor* o = (*ours)->tensors().find(name);
    ASSERT_NE(o, nullptr) << name;
    EXPECT_EQ(o->dtype, t.dtype) << name;
    ASSERT_EQ(o->nbytes, t.nbytes) << name;
    same += std::memcmp(o->data, t.data, t.nbytes) == 0;
  }
  EXPECT_EQ(same, static_cast<int>((*ref)->tensors().size()));
}

TEST(Convert, TokenizerSurvivesGgufAndHfRoundTrips) {
  const std::string dir = test::temp_dir();
  test::GgufBuilder::tiny_gemma3().write(dir + "/tiny.gguf");
  auto m = Model::load(dir + "/tiny.gguf");
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(export_hf(**m, dir + "/hf", {}).ok());
  ASSERT_TRUE(export_gguf(**m, dir + "/again.gguf", {DType::Q8_0}).ok());
  for (const std::string& p : {dir + "/hf", dir + "/again.gguf"}) {
    auto back = Model::load(p);
    ASSERT_TRUE(back.ok()) << back.error().message;
    ASSERT_NE((*back)->tokenizer(), nullptr) << p;
    for (const char* text : {"hello world", "<bos>x\n\ny", "ünï 🙂"})
      EXPECT_EQ(*(*back)->tokenizer()->encode(text, true), *(*m)->tokenizer()->encode(text, true)) << p << " " << text;
  }
}

}  // namespace
}  // namespace gemma

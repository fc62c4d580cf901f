// Images end to end against HF: the tiny multimodal Gemma 3 (gemma3_mm_tiny/new) given a prompt
// holding two images and text, and a pan-and-scan prompt on a wide image; the engine's ids, its
// logits at every prompt position and its greedy continuation against HF's
// Gemma3ForConditionalGeneration (tests/fixtures/models/gemma3_mm_tiny/prompt,
// tools/fixtures_gemma3_mm_prompt.py). The whole path runs: decoding, preprocessing, the layout
// (runtime/multimodal.h), the tower (vision/encoder.h), the engine's embedded runs and their
// bidirectional spans, under several step budgets (so text chunks split around the images).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "image/decode.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "runtime/multimodal.h"
#include "support/test_support.h"
#include "util/zstd_file.h"
#include "vision/encoder.h"

namespace gemma {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// Float32 throughout (precise CPU backend, float32 weights and KV cache): HF computes the same
// operations in float32 and only the summation order differs (~1e-6 relative per op); the tower
// adds 2 SigLIP layers and the projection before the 2 text layers, so the 1e-4 relative bound of
// the text parity tests (tests/model/parity_test.cpp) holds with the same room.
constexpr double kTolerance = 1e-4;

class ImageParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageParity, IdsLogitsAndGreedyMatchHf) {
  const std::string dir = test::fixture("models/gemma3_mm_tiny");
  const nlohmann::json ref = read_json(dir + "/prompt/" + GetParam() + ".json");
  LoadOptions lo;
  lo.tokenizer_path = test::fixture("models/gemma3_tiny/model.f32.gguf");  // the tiny vocabulary
  auto model = Model::load(dir + "/new", lo);
  ASSERT_TRUE(model.ok()) << model.error().message;
  const Model& m = **model;
  ASSERT_TRUE(m.config().vision.has_value()) << "the config's tower must be known before loading it";
  const VisionConfig& vc = *m.config().vision;
  auto ids = image_token_ids(*m.tokenizer(), &vc);
  ASSERT_TRUE(ids.ok()) << ids.error().message;

  image::PanAndScanOptions pas;
  if (!ref["pan_and_scan"].is_null()) {
    pas.enabled = true;
    pas.min_crop_size = ref["pan_and_scan"]["min_crop_size"];
    pas.max_crops = ref["pan_and_scan"]["max_crops"];
    pas.min_ratio = ref["pan_and_scan"]["min_ratio"];
  }
  std::vector<image::Image> images;
  std::vector<int> crops;
  for (const auto& f : ref["images"]) {
    auto img = image::load_image_file(test::fixture(f.get<std::string>()));
    ASSERT_TRUE(img.ok()) << img.error().message;
    crops.push_back(*count_crops(img->width, img->height, pas));
    images.push_back(std::move(*img));
  }
  EXPECT_EQ(crops, ref["num_crops"].get<std::vector<int>>());
  auto text = place_image_markers(ref["text"].get<std::string>(), static_cast<int>(images.size()));
  ASSERT_TRUE(text.ok());
  auto prompt = tokenize_image_prompt(*m.tokenizer(), *ids, *text, crops, vc.tokens_per_image, true);
  ASSERT_TRUE(prompt.ok()) << prompt.error().message;
  const auto want_ids = ref["input_ids"].get<std::vector<int32_t>>();
  ASSERT_EQ(prompt->ids, want_ids);

  CpuBackend backend(2, CpuOptions{true});
  auto tower = load_vision(dir + "/new", "");
  ASSERT_TRUE(tower.ok()) << tower.error().message;
  auto encoder = VisionEncoder::create(tower->config, m.config().hidden, tower->tensors, backend);
  ASSERT_TRUE(encoder.ok()) << encoder.error().message;
  image::ProcessorConfig pc;
  pc.image_size = vc.image_size;
  auto runs = encode_image_prompt(*prompt, images, pc, pas, m.config().hidden,
                                  [&](std::span<const float> px) { return (*encoder)->encode(px); });
  ASSERT_TRUE(runs.ok()) << runs.error().message;

  const int V = m.config().vocab_size;
  auto raw = read_file_maybe_zstd(dir + "/prompt/" + ref["logits"].get<std::string>());
  ASSERT_TRUE(raw.ok()) << raw.error().message;
  ASSERT_EQ(raw->size(), want_ids.size() * static_cast<size_t>(V) * sizeof(float));
  const float* want = reinterpret_cast<const float*>(raw->data());
  double scale = 0;
  for (size_t i = 0; i < want_ids.size() * static_cast<size_t>(V); ++i)
    scale = std::max(scale, std::fabs(double(want[i])));
  const auto greedy_ref = ref["greedy_ids"].get<std::vector<int32_t>>();

  // 64: each image in a chunk with text; 8 and 5: text chunks cut next to the runs, which the
  // engine still feeds whole (a run of 4 in a 5-token budget).
  for (int step : {64, 8, 5}) {
    SCOPED_TRACE(step);
    EngineOptions eo;
    eo.n_ctx = static_cast<int>(want_ids.size() + greedy_ref.size() + 1);
    eo.step_tokens = step;
    eo.kv_type = DType::F32;
    auto engine = Engine::create(m, backend, eo);
    ASSERT_TRUE(engine.ok()) << engine.error().message;
    Request req;
    req.prompt = prompt->ids;
    req.embeddings = *runs;
    req.sampling = SamplerParams{0, 0, 1, 0};
    req.max_tokens = static_cast<int>(greedy_ref.size());
    req.stop_ids = {};  // the reference's greedy runs through <eos>
    req.score_from = 0;
    std::vector<float> logits(want_ids.size() * static_cast<size_t>(V), NAN);
    int seen = 0;
    req.on_prompt_logits = [&](int pos, std::span<const float> row) {
      std::copy(row.begin(), row.end(), logits.begin() + static_cast<ptrdiff_t>(pos) * V);
      ++seen;
    };
    std::vector<int32_t> got;
    req.on_token = [&](const TokenEvent& ev) {
      got.push_back(ev.id);
      return true;
    };
    RequestResult result;
    req.on_done = [&](const RequestResult& r) { result = r; };
    (*engine)->submit(std::move(req));
    ASSERT_TRUE((*engine)->run_to_completion().ok());
    ASSERT_TRUE(result.status.ok()) << result.status.error().message;
    ASSERT_EQ(seen, static_cast<int>(want_ids.size()));
    double worst = 0;
    size_t worst_at = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      const double d = std::fabs(double(logits[i]) - want[i]);
      if (!(d <= worst)) worst = d, worst_at = i;  // NaN counts as worst
    }
    EXPECT_LE(worst / scale, kTolerance) << "max |dlogit| " << worst << " at position " << worst_at / V << " (scale "
                                         << scale << ")";
    EXPECT_EQ(got, greedy_ref);
    if (step == 64)
      std::printf("%s: max |dlogit| %.3g of scale %.3g (rel %.2e)\n", GetParam().c_str(), worst, scale, worst / scale);
  }

  // The comparison sees the images: zero embeddings in place of the tower's move the logits far
  // past the tolerance.
  EngineOptions eo;
  eo.n_ctx = static_cast<int>(want_ids.size() + 1);
  eo.kv_type = DType::F32;
  auto engine = Engine::create(m, backend, eo);
  ASSERT_TRUE(engine.ok());
  Request req;
  req.prompt = prompt->ids;
  req.embeddings = *runs;
  for (PromptEmbeddings& e : req.embeddings) std::fill(e.values.begin(), e.values.end(), 0.0f);
  req.max_tokens = 0;
  req.score_from = 0;
  double moved = 0;
  req.on_prompt_logits = [&](int pos, std::span<const float> row) {
    for (int v = 0; v < V; ++v)
      moved = std::max(moved, std::fabs(double(row[v]) - want[static_cast<size_t>(pos) * V + v]));
  };
  (*engine)->submit(std::move(req));
  ASSERT_TRUE((*engine)->run_to_completion().ok());
  EXPECT_GT(moved / scale, 100 * kTolerance);
  std::printf("%s: zero image embeddings move the logits by %.2e of scale\n", GetParam().c_str(), moved / scale);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ImageParity, ::testing::Values("two_images", "pan_and_scan_wide"));

}  // namespace
}  // namespace gemma

// The vision tower's other homes (tools/fixtures_gemma3_mm.py): what a text-only load of a
// multimodal checkpoint holds in memory.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/dequant.h"
#include "model/loaders.h"
#include "support/test_support.h"
#include "util/mapped_file.h"
#include "vision/encoder.h"

namespace gemma {
namespace {

const std::string kDir = "models/gemma3_mm_tiny/";

nlohmann::json read_json(const std::string& rel) {
  std::ifstream in(test::fixture(kDir + rel));
  return nlohmann::json::parse(in);
}

std::vector<float> as_floats(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  EXPECT_TRUE(dequantize_row(t.dtype, t.data, v.data(), t.numel())) << t.name;
  return v;
}

// Same tolerance and reasoning as tests/vision/vision_test.cpp: the same float32 ops as HF in
// another summation order (~1e-7 relative, measured below); 1e-4 of the largest feature.
constexpr double kTolerance = 1e-4;

// A text-only load copies the language model's tensors onto 2 MiB pages and leaves the tower's
// bytes unread: copied bytes = file - tower - lm_head-free remainder, exactly the kept tensors plus
// the header. The tower is still counted (vision_bytes), and every kept tensor holds the same bytes
// as the file's own mapping, so the partial copy read the right ranges.
TEST(VisionFormats, TextOnlyHfLoadDoesNotCopyTheTower) {
  for (const char* spelling : {"new", "old"}) {
    SCOPED_TRACE(spelling);
    const std::string file = test::fixture(kDir + spelling + "/model.safetensors");
    auto huge = load_hf(file, FilePages::kHuge);
    ASSERT_TRUE(huge.ok()) << huge.error().message;
    auto mapped = load_hf(file, FilePages::kMapped);
    ASSERT_TRUE(mapped.ok()) << mapped.error().message;
    const uint64_t file_size = std::filesystem::file_size(file);
    const CheckpointInfo& info = huge->info;
    EXPECT_GT(info.vision_bytes, file_size / 4);  // the tiny tower is a large part of the tiny file
    EXPECT_EQ(mapped->info.copied_bytes, 0u);
    EXPECT_EQ(mapped->info.vision_bytes, info.vision_bytes);
    if (!huge_pages_available()) GTEST_SKIP() << "THP is off here: the load is mapped, nothing is copied";
    std::printf("%s: file %llu bytes, tower %llu, copied %llu\n", spelling, static_cast<unsigned long long>(file_size),
                static_cast<unsigned long long>(info.vision_bytes), static_cast<unsigned long long>(info.copied_bytes));
    // What is copied: every byte of the file but the tower's (no lm_head here: the embedding is tied).
    EXPECT_EQ(info.copied_bytes, file_size - info.vision_bytes);
    ASSERT_EQ(huge->tensors.size(), mapped->tensors.size());
    for (const auto& [name, t] : mapped->tensors.all()) {
      const Tensor* h = huge->tensors.find(name);
      ASSERT_NE(h, nullptr) << name;
      ASSERT_EQ(h->nbytes, t.nbytes) << name;
      EXPECT_EQ(std::memcmp(h->data, t.data, t.nbytes), 0) << name;
    }
  }
}

// gemma_pytorch .ckpt (tools/fixtures_torch_vision.py): the same weights as new/, under
// gemma_pytorch's names, the projection stored [out, in]. The config comes from the shapes plus
// gemma_pytorch's fixed 16 heads and 4x4 pooling; the features equal HF's computed with that config.
TEST(VisionFormats, GemmaPytorchCkptTowerMatchesHf) {
  auto loaded = load_vision(test::fixture(kDir + "torch/model.ckpt"), "");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const VisionConfig& c = loaded->config;
  EXPECT_EQ(c.image_size, 16);
  EXPECT_EQ(c.patch_size, 4);
  EXPECT_EQ(c.hidden, 32);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 16);
  EXPECT_EQ(c.ffn, 64);
  EXPECT_EQ(c.tokens_per_image, 1);
  EXPECT_EQ(loaded->text_hidden, 32);
  // The directory form (model.ckpt beside nothing else) finds the same file.
  auto by_dir = load_vision(test::fixture(kDir + "torch"), "");
  ASSERT_TRUE(by_dir.ok()) << by_dir.error().message;
  EXPECT_EQ(by_dir->tensors.size(), loaded->tensors.size());

  // Every canonical tensor holds the HF checkpoint's values (the mapping and the transpose).
  auto hf = load_vision(test::fixture(kDir + "new"), "");
  ASSERT_TRUE(hf.ok()) << hf.error().message;
  ASSERT_EQ(hf->tensors.size(), loaded->tensors.size());
  for (const auto& [name, t] : hf->tensors.all()) {
    const Tensor* p = loaded->tensors.find(name);
    ASSERT_NE(p, nullptr) << name;
    ASSERT_EQ(p->shape, t.shape) << name;
    EXPECT_EQ(as_floats(*p), as_floats(t)) << name;
  }

  const nlohmann::json ref = read_json("torch/features.json");
  const nlohmann::json px = read_json("vision/features.json");
  ASSERT_EQ(ref["tokens_per_image"].get<int>(), 1);
  CpuBackend backend(2);
  auto enc = VisionEncoder::create(c, loaded->text_hidden, loaded->tensors, backend);
  ASSERT_TRUE(enc.ok()) << enc.error().message;
  std::vector<std::vector<float>> outs;
  double worst = 0;
  for (size_t i = 0; i < 2; ++i) {
    // HF's own pixel tensors (preprocessing is tested against HF in vision_test.cpp).
    const std::vector<float> pixels = px["images"][i]["pixel_values"].get<std::vector<float>>();
    const std::vector<float> want = ref["images"][i]["features"].get<std::vector<float>>();
    auto got = (*enc)->encode(pixels);
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ(got->size(), want.size());
    double scale = 0, err = 0;
    for (size_t k = 0; k < want.size(); ++k) {
      scale = std::max(scale, std::fabs(static_cast<double>(want[k])));
      err = std::max(err, std::fabs(static_cast<double>((*got)[k]) - want[k]));
    }
    ASSERT_GT(scale, 0.1);  // non-trivial features: a zero output cannot pass
    EXPECT_LE(err, kTolerance * scale) << "max |Δ| " << err << " at feature scale " << scale;
    worst = std::max(worst, err / scale);
    outs.push_back(std::move(*got));
  }
  EXPECT_GT(std::fabs(outs[0][0] - outs[1][0]) + std::fabs(outs[0][1] - outs[1][1]), 1e-3);
  std::printf("torch .ckpt tower vs HF: max |Δ| / max |feature| = %.3g\n", worst);
}

// A text-only gemma_pytorch checkpoint has no tower: one clear error, not a crash or an empty tower.
TEST(VisionFormats, TextOnlyCkptHasNoTower) {
  auto r = load_vision(test::fixture("models/gemma3_tiny/model.ckpt"), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidArgument);
  EXPECT_NE(r.error().message.find("no vision tower"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace gemma

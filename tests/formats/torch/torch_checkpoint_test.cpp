// The torch reader against archives written by torch.save itself (tools/fixtures_torch.py): every
// tensor's bytes must equal what torch.load returned, recorded in tests/fixtures/torch/expected.json.
#include "formats/torch/torch_checkpoint.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "util/mapped_file.h"

namespace gemma {
namespace {

namespace fs = std::filesystem;

nlohmann::json expected() {
  std::ifstream in(test::fixture("torch/expected.json"));
  return nlohmann::json::parse(in)["files"];
}

std::string hex(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += fmt::format("{:02x}", p[i]);
  return s;
}

std::string torch_name(TorchType t) { return std::string(torch_type_info(t).dtype_name); }

// Every tensor of `file` through the low-level API (all types), compared with torch.load.
void check_all_tensors(const std::string& file) {
  SCOPED_TRACE(file);
  const nlohmann::json want = expected()[file];
  ASSERT_FALSE(want.empty()) << "torch/expected.json lists no tensors for " << file;  // else 0 == 0 passes
  auto map = MappedFile::open(test::fixture("torch/" + file));
  ASSERT_TRUE(map.ok()) << map.error().message;
  auto tensors = parse_torch_tensors((*map)->bytes(), file);
  ASSERT_TRUE(tensors.ok()) << tensors.error().message;
  ASSERT_EQ(tensors->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const TorchTensor& t = (*tensors)[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, want[i]["name"].get<std::string>());  // pickle order is the state dict's order
    EXPECT_EQ(torch_name(t.type), want[i]["dtype"].get<std::string>());
    EXPECT_EQ(t.shape, want[i]["shape"].get<std::vector<int64_t>>());
    std::vector<uint8_t> buf(t.nbytes() + 1);
    t.gather(buf.data());
    EXPECT_EQ(hex(buf.data(), t.nbytes()), want[i]["hex"].get<std::string>());
  }
}

// The same through read_torch_checkpoint: the TensorSet holds the types it can, bit-exactly.
void check_tensor_set(const std::string& path, const std::string& key) {
  SCOPED_TRACE(path);
  const nlohmann::json want = expected()[key];
  ASSERT_FALSE(want.empty()) << "torch/expected.json lists no tensors for " << key;
  TensorSet ts;
  std::vector<std::string> skipped;
  Status s = read_torch_checkpoint(test::fixture("torch/" + path), ts, &skipped);
  ASSERT_TRUE(s.ok()) << s.error().message;
  size_t held = 0;
  for (const auto& w : want) {
    const std::string name = w["name"].get<std::string>(), dtype = w["dtype"].get<std::string>();
    const Tensor* t = ts.find(name);
    const bool supported = dtype == "float32" || dtype == "float64" || dtype == "float16" || dtype == "bfloat16" ||
                           dtype == "int8" || dtype == "int32";
    if (!supported) {
      EXPECT_EQ(t, nullptr) << name;
      EXPECT_NE(std::find(skipped.begin(), skipped.end(), name + " (" + dtype + ")"), skipped.end()) << name;
      continue;
    }
    ++held;
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, w["shape"].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(hex(t->data, t->nbytes), w["hex"].get<std::string>()) << name;
    EXPECT_EQ(std::string(dtype_name(t->dtype)), dtype == "float32"    ? "F32"
                                                 : dtype == "float64"  ? "F64"
                                                 : dtype == "float16"  ? "F16"
                                                 : dtype == "bfloat16" ? "BF16"
                                                 : dtype == "int8"     ? "I8"
                                                                       : "I32")
        << name;
  }
  EXPECT_EQ(ts.size(), held);
}

TEST(TorchCheckpoint, EveryStorageTypeBitExact) {
  check_all_tensors("all_types.pt");
  check_tensor_set("all_types.pt", "all_types.pt");
}

TEST(TorchCheckpoint, ViewsStridesScalarsParametersProtocol4) {
  check_all_tensors("views_p4.pt");
  check_tensor_set("views_p4.pt", "views_p4.pt");
}

TEST(TorchCheckpoint, ContiguousTensorsAreViewsIntoTheFile) {
  TensorSet ts;
  ASSERT_TRUE(read_torch_checkpoint(test::fixture("torch/views_p4.pt"), ts).ok());
  const Tensor* base = ts.find("base");
  const Tensor* row = ts.find("row");
  const Tensor* col = ts.find("col");
  ASSERT_TRUE(base && row && col);
  EXPECT_EQ(row->data, base->data + 6 * 4);                                       // base[1] shares base's storage
  EXPECT_EQ(reinterpret_cast<uintptr_t>(base->data) % 64, 0u);                    // torch aligns records to 64 bytes
  EXPECT_TRUE(col->data < base->data || col->data >= base->data + base->nbytes);  // copied: stride 6
}

TEST(TorchCheckpoint, GemmaPytorchLayoutProtocol5) {
  check_all_tensors("gemma_p5.pt");
  check_tensor_set("gemma_p5.pt", "gemma_p5.pt");
}

TEST(TorchCheckpoint, PlainStateDictWithMetadata) { check_tensor_set("plain_sd.pt", "plain_sd.pt"); }
TEST(TorchCheckpoint, TwelveStorages) { check_all_tensors("many_storages.pt"); }
TEST(TorchCheckpoint, ArchiveFolderNamedAfterTheFile) { check_all_tensors("my.model.v1.pt"); }
TEST(TorchCheckpoint, ArchiveFolderOfABuffer) { check_all_tensors("from_buffer.pt"); }

TEST(TorchCheckpoint, Zip64Records) {
  check_all_tensors("zip64.pt");
  check_tensor_set("zip64.pt", "zip64.pt");
}

TEST(TorchCheckpoint, Sharded) {
  check_tensor_set("sharded", "sharded");
  check_tensor_set("sharded/pytorch_model.bin.index.json", "sharded");
}

TEST(TorchCheckpoint, ShardedIndexMustBeRight) {
  const std::string dir = test::temp_dir();
  for (const char* f : {"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"})
    fs::copy_file(test::fixture(std::string("torch/sharded/") + f), fs::path(dir) / f);
  auto index = [&](const std::string& json) {
    test::write_file((fs::path(dir) / "pytorch_model.bin.index.json").string(), json);
    TensorSet ts;
    return read_torch_checkpoint(dir, ts);
  };
  Status s = index(R"({"weight_map": {"a.weight": "pytorch_model-00002-of-00002.bin"}})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("lacks it"), std::string::npos) << s.error().message;
  s = index(R"({"weight_map": {"a.weight": "../pytorch_model-00001-of-00002.bin"}})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not a plain file name"), std::string::npos) << s.error().message;
  s = index(R"({"weight_map": {"a.weight": "pytorch_model-00001-of-00002.bin",
                               "b.weight": "pytorch_model-00001-of-00002.bin"}})");
  ASSERT_FALSE(s.ok());
  s = index(R"({"weight_map": {"a.weight": "pytorch_model-00001-of-00002.bin", "b.weight": "missing.bin"}})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("missing.bin"), std::string::npos) << s.error().message;
  s = index(R"({"weight_map": []})");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("weight_map"), std::string::npos) << s.error().message;
}

TEST(TorchCheckpoint, RejectsLegacyFormat) {
  TensorSet ts;
  Status s = read_torch_checkpoint(test::fixture("torch/legacy.pt"), ts);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("legacy"), std::string::npos) << s.error().message;
}

TEST(TorchCheckpoint, RejectsNegatedView) {
  TensorSet ts;
  Status s = read_torch_checkpoint(test::fixture("torch/neg_view.pt"), ts);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("'neg'"), std::string::npos) << s.error().message;
}

TEST(TorchCheckpoint, EveryTruncationIsACleanError) {
  auto map = MappedFile::open(test::fixture("torch/gemma_p5.pt"));
  ASSERT_TRUE(map.ok());
  const auto bytes = (*map)->bytes();
  for (size_t n = 0; n < bytes.size(); n += (n < 64 ? 1 : 7)) {
    TensorSet ts;
    std::vector<uint8_t> copy(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    Status s = parse_torch_checkpoint(copy, "cut.pt", nullptr, ts);
    EXPECT_FALSE(s.ok()) << n;
  }
}

}  // namespace
}  // namespace gemma

#include "formats/gguf.h"

#include <cstring>

#include <gtest/gtest.h>

#include "support/gguf_builder.h"
#include "support/test_support.h"

namespace gemma {
namespace {

Result<std::shared_ptr<GgufFile>> parse(const std::string& bytes) {
  auto copy = std::make_shared<std::string>(bytes);
  return GgufFile::parse({reinterpret_cast<const uint8_t*>(copy->data()), copy->size()}, "test.gguf", copy);
}

void expect_error(const std::string& bytes, const std::string& needle, ErrorKind kind = ErrorKind::kCorruptInput) {
  auto r = parse(bytes);
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << "errors are one line";
  EXPECT_EQ(r.error().kind, kind) << error_kind_name(r.error().kind) << ": " << r.error().message;
}

TEST(Gguf, ReadsRealModelHeader) {
  GEMMA_REQUIRE_REAL_MODEL();
  auto f = GgufFile::open(test::real_model_path());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ((*f)->tensors().size(), 236u);
  auto arch = (*f)->get_string("general.architecture");
  ASSERT_TRUE(arch.ok());
  EXPECT_EQ(**arch, "gemma3");
  const Tensor* emb = (*f)->tensors().find("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::Q8_0);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{262144, 640}));
  auto tokens = (*f)->get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(tokens->size(), 262144u);
  EXPECT_EQ((*tokens)[2], "<bos>");
}

TEST(Gguf, RoundTripsBuiltFile) {
  auto b = test::GgufBuilder::tiny_gemma3();
  auto f = parse(b.bytes());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ((*f)->tensors().size(), 2u + 2 * 13);
  auto d = (*f)->get_uint("gemma3.embedding_length");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(**d, 32u);
  EXPECT_EQ((*f)->tensors().find("blk.1.ffn_down.weight")->shape, (std::vector<int64_t>{32, 64}));
  auto v2 = parse(b.bytes(2));
  EXPECT_TRUE(v2.ok());
}

TEST(Gguf, RejectsBadMagicAndVersion) {
  expect_error("GGML" + std::string(100, '\0'), "bad magic");
  expect_error("", "bad magic");
  std::string v1 = test::GgufBuilder::tiny_gemma3().bytes(1);
  expect_error(v1, "unsupported GGUF version 1", ErrorKind::kUnsupported);
}

TEST(Gguf, MissingFileAndKeyAreNotFound) {
  auto f = GgufFile::open("/nonexistent/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().kind, ErrorKind::kNotFound) << f.error().message;
  auto built = parse(test::GgufBuilder::tiny_gemma3().bytes());
  ASSERT_TRUE(built.ok()) << built.error().message;
  auto key = (*built)->get_string_array("no.such.key");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.error().kind, ErrorKind::kNotFound) << key.error().message;
}

TEST(Gguf, RejectsEveryTruncation) {
  const std::string full = test::GgufBuilder::tiny_gemma3().bytes();
  // Cutting the file anywhere must give an error, never a crash or an out-of-bounds read.
  for (size_t n = 0; n < full.size(); n += (n < 4096 ? 1 : 97)) {
    auto r = parse(full.substr(0, n));
    ASSERT_FALSE(r.ok()) << "truncated to " << n << " bytes";
    EXPECT_EQ(r.error().kind, ErrorKind::kCorruptInput) << r.error().message;
  }
}

TEST(Gguf, RejectsTensorOutsideFile) {
  auto b = test::GgufBuilder::tiny_gemma3();
  b.override_last_offset(uint64_t{1} << 40);
  expect_error(b.bytes(), "extends past the end of the file");
}

TEST(Gguf, RejectsUnsupportedTensorType) {
  test::GgufBuilder b;
  b.kv_str("general.architecture", "gemma3");
  b.tensor("x", 16 /* IQ2_XXS */, {256}, std::vector<uint8_t>(66));
  expect_error(b.bytes(), "unsupported ggml type 16", ErrorKind::kUnsupported);
}

TEST(Gguf, RejectsRowNotMultipleOfBlock) {
  test::GgufBuilder b;
  b.tensor("x", 8 /* Q8_0 */, {33}, std::vector<uint8_t>(34));
  expect_error(b.bytes(), "not a multiple of its block size");
}

TEST(Gguf, RejectsHugeCounts) {
  std::string s = "GGUF";
  uint32_t v = 3;
  uint64_t n_tensors = 1ull << 60, n_kv = 1;
  s.append(reinterpret_cast<char*>(&v), 4).append(reinterpret_cast<char*>(&n_tensors), 8);
  s.append(reinterpret_cast<char*>(&n_kv), 8);
  expect_error(s, "cannot fit");
  // A string length far beyond the file.
  test::GgufBuilder b;
  b.kv_str("k", "value");
  std::string bytes = b.bytes();
  uint64_t huge = 1ull << 62;
  std::memcpy(&bytes[24], &huge, 8);  // the key's length field
  expect_error(bytes, "truncated metadata");
  // A string array whose count the bytes left cannot hold: refused before any element is read.
  test::GgufBuilder a;
  a.kv_str_array("k", {"x"});
  std::string arr = a.bytes();
  const uint64_t many = 1ull << 40;
  std::memcpy(&arr[24 + 8 + 1 + 4 + 4], &many, 8);  // key length, "k", value type, element type, count
  expect_error(arr, "malformed or truncated value of metadata key 'k'");
}

TEST(Gguf, TypedGettersRejectWrongTypes) {
  test::GgufBuilder b;
  b.kv_str("s", "x");
  b.kv_u32("u", 7);
  auto f = parse(b.bytes());
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE((*f)->get_uint("s").ok());
  EXPECT_FALSE((*f)->get_string("u").ok());
  EXPECT_FALSE((*f)->get_string_array("u").ok());
  auto missing = (*f)->get_uint("absent");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

}  // namespace
}  // namespace gemma

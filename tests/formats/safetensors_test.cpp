#include "formats/safetensors.h"

#include <cstring>

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace gemma {
namespace {

std::string st_file(const std::string& header, size_t data_bytes) {
  std::string h = header;
  while (h.size() % 8) h += ' ';
  std::string s(8, '\0');
  uint64_t n = h.size();
  std::memcpy(s.data(), &n, 8);
  return s + h + std::string(data_bytes, '\x01');
}

Status parse(const std::string& bytes, TensorSet& out) {
  auto copy = std::make_shared<std::string>(bytes);
  return parse_safetensors({reinterpret_cast<const uint8_t*>(copy->data()), copy->size()}, "t.safetensors", copy, out);
}

TEST(Safetensors, ParsesValidFile) {
  TensorSet ts;
  Status s = parse(st_file(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                           R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}})",
                           32),
                   ts);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_NE(ts.find("a"), nullptr);
  EXPECT_EQ(ts.find("a")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ts.find("b")->dtype, DType::BF16);
}

TEST(Safetensors, RejectsMalformed) {
  struct Case {
    std::string bytes, needle;
    ErrorKind kind = ErrorKind::kCorruptInput;
  };
  const std::vector<Case> cases = {
      {"abc", "shorter than 8 bytes"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "exceeds the file"},
      {st_file("not json", 0), "not a valid JSON"},
      {st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", 12), "do not match its shape"},
      {st_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "past the end"},
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "overlap or hole"},
      {st_file(R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", 4), "unsupported dtype",
       ErrorKind::kUnsupported},
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8), "tensors cover"},
      {st_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "malformed shape"},
      // Two names for one range, or two ranges sharing bytes.
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
               4),
       "overlap or hole"},
      {st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               12),
       "overlap or hole"},
      // Offsets the wrong way round, and ones past any file.
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8), "do not match its shape"},
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551608,18446744073709551612]}})", 4),
       "past the end"},
      // The same name twice (a JSON parser would keep the last one silently).
      {st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               8),
       "duplicate tensor 'a'"},
      {st_file(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
           4),
       "duplicate tensor 'a'"},
      {st_file(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}})", 4),
       "implausible shape"},
  };
  for (const Case& c : cases) {
    TensorSet ts;
    Status s = parse(c.bytes, ts);
    ASSERT_FALSE(s.ok()) << c.needle;
    EXPECT_NE(s.error().message.find(c.needle), std::string::npos) << s.error().message;
    EXPECT_EQ(s.error().kind, c.kind) << s.error().message;
  }
}

}  // namespace
}  // namespace gemma

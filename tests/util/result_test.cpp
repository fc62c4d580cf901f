#include "util/result.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace gemma {
namespace {

TEST(Result, EachBuilderSetsItsKindAndFormats) {
  struct Case {
    Error e;
    ErrorKind kind;
    const char* name;
    int status;
  };
  const Case cases[] = {
      {invalid_argument("bad --ctx {}", -1), ErrorKind::kInvalidArgument, "invalid argument", 400},
      {not_found("{}: no such file", "m.gguf"), ErrorKind::kNotFound, "not found", 404},
      {unsupported("dtype {}", "IQ2_XXS"), ErrorKind::kUnsupported, "unsupported", 415},
      {corrupt_input("{}: bad magic", "m.gguf"), ErrorKind::kCorruptInput, "corrupt input", 422},
      {resource_exhausted("cannot reserve {} bytes", 42), ErrorKind::kResourceExhausted, "resource exhausted", 503},
      {internal_error("invariant {} failed", 7), ErrorKind::kInternal, "internal", 500},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.e.kind, c.kind) << c.e.message;
    EXPECT_STREQ(error_kind_name(c.e.kind), c.name);
    EXPECT_EQ(http_status(c.e.kind), c.status) << c.name;
  }
  EXPECT_EQ(cases[0].e.message, "bad --ctx -1");
  EXPECT_EQ(cases[3].e.message, "m.gguf: bad magic");
  EXPECT_EQ(internal_error("no arguments").message, "no arguments");
}

TEST(Result, WithContextPrefixesAndKeepsTheKind) {
  Error e = with_context(corrupt_input("truncated frame"), "zstd");
  e = with_context(std::move(e), "model.gguf.zst");
  EXPECT_EQ(e.kind, ErrorKind::kCorruptInput);
  EXPECT_EQ(e.message, "model.gguf.zst: zstd: truncated frame");
}

Result<int> parse_positive(int v) {
  if (v < 0) return invalid_argument("{} is negative", v);
  if (v == 0) return not_found("zero");
  return v;
}

Status check(int v) {
  if (v > 100) return resource_exhausted("{} is too many", v);
  return ok_status();
}

// GE_ASSIGN and GE_TRY hand the inner error up unchanged: same kind, same message.
Result<int> doubled(int v) {
  GE_TRY(check(v));
  GE_ASSIGN(int x, parse_positive(v));
  return 2 * x;
}

// A caller that adds context keeps the kind of what went wrong below.
Result<std::unique_ptr<int>> load(const std::string& path, int v) {
  auto r = doubled(v);
  if (!r.ok()) return with_context(std::move(r).error(), path);
  return std::make_unique<int>(*r);
}

TEST(Result, TryAndAssignPropagateTheKind) {
  auto ok = doubled(21);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, 42);

  auto neg = doubled(-3);
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.error().kind, ErrorKind::kInvalidArgument);
  EXPECT_EQ(neg.error().message, "-3 is negative");

  auto zero = doubled(0);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().kind, ErrorKind::kNotFound);

  auto big = doubled(101);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().kind, ErrorKind::kResourceExhausted);
  EXPECT_EQ(http_status(big.error().kind), 503);

  auto wrapped = load("x.bin", -1);
  ASSERT_FALSE(wrapped.ok());
  EXPECT_EQ(wrapped.error().kind, ErrorKind::kInvalidArgument);
  EXPECT_EQ(wrapped.error().message, "x.bin: -1 is negative");
  auto loaded = load("x.bin", 5);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(**loaded, 10);
}

TEST(Result, StatusCarriesTheKind) {
  Status s = corrupt_input("bad");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, ErrorKind::kCorruptInput);
  Error moved = std::move(s).error();
  EXPECT_EQ(moved.message, "bad");
  EXPECT_TRUE(ok_status().ok());
}

}  // namespace
}  // namespace gemma

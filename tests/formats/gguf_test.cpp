#include "formats/gguf.h"

#include <gtest/gtest.h>

#include "support/test_support.h"

namespace gemma {
namespace {

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

}  // namespace
}  // namespace gemma

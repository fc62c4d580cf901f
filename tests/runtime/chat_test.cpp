#include "runtime/prompt.h"

#include <gtest/gtest.h>

namespace gemma {
namespace {

TEST(Chat, GemmaTurnFormat) {
  EXPECT_EQ(format_user_turn("  Hi there \n", "", true),
            "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n");
  // Gemma has no system role: the system prompt joins the first user turn after a blank line.
  EXPECT_EQ(format_user_turn("Hi", "Be brief.", true),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  // Later turns close the model's reply (its <end_of_turn> was sampled, not cached) and drop the system text.
  EXPECT_EQ(format_user_turn("More", "Be brief.", false),
            "<end_of_turn>\n<start_of_turn>user\nMore<end_of_turn>\n<start_of_turn>model\n");
}

}  // namespace
}  // namespace gemma

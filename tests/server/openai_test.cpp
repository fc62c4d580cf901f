// Request parsing and reply shapes of the OpenAI API, without HTTP.
#include "server/openai.h"

#include <gtest/gtest.h>

namespace gemma::server {
namespace {

TEST(OpenAiParse, ChatFieldsAndDefaults) {
  const json body = json::parse(R"({
    "model": "x", "messages": [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]}],
    "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 7, "stop": ["\n\n", "END"], "n": 2,
    "max_tokens": 10, "max_completion_tokens": 12, "frequency_penalty": 0.5, "presence_penalty": -0.5,
    "repetition_penalty": 1.1, "logit_bias": {"5": -100, "9": 3.5}, "logprobs": true, "top_logprobs": 3,
    "stream": true, "stream_options": {"include_usage": true}})");
  auto r = parse_chat_request(body, 1000, 4);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[1].content, "Hi\nthere");
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r->sampling.min_p, 0.05f);
  EXPECT_EQ(*r->seed, 7u);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_EQ(r->n, 2);
  EXPECT_EQ(r->max_tokens, 12);  // max_completion_tokens wins
  EXPECT_FLOAT_EQ(r->sampling.frequency_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.presence_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r->sampling.repeat_penalty, 1.1f);
  ASSERT_EQ(r->sampling.logit_bias.size(), 2u);
  EXPECT_EQ(r->sampling.logit_bias[0], (std::pair<int32_t, float>{5, -100.f}));
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 3);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);

  auto d = parse_chat_request(json::parse(R"({"messages": [{"role": "user", "content": "x"}]})"), 1000, 4);
  ASSERT_TRUE(d.ok());
  EXPECT_FLOAT_EQ(d->sampling.temperature, 1.f);  // OpenAI's defaults, not the CLI's
  EXPECT_FLOAT_EQ(d->sampling.top_p, 1.f);
  EXPECT_EQ(d->sampling.top_k, 0);
  EXPECT_EQ(d->max_tokens, -1);
  EXPECT_FALSE(d->stream);
}

TEST(OpenAiParse, RefusesBadFieldsNamingThem) {
  struct Case {
    const char* body;
    const char* names;
  };
  for (const Case& c : {
           Case{R"([1, 2])", "JSON object"},
           Case{R"({})", "messages"},
           Case{R"({"messages": []})", "messages"},
           Case{R"({"messages": [{"content": "x"}]})", "role"},
           Case{R"({"messages": [{"role": "tool", "content": "x"}]})", "tool"},
           Case{R"({"messages": [{"role": "user", "content": 5}]})", "content"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "temperature": 3})", "temperature"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", "temperature"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", "top_p"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "n": 9})", "'n'"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1})", "max_tokens"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "stop": 3})", "stop"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"abc": 1}})", "logit_bias"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"5000": 1}})", "vocabulary"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"5": 101}})", "logit_bias"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "logprobs"},
           Case{R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", "stream"},
       }) {
    auto r = parse_chat_request(json::parse(c.body), 1000, 4);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidArgument) << c.body;
    EXPECT_NE(r.error().message.find(c.names), std::string::npos) << c.body << ": " << r.error().message;
  }
  auto img = parse_chat_request(
      json::parse(R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})"),
      1000, 4);
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(img.error().kind, ErrorKind::kUnsupported);
}

TEST(OpenAiParse, CompletionPromptForms) {
  auto one = parse_completion_request(json::parse(R"({"prompt": "abc", "echo": true, "logprobs": 2})"), 1000, 8);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->prompt_texts, std::vector<std::string>{"abc"});
  EXPECT_TRUE(one->echo);
  EXPECT_EQ(one->top_logprobs, 2);
  auto many = parse_completion_request(json::parse(R"({"prompt": ["a", "b"], "n": 2})"), 1000, 8);
  ASSERT_TRUE(many.ok());
  EXPECT_EQ(many->prompt_texts.size(), 2u);
  auto ids = parse_completion_request(json::parse(R"({"prompt": [2, 10, 11]})"), 1000, 8);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_ids, (std::vector<std::vector<int32_t>>{{2, 10, 11}}));
  auto id_lists = parse_completion_request(json::parse(R"({"prompt": [[2, 10], [2, 11]]})"), 1000, 8);
  ASSERT_TRUE(id_lists.ok());
  EXPECT_EQ(id_lists->prompt_ids.size(), 2u);
  for (const char* bad :
       {R"({})", R"({"prompt": 5})", R"({"prompt": []})", R"({"prompt": [2, 5000]})", R"({"prompt": ["a", 3]})",
        R"({"prompt": "a", "logprobs": 9})", R"({"prompt": ["a", "b", "c"], "n": 3})"})
    EXPECT_FALSE(parse_completion_request(json::parse(bad), 1000, 8).ok()) << bad;
}

TEST(OpenAiReply, ErrorEnvelopeAndFinishReasons) {
  const json e = error_body(invalid_argument("bad 'x'"));
  EXPECT_EQ(e["error"]["message"], "bad 'x'");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(e["error"]["param"].is_null());
  EXPECT_TRUE(e["error"]["code"].is_null());
  EXPECT_STREQ(finish_reason(FinishReason::kStop), "stop");
  EXPECT_STREQ(finish_reason(FinishReason::kLength), "length");
  EXPECT_STREQ(finish_reason(FinishReason::kContext), "length");
}

}  // namespace
}  // namespace gemma::server

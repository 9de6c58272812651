#include "optiq/serve/api.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace optiq::serve::test {
namespace {

TEST(Api, EndpointsByPath) {
    EXPECT_EQ(endpoint_of("/v1/chat/completions"), Endpoint::chat_completions);
    EXPECT_EQ(endpoint_of("/v1/completions"), Endpoint::completions);
    EXPECT_EQ(endpoint_of("/v1/messages"), Endpoint::messages);
    EXPECT_FALSE(endpoint_of("/v1/embeddings"));
    EXPECT_EQ(api_of(Endpoint::messages), Api::anthropic);
    EXPECT_EQ(api_of(Endpoint::completions), Api::openai);
}

TEST(Api, ParseDispatchesByEndpoint) {
    EXPECT_EQ(parse_request(Endpoint::completions, R"({"model": "m", "prompt": "x"})").prompt, "x");
    EXPECT_EQ(parse_request(Endpoint::chat_completions, R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})")
                  .messages.size(),
              1u);
    try {
        (void)parse_request(Endpoint::messages, "{}");
        FAIL();
    } catch (const api_error& e) {
        EXPECT_EQ(e.body()["type"], "error");  // Anthropic's dialect on /v1/messages
    }
}

TEST(Api, ResponseAndStreamByEndpoint) {
    Completion c;
    c.text = "t";
    const ResponseMeta m{"id", 1, "m"};
    EXPECT_EQ(response_json(Endpoint::chat_completions, m, c)["object"], "chat.completion");
    EXPECT_EQ(response_json(Endpoint::completions, m, c)["object"], "text_completion");
    EXPECT_EQ(response_json(Endpoint::messages, m, c)["type"], "message");
    EXPECT_NE(stream_encoder(Endpoint::messages, m, false, 3)->start().find("event: message_start"), std::string::npos);
    EXPECT_NE(stream_encoder(Endpoint::chat_completions, m, false, 3)->start().find("chat.completion.chunk"), std::string::npos);
    EXPECT_EQ(stream_encoder(Endpoint::completions, m, false, 3)->start(), "");
}

TEST(Api, KeysByBearerOrXApiKey) {
    EXPECT_TRUE(authorized("", "", ""));  // no key configured
    EXPECT_TRUE(authorized("Bearer s3cret", "", "s3cret"));
    EXPECT_TRUE(authorized("", "s3cret", "s3cret"));
    EXPECT_TRUE(authorized("Bearer wrong", "s3cret", "s3cret"));
    EXPECT_FALSE(authorized("", "", "s3cret"));
    EXPECT_FALSE(authorized("Bearer s3cre", "", "s3cret"));
    EXPECT_FALSE(authorized("Bearer s3cretX", "", "s3cret"));
    EXPECT_FALSE(authorized("s3cret", "", "s3cret"));  // no "Bearer "
    EXPECT_FALSE(authorized("Bearer ", "", "s3cret"));
    EXPECT_FALSE(authorized("", "S3CRET", "s3cret"));
    EXPECT_EQ(unauthorized("/v1/messages").body()["error"]["type"], "authentication_error");
    EXPECT_EQ(unauthorized("/v1/chat/completions").status(), 401);
    EXPECT_EQ(unauthorized("/v1/chat/completions").body()["error"]["code"], "invalid_api_key");
}

TEST(Api, ResponseIdsHaveTheApiPrefixAndDiffer) {
    EXPECT_EQ(response_id(Endpoint::chat_completions, 1).rfind("chatcmpl-", 0), 0u);
    EXPECT_EQ(response_id(Endpoint::completions, 1).rfind("cmpl-", 0), 0u);
    EXPECT_EQ(response_id(Endpoint::messages, 1).rfind("msg_", 0), 0u);
    std::set<std::string> ids;
    for (std::uint64_t n = 0; n < 100; ++n) ids.insert(response_id(Endpoint::messages, n));
    EXPECT_EQ(ids.size(), 100u);
}

TEST(Api, FallbackChatPrompt) {
    const tokenizer::ChatMessage msgs[] = {{"system", "Stories."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Go"}};
    EXPECT_EQ(fallback_chat_prompt(msgs, true), "Stories.\n\nUser: Hi\n\nAssistant: Hello\n\nUser: Go\n\nAssistant:");
    EXPECT_EQ(fallback_chat_prompt(std::span(msgs).first(2), false), "Stories.\n\nUser: Hi\n\n");
}

}  // namespace
}  // namespace optiq::serve::test

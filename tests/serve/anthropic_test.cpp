#include "optiq/serve/anthropic.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace optiq::serve::test {
namespace {

RequestLimits limits() {
    RequestLimits l;
    l.models = {"stories"};
    l.context = 512;
    return l;
}

api_error messages_error(const std::string& body) {
    try {
        (void)anthropic::parse_messages_request(body, limits());
    } catch (const api_error& e) {
        const auto b = e.body();
        EXPECT_EQ(b["type"], "error") << b.dump();
        EXPECT_TRUE(b["error"]["type"].is_string());
        EXPECT_TRUE(b["error"]["message"].is_string());
        EXPECT_EQ(e.api(), Api::anthropic);
        return e;
    }
    ADD_FAILURE() << "no error for " << body;
    return api_error(Api::anthropic, ErrorKind::internal, "none");
}

TEST(AnthropicMessages, ParsesSystemMessagesAndSampling) {
    const auto r = anthropic::parse_messages_request(R"({
        "model": "stories", "max_tokens": 32,
        "system": [{"type": "text", "text": "You tell stories."}],
        "messages": [
            {"role": "user", "content": "Tell one"},
            {"role": "assistant", "content": [{"type": "text", "text": "Once"}]},
            {"role": "user", "content": "More"}],
        "stop_sequences": ["The end"], "temperature": 0.3, "top_k": 5, "top_p": 0.8, "stream": true,
        "metadata": {"user_id": "u"}})",
                                                     limits());
    EXPECT_EQ(r.endpoint, Endpoint::messages);
    ASSERT_EQ(r.messages.size(), 4u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[0].content, "You tell stories.");
    EXPECT_EQ(r.messages[2].content, "Once");
    EXPECT_EQ(r.max_tokens, 32u);
    EXPECT_EQ(r.stop, std::vector<std::string>{"The end"});
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.3f);
    EXPECT_EQ(r.sampling.top_k, 5u);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.8f);
    EXPECT_TRUE(r.stream);
}

TEST(AnthropicMessages, TemperatureDefaultsToOneAndSystemStringWorks) {
    const auto r = anthropic::parse_messages_request(
        R"({"model": "stories", "max_tokens": 1, "system": "S", "messages": [{"role": "user", "content": "x"}]})", limits());
    EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
    EXPECT_EQ(r.messages.front().content, "S");
}

TEST(AnthropicMessages, ErrorsInAnthropicShape) {
    const std::string ok_msgs = R"("messages": [{"role": "user", "content": "Hi"}])";
    auto body = [&](const std::string& extra) {
        return std::string(R"({"model": "stories", "max_tokens": 8, )") + ok_msgs + ", " + extra + "}";
    };
    const std::pair<std::string, int> cases[] = {
        {"not json", 400},
        {"[]", 400},
        {R"({"model": "stories", )" + ok_msgs + "}", 400},                      // max_tokens is required
        {R"({"model": "stories", "max_tokens": 0, )" + ok_msgs + "}", 400},
        {R"({"model": "stories", "max_tokens": 100000, )" + ok_msgs + "}", 400},
        {R"({"model": "stories", "max_tokens": "8", )" + ok_msgs + "}", 400},
        {R"({"model": "claude-x", "max_tokens": 8, )" + ok_msgs + "}", 404},
        {R"({"max_tokens": 8, )" + ok_msgs + "}", 400},
        {R"({"model": "stories", "max_tokens": 8})", 400},
        {R"({"model": "stories", "max_tokens": 8, "messages": []})", 400},
        {R"({"model": "stories", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]})", 400},
        {R"({"model": "stories", "max_tokens": 8, "messages": [{"role": "user"}]})", 400},
        {R"({"model": "stories", "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "image"}]}]})", 400},
        {body(R"("temperature": 1.5)"), 400},
        {body(R"("top_k": "3")"), 400},
        {body(R"("stop_sequences": "END")"), 400},  // a list, unlike OpenAI's stop
        {body(R"("stop_sequences": [""])"), 400},
        {body(R"("system": 3)"), 400},
        {body(R"("stream": 1)"), 400},
        {body(R"("tools": [])"), 400},
    };
    for (const auto& [b, status] : cases) {
        const auto e = messages_error(b);
        EXPECT_EQ(e.status(), status) << b;
        EXPECT_EQ(e.body()["error"]["type"], status == 404 ? "not_found_error" : "invalid_request_error") << b;
    }
}

TEST(AnthropicErrors, TypesOfEveryKind) {
    auto type = [](ErrorKind k) { return api_error(Api::anthropic, k, "m").body()["error"]["type"]; };
    EXPECT_EQ(type(ErrorKind::authentication), "authentication_error");
    EXPECT_EQ(type(ErrorKind::overloaded), "overloaded_error");
    EXPECT_EQ(type(ErrorKind::internal), "api_error");
    EXPECT_EQ(api_error(Api::openai, ErrorKind::not_found, "m").as(Api::anthropic).body()["error"]["type"], "not_found_error");
}

Completion done(FinishReason f) {
    Completion c;
    c.text = "Once upon";
    c.finish = f;
    c.prompt_tokens = 9;
    c.completion_tokens = 4;
    if (f == FinishReason::stop_string) c.stop_string = "Lily";
    return c;
}

TEST(AnthropicResponse, MessageShapeAndStopReasons) {
    const auto j = anthropic::message_response({"msg_1", 0, "stories"}, done(FinishReason::stop_string));
    EXPECT_EQ(j["type"], "message");
    EXPECT_EQ(j["role"], "assistant");
    EXPECT_EQ(j["id"], "msg_1");
    ASSERT_EQ(j["content"].size(), 1u);
    EXPECT_EQ(j["content"][0]["type"], "text");
    EXPECT_EQ(j["content"][0]["text"], "Once upon");
    EXPECT_EQ(j["stop_reason"], "stop_sequence");
    EXPECT_EQ(j["stop_sequence"], "Lily");
    EXPECT_EQ(j["usage"]["input_tokens"], 9);
    EXPECT_EQ(j["usage"]["output_tokens"], 4);
    const ResponseMeta m{"msg_2", 0, "stories"};
    EXPECT_EQ(anthropic::message_response(m, done(FinishReason::stop_token))["stop_reason"], "end_turn");
    EXPECT_TRUE(anthropic::message_response(m, done(FinishReason::stop_token))["stop_sequence"].is_null());
    EXPECT_EQ(anthropic::message_response(m, done(FinishReason::max_tokens))["stop_reason"], "max_tokens");
    EXPECT_EQ(anthropic::message_response(m, done(FinishReason::context_full))["stop_reason"], "max_tokens");
}

/// (event name, data) of each SSE event.
std::vector<std::pair<std::string, nlohmann::json>> events(const std::string& text) {
    std::vector<std::pair<std::string, nlohmann::json>> out;
    std::size_t p = 0;
    while ((p = text.find("event: ", p)) != std::string::npos) {
        const std::size_t nl = text.find('\n', p);
        const std::string name = text.substr(p + 7, nl - p - 7);
        EXPECT_EQ(text.compare(nl + 1, 6, "data: "), 0);
        const std::size_t end = text.find("\n\n", nl);
        out.emplace_back(name, nlohmann::json::parse(text.substr(nl + 7, end - nl - 7)));
        p = end;
    }
    return out;
}

TEST(AnthropicStream, EventSequence) {
    anthropic::MessageStream s({"msg_3", 0, "stories"}, 9);
    const auto ev = events(s.start() + s.delta("Once") + s.delta("") + s.delta(" upon") + s.finish(done(FinishReason::max_tokens)));
    const std::vector<std::string> names = {"message_start", "content_block_start", "ping", "content_block_delta",
                                            "content_block_delta", "content_block_stop", "message_delta", "message_stop"};
    ASSERT_EQ(ev.size(), names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(ev[i].first, names[i]);
        EXPECT_EQ(ev[i].second["type"], names[i]);  // the data's type repeats the event name
    }
    EXPECT_EQ(ev[0].second["message"]["usage"]["input_tokens"], 9);
    EXPECT_TRUE(ev[0].second["message"]["content"].empty());
    EXPECT_TRUE(ev[0].second["message"]["stop_reason"].is_null());
    EXPECT_EQ(ev[1].second["content_block"]["type"], "text");
    EXPECT_EQ(ev[3].second["delta"]["type"], "text_delta");
    EXPECT_EQ(ev[3].second["delta"]["text"], "Once");
    EXPECT_EQ(ev[4].second["delta"]["text"], " upon");
    EXPECT_EQ(ev[6].second["delta"]["stop_reason"], "max_tokens");
    EXPECT_EQ(ev[6].second["usage"]["output_tokens"], 4);
}

TEST(AnthropicStream, ErrorAndKeepalive) {
    anthropic::MessageStream s({"msg_4", 0, "stories"}, 1);
    const auto ev = events(s.error(api_error(Api::openai, ErrorKind::overloaded, "busy")) + s.keepalive());
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].first, "error");
    EXPECT_EQ(ev[0].second["error"]["type"], "overloaded_error");
    EXPECT_EQ(ev[0].second["error"]["message"], "busy");
    EXPECT_EQ(ev[1].first, "ping");
}

}  // namespace
}  // namespace optiq::serve::test

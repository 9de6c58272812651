#include "optiq/serve/openai.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace optiq::serve::test {
namespace {

RequestLimits limits() {
    RequestLimits l;
    l.models = {"stories"};
    l.context = 512;
    l.vocab_size = 512;
    return l;
}

/// The api_error a body raises, checked to be an OpenAI-shaped error.
api_error chat_error(const std::string& body, std::function<GenerationRequest(std::string_view, const RequestLimits&)> parse =
                                                  openai::parse_chat_request) {
    try {
        (void)parse(body, limits());
    } catch (const api_error& e) {
        const auto b = e.body();
        EXPECT_TRUE(b.contains("error")) << b.dump();
        EXPECT_TRUE(b["error"]["message"].is_string());
        EXPECT_TRUE(b["error"]["type"].is_string());
        EXPECT_TRUE(b["error"].contains("param") && b["error"].contains("code"));
        EXPECT_EQ(e.api(), Api::openai);
        return e;
    }
    ADD_FAILURE() << "no error for " << body;
    return api_error(Api::openai, ErrorKind::internal, "none");
}

constexpr const char* kHello = R"("model": "stories", "messages": [{"role": "user", "content": "Hi"}])";

std::string with(const std::string& extra) { return std::string("{") + kHello + ", " + extra + "}"; }

TEST(OpenAIChat, ParsesMessagesAndSampling) {
    const auto r = openai::parse_chat_request(R"({
        "model": "stories",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Again"}],
        "max_completion_tokens": 7, "max_tokens": 99,
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": -3,
        "stop": ["\n\n", "END"], "stream": true, "stream_options": {"include_usage": true},
        "user": "ignored", "frequency_penalty": 0.5})",
                                              limits());
    EXPECT_EQ(r.endpoint, Endpoint::chat_completions);
    ASSERT_EQ(r.messages.size(), 4u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[1].content, "Hello, world");
    EXPECT_EQ(r.messages[3].role, "user");
    EXPECT_EQ(r.max_tokens, 7u);  // max_completion_tokens wins over the deprecated max_tokens
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
    EXPECT_EQ(r.sampling.top_k, 40u);
    EXPECT_TRUE(r.seed_given);
    EXPECT_EQ(r.sampling.seed, static_cast<std::uint64_t>(-3));
    EXPECT_EQ(r.stop, (std::vector<std::string>{"\n\n", "END"}));
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
}

TEST(OpenAIChat, DefaultsAndNulls) {
    const auto r = openai::parse_chat_request(with(R"("max_tokens": null, "temperature": null, "stop": "x")"), limits());
    EXPECT_FALSE(r.max_tokens.has_value());
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.0f);
    EXPECT_FALSE(r.seed_given);
    EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
    EXPECT_FALSE(r.stream);
    // top_p 0 keeps only the most likely token: greedy.
    const auto g = openai::parse_chat_request(with(R"("temperature": 1.5, "top_p": 0)"), limits());
    EXPECT_FLOAT_EQ(g.sampling.temperature, 0.0f);
}

TEST(OpenAIChat, MalformedJsonAndWrongBodyTypes) {
    for (const char* body : {"", "{", "{\"model\": }", "[1, 2]", "\"text\"", "null", "{\"model\":\"stories\",}"}) {
        const auto e = chat_error(body);
        EXPECT_EQ(e.status(), 400) << body;
        EXPECT_EQ(e.body()["error"]["type"], "invalid_request_error");
    }
}

TEST(OpenAIChat, EveryFieldErrorNamesTheField) {
    struct Case {
        std::string body, param;
    };
    const Case cases[] = {
        {R"({"messages": [{"role": "user", "content": "Hi"}]})", "model"},
        {R"({"model": 7, "messages": [{"role": "user", "content": "Hi"}]})", "model"},
        {R"({"model": "stories"})", "messages"},
        {R"({"model": "stories", "messages": {}})", "messages"},
        {R"({"model": "stories", "messages": []})", "messages"},
        {R"({"model": "stories", "messages": [3]})", "messages[0]"},
        {R"({"model": "stories", "messages": [{"content": "Hi"}]})", "messages[0].role"},
        {R"({"model": "stories", "messages": [{"role": "wizard", "content": "Hi"}]})", "messages[0].role"},
        {R"({"model": "stories", "messages": [{"role": "user"}]})", "messages[0].content"},
        {R"({"model": "stories", "messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
        {R"({"model": "stories", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
         "messages[0].content"},
        {with(R"("max_tokens": 0)"), "max_tokens"},
        {with(R"("max_tokens": -5)"), "max_tokens"},
        {with(R"("max_tokens": 513)"), "max_tokens"},
        {with(R"("max_tokens": 18446744073709551615)"), "max_tokens"},
        {with(R"("max_tokens": 10.5)"), "max_tokens"},
        {with(R"("max_tokens": "10")"), "max_tokens"},
        {with(R"("max_completion_tokens": 0)"), "max_completion_tokens"},
        {with(R"("temperature": "hot")"), "temperature"},
        {with(R"("temperature": 2.5)"), "temperature"},
        {with(R"("temperature": -0.1)"), "temperature"},
        {with(R"("top_p": 1.5)"), "top_p"},
        {with(R"("top_k": -1)"), "top_k"},
        {with(R"("top_k": 1.5)"), "top_k"},
        {with(R"("seed": "x")"), "seed"},
        {with(R"("seed": 1.5)"), "seed"},
        {with(R"("stop": 3)"), "stop"},
        {with(R"("stop": [1])"), "stop"},
        {with(R"("stop": [""])"), "stop"},
        {with(R"("stop": ["a", "b", "c", "d", "e"])"), "stop"},
        {with(R"("stream": "yes")"), "stream"},
        {with(R"("stream_options": {"include_usage": true})"), "stream_options"},
        {with(R"("stream": true, "stream_options": 1)"), "stream_options"},
        {with(R"("n": 2)"), "n"},
        {with(R"("logprobs": true)"), "logprobs"},
        {with(R"("tools": [])"), "tools"},
        {with(R"("presence_penalty": 3)"), "presence_penalty"},
    };
    for (const auto& c : cases) {
        const auto e = chat_error(c.body);
        EXPECT_EQ(e.status(), 400) << c.body;
        EXPECT_EQ(e.body()["error"]["param"], c.param) << c.body << " -> " << e.body().dump();
    }
}

TEST(OpenAIChat, UnknownModelIs404ModelNotFound) {
    const auto e = chat_error(R"({"model": "gpt-4", "messages": [{"role": "user", "content": "Hi"}]})");
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.body()["error"]["code"], "model_not_found");
    EXPECT_NE(e.body()["error"]["message"].get<std::string>().find("gpt-4"), std::string::npos);
    // No model list: any name is served.
    EXPECT_NO_THROW((void)openai::parse_chat_request(R"({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})"));
}

TEST(OpenAICompletion, PromptForms) {
    auto parse = [](const std::string& prompt) {
        return openai::parse_completion_request(R"({"model": "stories", "prompt": )" + prompt + "}", limits());
    };
    EXPECT_EQ(parse(R"("Once")").prompt, "Once");
    EXPECT_EQ(parse(R"(["Once"])").prompt, "Once");
    const auto ids = parse("[1, 403, 511]");
    EXPECT_TRUE(ids.prompt_is_ids);
    EXPECT_EQ(ids.prompt_ids, (std::vector<TokenId>{1, 403, 511}));
    EXPECT_FALSE(parse(R"("x")").is_chat());
}

TEST(OpenAICompletion, BadPrompts) {
    auto err = [](const std::string& extra) {
        return chat_error(R"({"model": "stories", )" + extra + "}", openai::parse_completion_request);
    };
    for (const char* p : {R"("prompt": 5)", R"("prompt": [])", R"("prompt": ["a", "b"])", R"("prompt": [1, "a"])",
                          R"("prompt": [1, 512])", R"("prompt": [-1])", R"("prompt": [1.5])", R"("prompt": {})",
                          R"("prompt": [99999999999999999999])"}) {
        const auto e = err(p);
        EXPECT_EQ(e.status(), 400) << p;
        EXPECT_EQ(e.body()["error"]["param"], "prompt") << p;
    }
    EXPECT_EQ(err(R"("max_tokens": 4)").body()["error"]["param"], "prompt");  // missing
    EXPECT_EQ(err(R"("prompt": "a", "echo": true)").body()["error"]["param"], "echo");
    EXPECT_EQ(err(R"("prompt": "a", "suffix": "b")").body()["error"]["param"], "suffix");
    EXPECT_EQ(err(R"("prompt": "a", "best_of": 3)").body()["error"]["param"], "best_of");
    EXPECT_EQ(err(R"("prompt": "a", "logprobs": 2)").body()["error"]["param"], "logprobs");
}

Completion done(FinishReason f, std::string text = "Once upon") {
    Completion c;
    c.text = std::move(text);
    c.finish = f;
    c.prompt_tokens = 5;
    c.completion_tokens = 3;
    return c;
}

TEST(OpenAIResponse, ChatCompletionShape) {
    const ResponseMeta meta{"chatcmpl-1", 1700000000, "stories"};
    const auto j = openai::chat_response(meta, done(FinishReason::stop_string));
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["id"], "chatcmpl-1");
    EXPECT_EQ(j["created"], 1700000000);
    EXPECT_EQ(j["model"], "stories");
    ASSERT_EQ(j["choices"].size(), 1u);
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(j["choices"][0]["message"]["content"], "Once upon");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
    EXPECT_EQ(j["usage"]["completion_tokens"], 3);
    EXPECT_EQ(j["usage"]["total_tokens"], 8);
    EXPECT_EQ(openai::chat_response(meta, done(FinishReason::max_tokens))["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(openai::chat_response(meta, done(FinishReason::context_full))["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(openai::chat_response(meta, done(FinishReason::stop_token))["choices"][0]["finish_reason"], "stop");
}

TEST(OpenAIResponse, TextCompletionAndModels) {
    const auto j = openai::completion_response({"cmpl-1", 1, "stories"}, done(FinishReason::max_tokens, " there"));
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["choices"][0]["text"], " there");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["total_tokens"], 8);
    const std::string names[] = {"a", "b"};
    const auto m = openai::models_response(names, 42);
    EXPECT_EQ(m["object"], "list");
    ASSERT_EQ(m["data"].size(), 2u);
    EXPECT_EQ(m["data"][1]["id"], "b");
    EXPECT_EQ(m["data"][0]["object"], "model");
}

/// The JSON of every "data:" line of an SSE text; "[DONE]" as the string "[DONE]".
std::vector<nlohmann::json> data_events(const std::string& sse_text) {
    std::vector<nlohmann::json> out;
    std::size_t p = 0;
    while ((p = sse_text.find("data: ", p)) != std::string::npos) {
        const std::size_t e = sse_text.find("\n\n", p);
        const std::string d = sse_text.substr(p + 6, e - p - 6);
        out.push_back(d == "[DONE]" ? nlohmann::json("[DONE]") : nlohmann::json::parse(d));
        p = e;
    }
    return out;
}

TEST(OpenAIStream, ChatChunksRoleDeltasFinishUsageDone) {
    openai::ChatStream s({"chatcmpl-2", 7, "stories"}, true);
    std::string text = s.start() + s.delta("Once") + s.delta("") + s.delta(" upon") + s.finish(done(FinishReason::stop_token));
    const auto ev = data_events(text);
    ASSERT_EQ(ev.size(), 6u) << text;
    EXPECT_EQ(ev[0]["choices"][0]["delta"]["role"], "assistant");
    EXPECT_EQ(ev[1]["object"], "chat.completion.chunk");
    EXPECT_EQ(ev[1]["choices"][0]["delta"]["content"], "Once");
    EXPECT_TRUE(ev[1]["choices"][0]["finish_reason"].is_null());
    EXPECT_TRUE(ev[1]["usage"].is_null());
    EXPECT_EQ(ev[2]["choices"][0]["delta"]["content"], " upon");
    EXPECT_EQ(ev[3]["choices"][0]["finish_reason"], "stop");
    EXPECT_TRUE(ev[3]["choices"][0]["delta"].empty());
    EXPECT_TRUE(ev[4]["choices"].empty());
    EXPECT_EQ(ev[4]["usage"]["completion_tokens"], 3);
    EXPECT_EQ(ev[5], "[DONE]");
    EXPECT_EQ(s.keepalive()[0], ':');  // an SSE comment: ignored by clients
}

TEST(OpenAIStream, CompletionChunksWithoutUsage) {
    openai::ChatStream s({"cmpl-3", 7, "stories"}, false, false);
    EXPECT_EQ(s.start(), "");
    const auto ev = data_events(s.delta("Lily") + s.finish(done(FinishReason::max_tokens)));
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[0]["object"], "text_completion");
    EXPECT_EQ(ev[0]["choices"][0]["text"], "Lily");
    EXPECT_FALSE(ev[0].contains("usage"));
    EXPECT_EQ(ev[1]["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(ev[2], "[DONE]");
}

TEST(OpenAIStream, MidStreamErrorIsAnErrorObjectThenDone) {
    openai::ChatStream s({"chatcmpl-4", 7, "stories"}, false);
    const auto ev = data_events(s.error(api_error(Api::anthropic, ErrorKind::internal, "boom")));
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0]["error"]["message"], "boom");
    EXPECT_EQ(ev[0]["error"]["type"], "server_error");
    EXPECT_EQ(ev[1], "[DONE]");
}

TEST(OpenAIErrors, KindsMapToStatusTypeAndCode) {
    EXPECT_EQ(api_error(Api::openai, ErrorKind::authentication, "k").status(), 401);
    EXPECT_EQ(api_error(Api::openai, ErrorKind::authentication, "k").body()["error"]["code"], "invalid_api_key");
    EXPECT_EQ(api_error(Api::openai, ErrorKind::overloaded, "k").status(), 503);
    EXPECT_EQ(api_error(Api::openai, ErrorKind::overloaded, "k").body()["error"]["type"], "server_error");
    EXPECT_EQ(api_error(Api::openai, ErrorKind::internal, "k").status(), 500);
    const auto e = api_error(Api::openai, ErrorKind::invalid_request, "long", "prompt", "context_length_exceeded");
    EXPECT_EQ(e.body()["error"]["code"], "context_length_exceeded");
    EXPECT_EQ(e.body()["error"]["param"], "prompt");
    EXPECT_TRUE(api_error(Api::openai, ErrorKind::invalid_request, "x").body()["error"]["param"].is_null());
}

TEST(Sse, InvalidUtf8IsReplacedNotThrown) {
    EXPECT_EQ(sse(nlohmann::json("a\xff"), "x"), "event: x\ndata: \"a\xEF\xBF\xBD\"\n\n");
}

}  // namespace
}  // namespace optiq::serve::test

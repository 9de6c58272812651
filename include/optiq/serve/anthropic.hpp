#pragma once
// Anthropic's Messages API shapes (docs.anthropic.com/en/api/messages), request to
// GenerationRequest and Completion to response, no sockets:
//   POST /v1/messages  a "message" object, or the event sequence message_start,
//                      content_block_start, ping, content_block_delta (text_delta)...,
//                      content_block_stop, message_delta (stop_reason, usage.output_tokens),
//                      message_stop.
// Request fields: model, max_tokens (1..context) and messages (roles user / assistant; content a
// string or text blocks) are required; system (a string or text blocks) becomes the first
// message; stop_sequences (a list of strings), temperature [0, 1], top_p [0, 1] (0: greedy),
// top_k >= 0, stream. Image / tool blocks and tools are refused with 400; metadata and other
// fields are ignored. stop_reason: end_turn (end-of-sequence token), stop_sequence (with the
// matched string in stop_sequence), max_tokens (max_tokens or the end of the context).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "optiq/serve/request.hpp"

namespace optiq::serve::anthropic {

/// POST /v1/messages.
[[nodiscard]] inline GenerationRequest parse_messages_request(std::string_view body, const RequestLimits& limits = {}) {
    const nlohmann::json j = serve::detail::parse_object(Api::anthropic, body);
    const serve::detail::Fields f{Api::anthropic, j};
    GenerationRequest r;
    r.endpoint = Endpoint::messages;
    r.model = f.string("model", f.require("model"));
    serve::detail::check_model(Api::anthropic, r.model, limits);
    serve::detail::set_max_tokens(r, f, "max_tokens", limits, true);
    if (const auto* sys = f.get("system")) {
        std::string text = serve::detail::content_text(f, "system", *sys);
        if (!text.empty()) r.messages.push_back({"system", std::move(text)});
    }
    const nlohmann::json& msgs = f.require("messages");
    if (!msgs.is_array()) f.bad("messages", optiq::detail::concat("expected a list, got ", msgs.type_name()));
    if (msgs.empty()) f.bad("messages", "must hold at least one message");
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        const std::string field = optiq::detail::concat("messages.", i);
        const auto& m = msgs[i];
        if (!m.is_object()) f.bad(field, optiq::detail::concat("expected an object, got ", m.type_name()));
        const auto role = m.find("role");
        if (role == m.end() || !role->is_string()) f.bad(field + ".role", "a string role is required");
        if (*role != "user" && *role != "assistant")
            f.bad(field + ".role", optiq::detail::concat("'", role->get<std::string>(), "' is not one of user, assistant"));
        const auto content = m.find("content");
        if (content == m.end() || content->is_null()) f.bad(field + ".content", "is required");
        r.messages.push_back({role->get<std::string>(), serve::detail::content_text(f, field + ".content", *content)});
    }
    r.stop = f.strings("stop_sequences", limits.max_stop, true);
    if (auto t = f.opt_number("temperature", 0.0, 1.0)) r.sampling.temperature = static_cast<float>(*t);
    else r.sampling.temperature = 1.0f;  // Anthropic's default
    if (auto p = f.opt_number("top_p", 0.0, 1.0)) {
        if (*p == 0.0) r.sampling.temperature = 0.0f;
        else r.sampling.top_p = static_cast<float>(*p);
    }
    if (auto k = f.opt_int("top_k", 0, std::int64_t{1} << 30)) r.sampling.top_k = static_cast<std::size_t>(*k);
    r.stream = f.opt_bool("stream").value_or(false);
    if (f.get("tools") || f.get("tool_choice")) f.bad("tools", "tools are not supported");
    return r;
}

[[nodiscard]] inline const char* stop_reason(FinishReason f) noexcept {
    switch (f) {
        case FinishReason::stop_token: return "end_turn";
        case FinishReason::stop_string: return "stop_sequence";
        case FinishReason::max_tokens:
        case FinishReason::context_full: return "max_tokens";
        case FinishReason::cancelled:
        case FinishReason::error: return "end_turn";
    }
    return "end_turn";
}

[[nodiscard]] inline nlohmann::json stop_sequence(const Completion& c) {
    return c.finish == FinishReason::stop_string ? nlohmann::json(c.stop_string) : nlohmann::json(nullptr);
}

/// A "message" object.
[[nodiscard]] inline nlohmann::json message_response(const ResponseMeta& meta, const Completion& c) {
    return {{"id", meta.id},
            {"type", "message"},
            {"role", "assistant"},
            {"model", meta.model},
            {"content", nlohmann::json::array({{{"type", "text"}, {"text", c.text}}})},
            {"stop_reason", stop_reason(c.finish)},
            {"stop_sequence", stop_sequence(c)},
            {"usage", {{"input_tokens", c.prompt_tokens}, {"output_tokens", c.completion_tokens}}}};
}

/// The message_start event's data: the message with empty content and no stop reason yet.
[[nodiscard]] inline nlohmann::json message_start(const ResponseMeta& meta, std::size_t input_tokens) {
    return {{"type", "message_start"},
            {"message",
             {{"id", meta.id},
              {"type", "message"},
              {"role", "assistant"},
              {"model", meta.model},
              {"content", nlohmann::json::array()},
              {"stop_reason", nullptr},
              {"stop_sequence", nullptr},
              {"usage", {{"input_tokens", input_tokens}, {"output_tokens", 0}}}}}};
}

[[nodiscard]] inline nlohmann::json content_block_start() {
    return {{"type", "content_block_start"}, {"index", 0}, {"content_block", {{"type", "text"}, {"text", ""}}}};
}
[[nodiscard]] inline nlohmann::json content_block_delta(std::string_view text) {
    return {{"type", "content_block_delta"}, {"index", 0}, {"delta", {{"type", "text_delta"}, {"text", text}}}};
}
[[nodiscard]] inline nlohmann::json content_block_stop() { return {{"type", "content_block_stop"}, {"index", 0}}; }
[[nodiscard]] inline nlohmann::json message_delta(const Completion& c) {
    return {{"type", "message_delta"},
            {"delta", {{"stop_reason", stop_reason(c.finish)}, {"stop_sequence", stop_sequence(c)}}},
            {"usage", {{"output_tokens", c.completion_tokens}}}};
}
[[nodiscard]] inline nlohmann::json message_stop() { return {{"type", "message_stop"}}; }
[[nodiscard]] inline nlohmann::json ping() { return {{"type", "ping"}}; }

/// SSE for /v1/messages: named events; a mid-stream error is an "error" event.
class MessageStream final : public StreamEncoder {
public:
    MessageStream(ResponseMeta meta, std::size_t input_tokens) : meta_(std::move(meta)), input_tokens_(input_tokens) {}

    [[nodiscard]] std::string start() override {
        return sse(message_start(meta_, input_tokens_), "message_start") +
               sse(content_block_start(), "content_block_start") + sse(ping(), "ping");
    }
    [[nodiscard]] std::string delta(std::string_view text) override {
        return text.empty() ? std::string() : sse(content_block_delta(text), "content_block_delta");
    }
    [[nodiscard]] std::string finish(const Completion& c) override {
        return sse(content_block_stop(), "content_block_stop") + sse(message_delta(c), "message_delta") +
               sse(message_stop(), "message_stop");
    }
    [[nodiscard]] std::string error(const api_error& e) override { return sse(e.as(Api::anthropic).body(), "error"); }
    [[nodiscard]] std::string keepalive() override { return sse(ping(), "ping"); }

private:
    ResponseMeta meta_;
    std::size_t input_tokens_;
};

}  // namespace optiq::serve::anthropic

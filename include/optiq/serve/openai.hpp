#pragma once
// OpenAI's HTTP API shapes (platform.openai.com/docs/api-reference), request to GenerationRequest
// and Completion to response, no sockets:
//   POST /v1/chat/completions  chat.completion, or chat.completion.chunk events ending in [DONE]
//   POST /v1/completions       text_completion (streamed as text_completion chunks)
//   GET  /v1/models            list of model objects
// Request fields: model (required), messages (chat; roles system / developer / user / assistant /
// tool, content a string or text parts) or prompt (completions; a string, a list of one string, or
// a list of token ids), max_tokens / max_completion_tokens (1..context), temperature [0, 2],
// top_p [0, 1] (0 means greedy: the smallest set reaching mass 0 is the top token), top_k >= 0
// (an extension, as vLLM and llama.cpp accept it), stop (a string or up to 4 strings), seed,
// stream, stream_options.include_usage. n > 1, logprobs, echo, suffix, best_of > 1 and tools are
// refused with 400 rather than silently ignored; other fields (user, penalties, ...) are ignored.
// finish_reason: "stop" for an end-of-sequence token or a stop string, "length" for max_tokens or
// the end of the context.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/serve/request.hpp"

namespace optiq::serve::openai {

/// OpenAI allows at most 4 stop sequences.
inline constexpr std::size_t kMaxStop = 4;

namespace detail {

using serve::detail::Fields;

inline void common_fields(GenerationRequest& r, const Fields& f, const RequestLimits& limits) {
    r.model = f.string("model", f.require("model"));
    serve::detail::check_model(Api::openai, r.model, limits);
    if (f.get("max_completion_tokens")) serve::detail::set_max_tokens(r, f, "max_completion_tokens", limits, false);
    else serve::detail::set_max_tokens(r, f, "max_tokens", limits, false);
    if (auto t = f.opt_number("temperature", 0.0, 2.0)) r.sampling.temperature = static_cast<float>(*t);
    if (auto p = f.opt_number("top_p", 0.0, 1.0)) {
        if (*p == 0.0) r.sampling.temperature = 0.0f;
        else r.sampling.top_p = static_cast<float>(*p);
    }
    if (auto k = f.opt_int("top_k", 0, std::int64_t{1} << 30)) r.sampling.top_k = static_cast<std::size_t>(*k);
    if (auto s = f.opt_seed("seed")) {
        r.sampling.seed = *s;
        r.seed_given = true;
    }
    r.stop = f.strings("stop", std::min(kMaxStop, limits.max_stop), false);
    r.stream = f.opt_bool("stream").value_or(false);
    if (const auto* so = f.get("stream_options")) {
        if (!r.stream) f.bad("stream_options", "is only allowed when stream is true");
        if (!so->is_object()) f.bad("stream_options", optiq::detail::concat("expected an object, got ", so->type_name()));
        r.include_usage = Fields{Api::openai, *so}.opt_bool("include_usage").value_or(false);
    }
    if (auto n = f.opt_int("n", 1, 128); n && *n != 1) f.bad("n", "only n = 1 is supported");
    if (f.opt_bool("logprobs").value_or(false)) f.bad("logprobs", "is not supported");
    if (f.get("frequency_penalty")) (void)f.opt_number("frequency_penalty", -2.0, 2.0);
    if (f.get("presence_penalty")) (void)f.opt_number("presence_penalty", -2.0, 2.0);
}

}  // namespace detail

/// POST /v1/chat/completions.
[[nodiscard]] inline GenerationRequest parse_chat_request(std::string_view body, const RequestLimits& limits = {}) {
    const nlohmann::json j = serve::detail::parse_object(Api::openai, body);
    const detail::Fields f{Api::openai, j};
    GenerationRequest r;
    r.endpoint = Endpoint::chat_completions;
    const nlohmann::json& msgs = f.require("messages");
    if (!msgs.is_array()) f.bad("messages", optiq::detail::concat("expected a list, got ", msgs.type_name()));
    if (msgs.empty()) f.bad("messages", "must hold at least one message");
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        const std::string field = optiq::detail::concat("messages[", i, "]");
        const auto& m = msgs[i];
        if (!m.is_object()) f.bad(field, optiq::detail::concat("expected an object, got ", m.type_name()));
        const detail::Fields mf{Api::openai, m};
        const auto role_it = m.find("role");
        if (role_it == m.end() || !role_it->is_string()) f.bad(field + ".role", "a string role is required");
        std::string role = role_it->get<std::string>();
        if (role == "developer") role = "system";  // o1-era name of the system role
        if (role != "system" && role != "user" && role != "assistant" && role != "tool")
            f.bad(field + ".role", optiq::detail::concat("'", role, "' is not one of system, developer, user, assistant, tool"));
        if (mf.get("tool_calls") || mf.get("function_call")) f.bad(field, "tool calls are not supported");
        const nlohmann::json* content = mf.get("content");
        if (!content) f.bad(field + ".content", "is required");
        r.messages.push_back({std::move(role), serve::detail::content_text(f, field + ".content", *content)});
    }
    if (f.get("tools") || f.get("functions")) f.bad(f.get("tools") ? "tools" : "functions", "tools are not supported");
    detail::common_fields(r, f, limits);
    return r;
}

/// POST /v1/completions.
[[nodiscard]] inline GenerationRequest parse_completion_request(std::string_view body, const RequestLimits& limits = {}) {
    const nlohmann::json j = serve::detail::parse_object(Api::openai, body);
    const detail::Fields f{Api::openai, j};
    GenerationRequest r;
    r.endpoint = Endpoint::completions;
    const nlohmann::json& p = f.require("prompt");
    if (p.is_string()) {
        r.prompt = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
        r.prompt = p[0].get<std::string>();
    } else if (p.is_array() && !p.empty() && p[0].is_number()) {
        r.prompt_is_ids = true;
        for (const auto& t : p) {
            if (!t.is_number_integer()) f.bad("prompt", "a token-id prompt must hold integers only");
            const auto id = t.is_number_unsigned() ? static_cast<std::int64_t>(std::min<std::uint64_t>(t.get<std::uint64_t>(), 1ull << 40))
                                                   : t.get<std::int64_t>();
            if (id < 0 || (limits.vocab_size && static_cast<std::uint64_t>(id) >= limits.vocab_size))
                f.bad("prompt", optiq::detail::concat("token id ", id, " is outside the vocabulary of ", limits.vocab_size));
            r.prompt_ids.push_back(static_cast<TokenId>(id));
        }
    } else if (p.is_array() && p.size() > 1) {
        f.bad("prompt", "a list of several prompts is not supported (send one request per prompt)");
    } else {
        f.bad("prompt", optiq::detail::concat("expected a string, a list of one string or a list of token ids, got ",
                                              p.is_array() ? "an empty or mixed list" : p.type_name()));
    }
    if (f.opt_bool("echo").value_or(false)) f.bad("echo", "is not supported");
    if (f.get("suffix")) f.bad("suffix", "is not supported");
    if (auto b = f.opt_int("best_of", 1, 128); b && *b != 1) f.bad("best_of", "only best_of = 1 is supported");
    if (const auto* lp = f.get("logprobs"); lp && !(lp->is_number_integer() && lp->get<std::int64_t>() == 0))
        f.bad("logprobs", "is not supported");
    detail::common_fields(r, f, limits);
    return r;
}

[[nodiscard]] inline const char* finish_reason(FinishReason f) noexcept {
    switch (f) {
        case FinishReason::stop_token:
        case FinishReason::stop_string: return "stop";
        case FinishReason::max_tokens:
        case FinishReason::context_full: return "length";
        case FinishReason::cancelled:
        case FinishReason::error: return "error";
    }
    return "stop";
}

[[nodiscard]] inline nlohmann::json usage(const Completion& c) {
    return {{"prompt_tokens", c.prompt_tokens},
            {"completion_tokens", c.completion_tokens},
            {"total_tokens", c.prompt_tokens + c.completion_tokens}};
}

/// A chat.completion object.
[[nodiscard]] inline nlohmann::json chat_response(const ResponseMeta& meta, const Completion& c) {
    return {{"id", meta.id},
            {"object", "chat.completion"},
            {"created", meta.created},
            {"model", meta.model},
            {"choices",
             nlohmann::json::array({{{"index", 0},
                                     {"message", {{"role", "assistant"}, {"content", c.text}}},
                                     {"logprobs", nullptr},
                                     {"finish_reason", finish_reason(c.finish)}}})},
            {"usage", usage(c)}};
}

/// A text_completion object.
[[nodiscard]] inline nlohmann::json completion_response(const ResponseMeta& meta, const Completion& c) {
    return {{"id", meta.id},
            {"object", "text_completion"},
            {"created", meta.created},
            {"model", meta.model},
            {"choices", nlohmann::json::array({{{"text", c.text},
                                                {"index", 0},
                                                {"logprobs", nullptr},
                                                {"finish_reason", finish_reason(c.finish)}}})},
            {"usage", usage(c)}};
}

/// One chat.completion.chunk: `delta` ({"role"}, {"content"} or {}), finish_reason null unless given.
[[nodiscard]] inline nlohmann::json chat_chunk(const ResponseMeta& meta, nlohmann::json delta,
                                               const char* finish = nullptr) {
    nlohmann::json choice = {{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (finish) choice["finish_reason"] = finish;
    return {{"id", meta.id},
            {"object", "chat.completion.chunk"},
            {"created", meta.created},
            {"model", meta.model},
            {"choices", nlohmann::json::array({std::move(choice)})}};
}

/// One streamed text_completion chunk.
[[nodiscard]] inline nlohmann::json completion_chunk(const ResponseMeta& meta, std::string_view text,
                                                     const char* finish = nullptr) {
    nlohmann::json choice = {{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (finish) choice["finish_reason"] = finish;
    return {{"id", meta.id},
            {"object", "text_completion"},
            {"created", meta.created},
            {"model", meta.model},
            {"choices", nlohmann::json::array({std::move(choice)})}};
}

/// The usage chunk of stream_options.include_usage: no choices, usage set.
[[nodiscard]] inline nlohmann::json usage_chunk(const ResponseMeta& meta, std::string_view object, const Completion& c) {
    return {{"id", meta.id},       {"object", object}, {"created", meta.created},
            {"model", meta.model}, {"choices", nlohmann::json::array()}, {"usage", usage(c)}};
}

/// GET /v1/models.
[[nodiscard]] inline nlohmann::json models_response(std::span<const std::string> names, std::int64_t created,
                                                    std::string_view owned_by = "optiq") {
    nlohmann::json data = nlohmann::json::array();
    for (const auto& n : names)
        data.push_back({{"id", n}, {"object", "model"}, {"created", created}, {"owned_by", owned_by}});
    return {{"object", "list"}, {"data", std::move(data)}};
}

/// SSE for /v1/chat/completions and /v1/completions: data-only events, "data: [DONE]" last; a
/// mid-stream error is a data event holding {"error": ...} (the openai client raises it).
class ChatStream final : public StreamEncoder {
public:
    ChatStream(ResponseMeta meta, bool include_usage, bool chat = true)
        : meta_(std::move(meta)), include_usage_(include_usage), chat_(chat) {}

    [[nodiscard]] std::string start() override {
        return chat_ ? sse(with_usage(chat_chunk(meta_, {{"role", "assistant"}, {"content", ""}}))) : std::string();
    }
    [[nodiscard]] std::string delta(std::string_view text) override {
        if (text.empty()) return {};
        return sse(with_usage(chat_ ? chat_chunk(meta_, {{"content", text}}) : completion_chunk(meta_, text)));
    }
    [[nodiscard]] std::string finish(const Completion& c) override {
        const char* why = finish_reason(c.finish);
        std::string out = sse(with_usage(chat_ ? chat_chunk(meta_, nlohmann::json::object(), why)
                                               : completion_chunk(meta_, "", why)));
        if (include_usage_) out += sse(usage_chunk(meta_, chat_ ? "chat.completion.chunk" : "text_completion", c));
        out += "data: [DONE]\n\n";
        return out;
    }
    [[nodiscard]] std::string error(const api_error& e) override {
        return sse(e.as(Api::openai).body()) + "data: [DONE]\n\n";
    }
    [[nodiscard]] std::string keepalive() override { return ": keep-alive\n\n"; }

private:
    // With include_usage every chunk carries "usage": null but the last (OpenAI's shape).
    nlohmann::json with_usage(nlohmann::json j) const {
        if (include_usage_) j["usage"] = nullptr;
        return j;
    }
    ResponseMeta meta_;
    bool include_usage_, chat_;
};

}  // namespace optiq::serve::openai

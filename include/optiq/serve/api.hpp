#pragma once
// One front door over serve/openai.hpp and serve/anthropic.hpp, by endpoint: parse a request body,
// build the response or the stream encoder, name responses, check API keys. A driver's HTTP
// handler is then: authorized()? -> parse_request -> Engine::submit -> response_json or
// stream_encoder; any api_error becomes (status(), body()).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "optiq/serve/anthropic.hpp"
#include "optiq/serve/openai.hpp"
#include "optiq/serve/request.hpp"

namespace optiq::serve {

/// The endpoint of a request path, or nullopt ("/v1/chat/completions", "/v1/completions", "/v1/messages").
[[nodiscard]] inline std::optional<Endpoint> endpoint_of(std::string_view path) noexcept {
    if (path == "/v1/chat/completions") return Endpoint::chat_completions;
    if (path == "/v1/completions") return Endpoint::completions;
    if (path == "/v1/messages") return Endpoint::messages;
    return std::nullopt;
}

[[nodiscard]] inline GenerationRequest parse_request(Endpoint e, std::string_view body, const RequestLimits& limits = {}) {
    switch (e) {
        case Endpoint::chat_completions: return openai::parse_chat_request(body, limits);
        case Endpoint::completions: return openai::parse_completion_request(body, limits);
        case Endpoint::messages: return anthropic::parse_messages_request(body, limits);
    }
    throw api_error(Api::openai, ErrorKind::not_found, "unknown endpoint");
}

/// The non-streamed response body.
[[nodiscard]] inline nlohmann::json response_json(Endpoint e, const ResponseMeta& meta, const Completion& c) {
    switch (e) {
        case Endpoint::chat_completions: return openai::chat_response(meta, c);
        case Endpoint::completions: return openai::completion_response(meta, c);
        case Endpoint::messages: return anthropic::message_response(meta, c);
    }
    return {};
}

[[nodiscard]] inline std::unique_ptr<StreamEncoder> stream_encoder(Endpoint e, ResponseMeta meta, bool include_usage,
                                                                   std::size_t prompt_tokens) {
    if (e == Endpoint::messages) return std::make_unique<anthropic::MessageStream>(std::move(meta), prompt_tokens);
    return std::make_unique<openai::ChatStream>(std::move(meta), include_usage, e == Endpoint::chat_completions);
}

/// The error a completion that did not finish normally (engine failure, shutdown) reports.
[[nodiscard]] inline api_error completion_error(Endpoint e, const Completion& c) {
    return api_error(api_of(e), ErrorKind::internal, c.error.empty() ? std::string("generation failed") : c.error);
}

/// "chatcmpl-…", "cmpl-…" or "msg_…" followed by 24 hex digits of `n` (a per-server counter
/// mixed with the start time, so ids differ across restarts).
[[nodiscard]] inline std::string response_id(Endpoint e, std::uint64_t n) {
    const char* prefix = e == Endpoint::chat_completions ? "chatcmpl-" : e == Endpoint::completions ? "cmpl-" : "msg_";
    char hex[32];
    std::snprintf(hex, sizeof hex, "%08llx%016llx", static_cast<unsigned long long>((n >> 32) ^ 0x6f707469u),
                  static_cast<unsigned long long>(n));
    return prefix + std::string(hex);
}

/// Whether the request carries `key` as "Authorization: Bearer KEY" (OpenAI clients) or
/// "x-api-key: KEY" (Anthropic clients). Always true when no key is configured. The comparison
/// takes the same time wherever the first difference is.
[[nodiscard]] inline bool authorized(std::string_view authorization, std::string_view x_api_key, std::string_view key) {
    if (key.empty()) return true;
    auto same = [&](std::string_view given) {
        if (given.size() != key.size()) return false;
        unsigned char diff = 0;
        for (std::size_t i = 0; i < key.size(); ++i)
            diff |= static_cast<unsigned char>(given[i] ^ key[i]);
        return diff == 0;
    };
    constexpr std::string_view bearer = "Bearer ";
    const bool by_bearer = authorization.size() > bearer.size() && authorization.substr(0, bearer.size()) == bearer &&
                           same(authorization.substr(bearer.size()));
    return by_bearer || (!x_api_key.empty() && same(x_api_key));
}

/// The 401 of a request without the right key, in the API of `path`.
[[nodiscard]] inline api_error unauthorized(std::string_view path) {
    const Api api = path == "/v1/messages" ? Api::anthropic : Api::openai;
    return api_error(api, ErrorKind::authentication,
                     "invalid API key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'");
}

}  // namespace optiq::serve

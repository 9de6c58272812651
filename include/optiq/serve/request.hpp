#pragma once
// What the OpenAI and Anthropic endpoints have in common: the GenerationRequest both parse into,
// the Completion the engine gives back, and api_error — the typed exception every bad request
// becomes, carrying its HTTP status and the error body in the dialect of the API that was called:
//   OpenAI     {"error": {"message", "type", "param", "code"}}
//   Anthropic  {"type": "error", "error": {"type", "message"}}
// No sockets here: serve/openai.hpp and serve/anthropic.hpp map JSON to and from these types, the
// engine (serve/engine.hpp) runs them, and a driver (examples/optiq-serve) moves the bytes.
//
// Chat prompts go through the model's chat template (tokenizer/chat_template.hpp). A model without
// one (a base model such as stories260K) gets the plain transcript fallback_chat_prompt() documents,
// so chat clients still work against it; the text is what a base model continues naturally.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/core/error.hpp"
#include "optiq/model/sampling.hpp"
#include "optiq/tokenizer/chat_template.hpp"

namespace optiq::serve {

using TokenId = std::int32_t;

enum class Api { openai, anthropic };
enum class Endpoint { chat_completions, completions, messages };

[[nodiscard]] constexpr Api api_of(Endpoint e) noexcept {
    return e == Endpoint::messages ? Api::anthropic : Api::openai;
}

/// What went wrong, independent of the API's spelling of it.
enum class ErrorKind { invalid_request, authentication, not_found, overloaded, internal };

[[nodiscard]] constexpr int http_status(ErrorKind k) noexcept {
    switch (k) {
        case ErrorKind::invalid_request: return 400;
        case ErrorKind::authentication: return 401;
        case ErrorKind::not_found: return 404;
        case ErrorKind::overloaded: return 503;
        case ErrorKind::internal: return 500;
    }
    return 500;
}

/// The error body of `api`. OpenAI's type/code follow what api.openai.com returns (an unknown
/// model is invalid_request_error / model_not_found, a bad key invalid_api_key); Anthropic's
/// types are those of its error documentation (invalid_request_error, authentication_error,
/// not_found_error, overloaded_error, api_error).
[[nodiscard]] inline nlohmann::json error_body(Api api, ErrorKind kind, std::string_view message,
                                               std::string_view param = {}, std::string_view code = {}) {
    if (api == Api::anthropic) {
        const char* type = "invalid_request_error";
        switch (kind) {
            case ErrorKind::invalid_request: type = "invalid_request_error"; break;
            case ErrorKind::authentication: type = "authentication_error"; break;
            case ErrorKind::not_found: type = "not_found_error"; break;
            case ErrorKind::overloaded: type = "overloaded_error"; break;
            case ErrorKind::internal: type = "api_error"; break;
        }
        return {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
    }
    const char* type = kind == ErrorKind::overloaded || kind == ErrorKind::internal ? "server_error"
                                                                                    : "invalid_request_error";
    std::string c(code);
    if (c.empty()) {
        if (kind == ErrorKind::authentication) c = "invalid_api_key";
        else if (kind == ErrorKind::not_found) c = "model_not_found";
        else if (kind == ErrorKind::overloaded) c = "server_overloaded";
    }
    nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!c.empty()) e["code"] = c;
    return {{"error", std::move(e)}};
}

/// A request the server refuses: HTTP status plus the API-specific body.
class api_error : public error {
public:
    api_error(Api api, ErrorKind kind, std::string message, std::string param = {}, std::string code = {})
        : error(message), api_(api), kind_(kind), message_(std::move(message)), param_(std::move(param)),
          code_(std::move(code)) {}

    [[nodiscard]] Api api() const noexcept { return api_; }
    [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }
    [[nodiscard]] int status() const noexcept { return http_status(kind_); }
    [[nodiscard]] const std::string& message() const noexcept { return message_; }
    [[nodiscard]] const std::string& param() const noexcept { return param_; }
    [[nodiscard]] nlohmann::json body() const { return error_body(api_, kind_, message_, param_, code_); }
    /// The same error in the other API's dialect.
    [[nodiscard]] api_error as(Api api) const { return {api, kind_, message_, param_, code_}; }

private:
    Api api_;
    ErrorKind kind_;
    std::string message_, param_, code_;
};

/// The request both APIs parse into.
struct GenerationRequest {
    Endpoint endpoint = Endpoint::completions;
    std::string model;
    std::vector<tokenizer::ChatMessage> messages;  ///< chat / messages endpoints (system first when given)
    std::string prompt;                            ///< completions: text
    std::vector<TokenId> prompt_ids;               ///< completions: the prompt given as token ids
    bool prompt_is_ids = false;
    std::optional<std::size_t> max_tokens;  ///< absent: up to the context (chat) or the server's default
    model::SamplingOptions sampling{};      ///< temperature, top_k, top_p, seed (repetition penalty off)
    bool seed_given = false;
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  ///< OpenAI stream_options.include_usage

    [[nodiscard]] bool is_chat() const noexcept { return endpoint != Endpoint::completions; }
};

/// What the server accepts: checked while parsing, so a bad request never reaches the engine.
struct RequestLimits {
    std::vector<std::string> models;         ///< accepted "model" values (empty: any)
    std::size_t context = 0;                 ///< max_tokens must not exceed it (0: no bound)
    std::size_t max_stop = 16;               ///< stop strings per request
    std::size_t vocab_size = 0;              ///< token-id prompts must lie below it (0: unchecked)
};

/// Why a generation ended.
enum class FinishReason { stop_token, stop_string, max_tokens, context_full, cancelled, error };

/// A finished generation, as the response builders need it.
struct Completion {
    std::string text;
    FinishReason finish = FinishReason::max_tokens;
    std::string stop_string;  ///< the one that matched (FinishReason::stop_string)
    std::size_t prompt_tokens = 0;
    std::size_t completion_tokens = 0;
    std::string error;  ///< FinishReason::error / cancelled: why
};

/// Identifies one response: "chatcmpl-...", "cmpl-..." or "msg_..." id, creation time, model name.
struct ResponseMeta {
    std::string id;
    std::int64_t created = 0;  ///< Unix seconds
    std::string model;
};

/// The plain transcript chat prompt of a model without a chat template:
///   "{content}\n\n" per system message, "User: {content}\n\n" / "Assistant: {content}\n\n" per turn,
///   then "Assistant:" when add_generation_prompt.
[[nodiscard]] inline std::string fallback_chat_prompt(std::span<const tokenizer::ChatMessage> messages,
                                                      bool add_generation_prompt) {
    std::string out;
    for (const auto& m : messages) {
        if (m.role == "system") {
            out += m.content;
        } else {
            out += m.role == "assistant" ? "Assistant: " : m.role == "user" ? "User: " : m.role + ": ";
            out += m.content;
        }
        out += "\n\n";
    }
    if (add_generation_prompt) out += "Assistant:";
    return out;
}

/// JSON text for the wire: invalid UTF-8 (never produced by the detokenizer, but cheap to rule
/// out) becomes U+FFFD instead of an exception.
[[nodiscard]] inline std::string dump(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// One server-sent event: "data: {json}\n\n", or "event: NAME\ndata: {json}\n\n".
[[nodiscard]] inline std::string sse(const nlohmann::json& data, std::string_view event = {}) {
    std::string out;
    if (!event.empty()) {
        out += "event: ";
        out += event;
        out += '\n';
    }
    out += "data: ";
    out += dump(data);
    out += "\n\n";
    return out;
}

/// Writes one streamed response: the bytes before the first token, each text delta, the end, a
/// mid-stream error and a keep-alive (which also reveals a client that went away) — each a complete
/// run of server-sent events in the API's shape.
class StreamEncoder {
public:
    virtual ~StreamEncoder() = default;
    [[nodiscard]] virtual std::string start() = 0;
    [[nodiscard]] virtual std::string delta(std::string_view text) = 0;
    [[nodiscard]] virtual std::string finish(const Completion& c) = 0;
    [[nodiscard]] virtual std::string error(const api_error& e) = 0;
    [[nodiscard]] virtual std::string keepalive() = 0;
};

namespace detail {

/// Field readers that turn a wrong type or range into an invalid_request api_error naming the field.
struct Fields {
    Api api;
    const nlohmann::json& obj;

    [[noreturn]] void bad(std::string_view field, std::string_view what) const {
        throw api_error(api, ErrorKind::invalid_request, optiq::detail::concat("'", field, "': ", what), std::string(field));
    }
    /// The field, or nullptr when absent or JSON null (both mean "use the default").
    [[nodiscard]] const nlohmann::json* get(std::string_view field) const {
        const auto it = obj.find(field);
        return it == obj.end() || it->is_null() ? nullptr : &*it;
    }
    [[nodiscard]] const nlohmann::json& require(std::string_view field) const {
        const nlohmann::json* v = get(field);
        if (!v) bad(field, "is required");
        return *v;
    }
    [[nodiscard]] std::string string(std::string_view field, const nlohmann::json& v) const {
        if (!v.is_string()) bad(field, optiq::detail::concat("expected a string, got ", v.type_name()));
        return v.get<std::string>();
    }
    [[nodiscard]] std::optional<std::string> opt_string(std::string_view field) const {
        const auto* v = get(field);
        if (!v) return std::nullopt;
        return string(field, *v);
    }
    [[nodiscard]] std::optional<bool> opt_bool(std::string_view field) const {
        const auto* v = get(field);
        if (!v) return std::nullopt;
        if (!v->is_boolean()) bad(field, optiq::detail::concat("expected a boolean, got ", v->type_name()));
        return v->get<bool>();
    }
    [[nodiscard]] std::optional<double> opt_number(std::string_view field, double lo, double hi) const {
        const auto* v = get(field);
        if (!v) return std::nullopt;
        if (!v->is_number()) bad(field, optiq::detail::concat("expected a number, got ", v->type_name()));
        const double x = v->get<double>();
        if (!(x >= lo && x <= hi)) bad(field, optiq::detail::concat(x, " is out of range [", lo, ", ", hi, "]"));
        return x;
    }
    /// An integer in [lo, hi] (hi as unsigned: max_tokens bounds come from the context).
    [[nodiscard]] std::optional<std::int64_t> opt_int(std::string_view field, std::int64_t lo, std::int64_t hi) const {
        const auto* v = get(field);
        if (!v) return std::nullopt;
        if (!v->is_number_integer()) bad(field, optiq::detail::concat("expected an integer, got ", v->type_name()));
        if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
            bad(field, optiq::detail::concat(v->get<std::uint64_t>(), " is out of range [", lo, ", ", hi, "]"));
        const auto x = v->get<std::int64_t>();
        if (x < lo || x > hi) bad(field, optiq::detail::concat(x, " is out of range [", lo, ", ", hi, "]"));
        return x;
    }
    /// Anything but a JSON integer (seeds may be any 64-bit value; negative ones wrap).
    [[nodiscard]] std::optional<std::uint64_t> opt_seed(std::string_view field) const {
        const auto* v = get(field);
        if (!v) return std::nullopt;
        if (!v->is_number_integer()) bad(field, optiq::detail::concat("expected an integer, got ", v->type_name()));
        return v->is_number_unsigned() ? v->get<std::uint64_t>() : static_cast<std::uint64_t>(v->get<std::int64_t>());
    }
    /// A string or a list of strings (OpenAI "stop"); `list_only` for Anthropic's stop_sequences.
    [[nodiscard]] std::vector<std::string> strings(std::string_view field, std::size_t max_count, bool list_only) const {
        const auto* v = get(field);
        std::vector<std::string> out;
        if (!v) return out;
        if (v->is_string() && !list_only) {
            out.push_back(v->get<std::string>());
        } else if (v->is_array()) {
            if (v->size() > max_count) bad(field, optiq::detail::concat(v->size(), " entries, at most ", max_count));
            for (const auto& s : *v) {
                if (!s.is_string()) bad(field, optiq::detail::concat("expected strings, got a ", s.type_name()));
                out.push_back(s.get<std::string>());
            }
        } else {
            bad(field, list_only ? optiq::detail::concat("expected a list of strings, got ", v->type_name())
                                 : optiq::detail::concat("expected a string or a list of strings, got ", v->type_name()));
        }
        for (const auto& s : out)
            if (s.empty()) bad(field, "a stop sequence is empty");
        return out;
    }
};

/// The JSON object of a request body; malformed JSON or another JSON type is invalid_request.
[[nodiscard]] inline nlohmann::json parse_object(Api api, std::string_view body) {
    nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded())
        throw api_error(api, ErrorKind::invalid_request, "the request body is not valid JSON");
    if (!j.is_object())
        throw api_error(api, ErrorKind::invalid_request,
                        optiq::detail::concat("the request body must be a JSON object, got ", j.type_name()));
    return j;
}

inline void check_model(Api api, const std::string& model, const RequestLimits& limits) {
    if (limits.models.empty()) return;
    for (const auto& m : limits.models)
        if (m == model) return;
    throw api_error(api, ErrorKind::not_found,
                    optiq::detail::concat("the model '", model, "' does not exist; this server serves '",
                                          limits.models.front(), "'"),
                    "model");
}

inline void set_max_tokens(GenerationRequest& r, const Fields& f, std::string_view field, const RequestLimits& limits,
                           bool required) {
    const std::int64_t hi = limits.context ? static_cast<std::int64_t>(limits.context) : (std::int64_t{1} << 40);
    if (required) (void)f.require(field);
    if (auto n = f.opt_int(field, 1, hi)) r.max_tokens = static_cast<std::size_t>(*n);
}

/// The text of a message "content": a string or a list of {"type": "text", "text": ...} parts
/// (other part types, images, are refused: this server runs text models).
[[nodiscard]] inline std::string content_text(const Fields& f, std::string_view field, const nlohmann::json& c) {
    if (c.is_string()) return c.get<std::string>();
    if (!c.is_array()) f.bad(field, optiq::detail::concat("expected a string or a list of content parts, got ", c.type_name()));
    std::string text;
    for (const auto& part : c) {
        if (!part.is_object()) f.bad(field, "a content part must be an object");
        const auto type = part.find("type");
        if (type == part.end() || !type->is_string()) f.bad(field, "a content part needs a string \"type\"");
        if (*type != "text")
            f.bad(field, optiq::detail::concat("content parts of type '", type->get<std::string>(),
                                               "' are not supported (text only)"));
        const auto t = part.find("text");
        if (t == part.end() || !t->is_string()) f.bad(field, "a text part needs a string \"text\"");
        text += t->get<std::string>();
    }
    return text;
}

}  // namespace detail
}  // namespace optiq::serve

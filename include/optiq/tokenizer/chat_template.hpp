#pragma once
// Chat templates rendered in C++ (no Jinja engine): the common formats written out by hand, each
// producing exactly what its published Jinja template renders (checked against jinja2 in
// tests/interop/check_tokenizer.py):
//   chatml   <|im_start|>{role}\n{content}<|im_end|>\n ... [<|im_start|>assistant\n]
//   smollm2  chatml; when the first message is not a system message, a default system message comes
//            first (SmolLM2's tokenizer.chat_template: "You are a helpful AI assistant named SmolLM,
//            trained by Hugging Face")
//   qwen2    Qwen2.5's template without tools: the first system message, or the default one, then user /
//            assistant / later system messages as chatml and runs of "tool" messages as one user turn of
//            <tool_response> blocks
//   llama3   <|begin_of_text|> then <|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>
//            per message [+ <|start_header_id|>assistant<|end_header_id|>\n\n]
// ChatTemplate::detect maps a model's template source (GGUF tokenizer.chat_template, HF
// tokenizer_config.json) to one of these and reads the default system prompt out of it.
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/tokenizer/unicode.hpp"

namespace optiq::tokenizer {

struct ChatMessage {
    std::string role;
    std::string content;
};

enum class ChatFormat { chatml, smollm2, qwen2, llama3 };

[[nodiscard]] inline std::string_view chat_format_name(ChatFormat f) noexcept {
    switch (f) {
        case ChatFormat::chatml: return "chatml";
        case ChatFormat::smollm2: return "smollm2";
        case ChatFormat::qwen2: return "qwen2";
        case ChatFormat::llama3: return "llama3";
    }
    return "?";
}

inline constexpr std::string_view kSmolLM2DefaultSystem =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
inline constexpr std::string_view kQwen2DefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

namespace detail {

/// Jinja's `trim` filter: Python's str.strip(), i.e. White_Space plus U+001C..U+001F at both ends.
[[nodiscard]] inline std::string python_strip(std::string_view s) {
    auto is_ws = [](char32_t c) { return is_space(c) || (c >= 0x1C && c <= 0x1F); };
    const std::u32string cps = decode_utf8(s);
    std::size_t b = 0, e = cps.size();
    while (b < e && is_ws(cps[b])) ++b;
    while (e > b && is_ws(cps[e - 1])) --e;
    return encode_utf8(std::u32string_view(cps).substr(b, e - b));
}

inline void chatml_turn(std::string& out, std::string_view role, std::string_view content) {
    out += "<|im_start|>";
    out += role;
    out += '\n';
    out += content;
    out += "<|im_end|>\n";
}

/// Undoes the escapes of a Jinja string literal (\n, \t, \\, \', \").
[[nodiscard]] inline std::string jinja_unescape(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\' || i + 1 == s.size()) {
            out += s[i];
            continue;
        }
        const char c = s[++i];
        out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
    }
    return out;
}

}  // namespace detail

class ChatTemplate {
public:
    explicit ChatTemplate(ChatFormat format, std::string default_system = {}, std::string bos_token = {})
        : format_(format), default_system_(std::move(default_system)), bos_token_(std::move(bos_token)) {}

    [[nodiscard]] static ChatTemplate chatml() { return ChatTemplate(ChatFormat::chatml); }
    [[nodiscard]] static ChatTemplate smollm2() {
        return ChatTemplate(ChatFormat::smollm2, std::string(kSmolLM2DefaultSystem));
    }
    [[nodiscard]] static ChatTemplate qwen2() { return ChatTemplate(ChatFormat::qwen2, std::string(kQwen2DefaultSystem)); }
    [[nodiscard]] static ChatTemplate llama3(std::string bos_token = "<|begin_of_text|>") {
        return ChatTemplate(ChatFormat::llama3, {}, std::move(bos_token));
    }

    /// The format of a Jinja chat template's source, recognised by its markers; config_error when it is
    /// none of the formats above (the message quotes the template's start).
    [[nodiscard]] static ChatTemplate detect(std::string_view src, std::string bos_token = "<|begin_of_text|>") {
        auto has = [&](std::string_view m) { return src.find(m) != std::string_view::npos; };
        if (has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>"))
            return llama3(std::move(bos_token));
        if (has("<|im_start|>") && has("<|im_end|>")) {
            std::string sys = default_system_in(src);
            if (has("<tool_response>")) return ChatTemplate(ChatFormat::qwen2, sys.empty() ? std::string(kQwen2DefaultSystem) : sys);
            if (!sys.empty()) return ChatTemplate(ChatFormat::smollm2, std::move(sys));
            return chatml();
        }
        ::optiq::detail::fail<config_error>("chat template: not a format optiq renders (chatml, smollm2, qwen2, llama3): '",
                                            src.substr(0, 120), "...'");
    }

    [[nodiscard]] ChatFormat format() const noexcept { return format_; }
    [[nodiscard]] const std::string& default_system() const noexcept { return default_system_; }

    /// The prompt text; add_generation_prompt appends the assistant header the model continues from.
    [[nodiscard]] std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
        std::string out;
        switch (format_) {
            case ChatFormat::chatml:
            case ChatFormat::smollm2:
                for (std::size_t i = 0; i < messages.size(); ++i) {
                    if (i == 0 && format_ == ChatFormat::smollm2 && messages[0].role != "system")
                        detail::chatml_turn(out, "system", default_system_);
                    detail::chatml_turn(out, messages[i].role, messages[i].content);
                }
                if (add_generation_prompt) out += "<|im_start|>assistant\n";
                break;
            case ChatFormat::qwen2: render_qwen2(out, messages, add_generation_prompt); break;
            case ChatFormat::llama3:
                for (std::size_t i = 0; i < messages.size(); ++i) {
                    if (i == 0) out += bos_token_;
                    out += "<|start_header_id|>";
                    out += messages[i].role;
                    out += "<|end_header_id|>\n\n";
                    out += detail::python_strip(messages[i].content);
                    out += "<|eot_id|>";
                }
                if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
                break;
        }
        return out;
    }
    [[nodiscard]] std::string render(std::initializer_list<ChatMessage> messages, bool add_generation_prompt) const {
        return render(std::span<const ChatMessage>(messages.begin(), messages.size()), add_generation_prompt);
    }

private:
    // The text of a literal "<|im_start|>system\n...<|im_end|>" in the template source, unescaped.
    [[nodiscard]] static std::string default_system_in(std::string_view src) {
        for (std::string_view head : {std::string_view("<|im_start|>system\n"), std::string_view("<|im_start|>system\\n")}) {
            for (std::size_t p = src.find(head); p != std::string_view::npos; p = src.find(head, p + 1)) {
                const std::size_t b = p + head.size();
                const std::size_t e = src.find("<|im_end|>", b);
                if (e == std::string_view::npos) break;
                const std::string_view body = src.substr(b, e - b);
                if (body.empty() || body.find_first_of("'\"{}") != std::string_view::npos) continue;  // not a literal
                return detail::jinja_unescape(body);
            }
        }
        return {};
    }

    void render_qwen2(std::string& out, std::span<const ChatMessage> m, bool add_generation_prompt) const {
        if (m.empty()) ::optiq::detail::fail<value_error>("chat template qwen2: no messages (the template reads messages[0])");
        detail::chatml_turn(out, "system", m[0].role == "system" ? std::string_view(m[0].content) : default_system_);
        for (std::size_t i = 0; i < m.size(); ++i) {
            const std::string& role = m[i].role;
            if (role == "user" || (role == "system" && i > 0) || role == "assistant") {
                detail::chatml_turn(out, role, m[i].content);
            } else if (role == "tool") {
                if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
                out += "\n<tool_response>\n";
                out += m[i].content;
                out += "\n</tool_response>";
                if (i + 1 == m.size() || m[i + 1].role != "tool") out += "<|im_end|>\n";
            }
        }
        if (add_generation_prompt) out += "<|im_start|>assistant\n";
    }

    ChatFormat format_;
    std::string default_system_;
    std::string bos_token_;
};

}  // namespace optiq::tokenizer

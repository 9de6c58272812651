// libFuzzer target: chat-template rendering with client-controlled messages (what optiq-serve feeds
// ChatTemplate::render and serve::fallback_chat_prompt), then tokenization of the prompt with the
// model's special tokens matched whole.
//
// Input: byte 0 picks the template (% 6: chatml, smollm2, qwen2, llama3, ChatTemplate::detect on the
// first segment, the plain-transcript fallback), byte 1 bit 0 is add_generation_prompt, the rest is
// split at NUL bytes into role / content pairs. Checks: every message's turn appears verbatim in the
// chatml-style prompts, and a prompt of valid UTF-8 encodes and decodes back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/serve/request.hpp"
#include "optiq/tokenizer/bpe.hpp"
#include "optiq/tokenizer/chat_template.hpp"

namespace tk = optiq::tokenizer;

namespace {

// Every byte plus the special tokens of the four formats: encoding is lossless, so decode(encode(p))
// must give p back.
const tk::ByteLevelBpe& toy_tokenizer() {
    static const tk::ByteLevelBpe t = [] {
        const tk::ByteUnicodeMap map;
        std::vector<std::string> tokens;
        for (std::size_t b = 0; b < 256; ++b) tokens.push_back(map.to_utf8[b]);
        tokens.push_back("\xC4\xA0" "a");  // one merge, so merging runs too
        std::vector<std::int32_t> types(tokens.size(), 1);
        for (const char* s : {"<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
                              "<|end_header_id|>", "<|eot_id|>"}) {
            tokens.emplace_back(s);
            types.push_back(3);
        }
        const std::vector<std::string> merges = {"\xC4\xA0 a"};
        return tk::ByteLevelBpe::from_vocab(tokens, merges, types, {});
    }();
    return t;
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const unsigned mode = data[0] % 6u;
    const bool add_generation_prompt = (data[1] & 1u) != 0;
    std::vector<std::string> segments(1);
    for (std::size_t i = 2; i < size; ++i) {
        if (data[i] == 0) segments.emplace_back();
        else segments.back() += static_cast<char>(data[i]);
    }
    std::size_t first = 0;
    std::optional<tk::ChatTemplate> chat;
    try {
        switch (mode) {
            case 0: chat = tk::ChatTemplate::chatml(); break;
            case 1: chat = tk::ChatTemplate::smollm2(); break;
            case 2: chat = tk::ChatTemplate::qwen2(); break;
            case 3: chat = tk::ChatTemplate::llama3(); break;
            case 4: chat = tk::ChatTemplate::detect(segments[0]), first = 1; break;
            default: break;
        }
    } catch (const optiq::error&) {
        return 0;  // not a template optiq renders
    }
    std::vector<tk::ChatMessage> messages;
    for (std::size_t i = first; i + 1 < segments.size(); i += 2) messages.push_back({segments[i], segments[i + 1]});

    std::string prompt;
    try {
        prompt = chat ? chat->render(messages, add_generation_prompt)
                      : optiq::serve::fallback_chat_prompt(messages, add_generation_prompt);
    } catch (const optiq::error&) {
        return 0;  // qwen2 with no messages
    }
    const bool chatml_like = chat && chat->format() != tk::ChatFormat::llama3;
    for (std::size_t i = 0; chatml_like && i < messages.size(); ++i) {
        const auto& m = messages[i];
        // qwen2 drops roles it does not know and folds "tool" messages into user turns.
        if (chat->format() == tk::ChatFormat::qwen2 && m.role != "user" && m.role != "assistant" && m.role != "system")
            continue;
        if (!contains(prompt, "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n")) std::abort();
    }
    if (add_generation_prompt && chatml_like && !contains(prompt, "<|im_start|>assistant\n")) std::abort();

    const auto& t = toy_tokenizer();
    std::vector<tk::TokenId> ids;
    try {
        ids = t.encode(prompt);
    } catch (const optiq::value_error&) {
        return 0;  // ill-formed UTF-8 in a message: refused under the strict policy
    }
    if (t.decode(ids) != prompt) std::abort();
    return 0;
}

#pragma once
// Text generation: prefill a prompt, then sample token by token until max_tokens, a stop token
// (the model's EOS ids unless disabled, plus stop_ids), a stop string, or the context limit.
//
// Stop strings and text need a detokenizer: any callable giving the text of a span of generated
// ids (h1's tokenizers: [&](auto ids) { return tok.decode(ids); }). With it, on_text receives the
// new text as it becomes final: text that could still grow into a stop string is held back, and a
// matched stop string is cut off, with everything after it.
//
//   model::GenerateOptions o;  o.max_tokens = 64;  o.sampling.temperature = 0.7f;
//   auto r = model::generate(m, prompt_ids, o, detok, [](std::string_view s) { std::cout << s; });
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/model/sampling.hpp"
#include "optiq/model/transformer.hpp"

namespace optiq::model {

struct GenerateOptions {
    std::size_t max_tokens = 256;
    SamplingOptions sampling{};
    std::vector<TokenId> stop_ids;          ///< in addition to the model's EOS ids
    bool stop_at_eos = true;                ///< stop at config().eos_token_ids
    std::vector<std::string> stop_strings;  ///< need a detokenizer
};

enum class StopReason { max_tokens, stop_token, stop_string, context_full };

struct GenerateResult {
    std::vector<TokenId> tokens;  ///< generated ids (a stop token is included, a stop string's tokens too)
    std::string text;             ///< detokenized, cut before a stop string (empty without detokenizer)
    StopReason stop = StopReason::max_tokens;
    std::size_t prompt_tokens = 0;
    double prompt_seconds = 0.0;
    double decode_seconds = 0.0;

    [[nodiscard]] double prompt_tokens_per_second() const noexcept {
        return prompt_seconds > 0 ? static_cast<double>(prompt_tokens) / prompt_seconds : 0.0;
    }
    /// Decode steps (tokens after the first) per second.
    [[nodiscard]] double decode_tokens_per_second() const noexcept {
        return decode_seconds > 0 && tokens.size() > 1 ? static_cast<double>(tokens.size() - 1) / decode_seconds : 0.0;
    }
};

using Detokenizer = std::function<std::string(std::span<const TokenId>)>;
using TextCallback = std::function<void(std::string_view)>;
using TokenCallback = std::function<void(TokenId)>;

namespace detail {

/// Length of the longest suffix of `text` that is a proper prefix of some stop string.
[[nodiscard]] inline std::size_t stop_prefix_tail(std::string_view text, const std::vector<std::string>& stops) {
    std::size_t best = 0;
    for (const auto& s : stops)
        for (std::size_t n = std::min(s.size() - 1, text.size()); n > best; --n)
            if (text.substr(text.size() - n) == std::string_view(s).substr(0, n)) {
                best = n;
                break;
            }
    return best;
}

}  // namespace detail

/// Generates from `prompt` (the caches are reset first).
inline GenerateResult generate(Transformer& m, std::span<const TokenId> prompt, const GenerateOptions& o,
                               const Detokenizer& detok = {}, const TextCallback& on_text = {},
                               const TokenCallback& on_token = {}) {
    if (prompt.empty()) optiq::detail::fail<value_error>("model::generate: empty prompt");
    if (!o.stop_strings.empty() && !detok)
        optiq::detail::fail<config_error>("model::generate: stop strings need a detokenizer");
    for (const auto& s : o.stop_strings)
        if (s.empty()) optiq::detail::fail<config_error>("model::generate: empty stop string");
    using clock = std::chrono::steady_clock;
    GenerateResult r;
    r.prompt_tokens = prompt.size();
    Sampler sampler(o.sampling);
    std::vector<TokenId> history(prompt.begin(), prompt.end());
    std::vector<TokenId> stops = o.stop_ids;
    if (o.stop_at_eos) stops.insert(stops.end(), m.config().eos_token_ids.begin(), m.config().eos_token_ids.end());
    const std::size_t limit = m.config().max_seq_len;
    if (limit && prompt.size() >= limit) {
        r.stop = StopReason::context_full;
        return r;
    }

    auto t0 = clock::now();
    m.reset();
    std::vector<float> logits = m.forward(prompt, 0);
    r.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    t0 = clock::now();
    std::size_t emitted = 0;  // bytes of r.text passed to on_text
    while (r.tokens.size() < o.max_tokens) {
        const TokenId t = sampler.sample(logits, history);
        r.tokens.push_back(t);
        history.push_back(t);
        if (on_token) on_token(t);
        if (std::find(stops.begin(), stops.end(), t) != stops.end()) {
            r.stop = StopReason::stop_token;
            break;
        }
        if (detok) {
            r.text = detok(r.tokens);
            std::size_t cut = std::string::npos;
            for (const auto& s : o.stop_strings) cut = std::min(cut, r.text.find(s));
            if (cut != std::string::npos) {
                r.text.resize(cut);
                r.stop = StopReason::stop_string;
                break;
            }
            const std::size_t final_end = r.text.size() - detail::stop_prefix_tail(r.text, o.stop_strings);
            if (on_text && final_end > emitted) {
                on_text(std::string_view(r.text).substr(emitted, final_end - emitted));
                emitted = final_end;
            }
        }
        if (r.tokens.size() >= o.max_tokens) break;
        if (limit && m.position() >= limit) {
            r.stop = StopReason::context_full;
            break;
        }
        logits = m.decode(t);
    }
    r.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    // r.text already excludes a stop token (it was decoded before that token); flush the held-back tail.
    if (on_text && r.text.size() > emitted) on_text(std::string_view(r.text).substr(emitted));
    return r;
}

}  // namespace optiq::model

#pragma once
// Pre-tokenizers of byte-level BPE models, as hand-written scanners over code points (no std::regex:
// it is slow and has no Unicode classes). Each scanner reproduces leftmost-first alternation of the
// model's published regex, including the backtracking of \s+(?!\S):
//   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//           (HF tokenizers ByteLevel, use_regex = true; openai/gpt-2 encoder.py)
//   smollm: each \p{N} code point alone (HF Digits individual_digits = true), then gpt2 on the rest
//           (llama.cpp LLAMA_VOCAB_PRE_TYPE_SMOLLM; SmolLM2's tokenizer.json)
//   qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   llama3: as qwen2 with \p{N}{1,3}
// Case-insensitive contractions fold ASCII only (Unicode folding would also let U+017F match 's').
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/tokenizer/unicode.hpp"

namespace optiq::tokenizer {

enum class PreTokenizer { gpt2, smollm, qwen2, llama3 };

[[nodiscard]] inline std::string_view pre_tokenizer_name(PreTokenizer p) noexcept {
    switch (p) {
        case PreTokenizer::gpt2: return "gpt2";
        case PreTokenizer::smollm: return "smollm";
        case PreTokenizer::qwen2: return "qwen2";
        case PreTokenizer::llama3: return "llama3";
    }
    return "?";
}

/// The pre-tokenizer a GGUF file's `tokenizer.ggml.pre` names (llama.cpp's names); config_error otherwise.
[[nodiscard]] inline PreTokenizer pre_tokenizer_from_gguf(std::string_view pre) {
    if (pre == "gpt2" || pre == "default" || pre == "gpt-2") return PreTokenizer::gpt2;
    if (pre == "smollm") return PreTokenizer::smollm;
    if (pre == "qwen2") return PreTokenizer::qwen2;
    if (pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3") return PreTokenizer::llama3;
    ::optiq::detail::fail<config_error>("tokenizer: tokenizer.ggml.pre '", pre,
                                        "' is not supported (known: gpt2, default, smollm, qwen2, llama-bpe)");
}

namespace detail {

struct CodePoints {
    std::vector<char32_t> cp;
    std::vector<std::size_t> offset;  // byte offset of each code point, plus the total length at the end
};

[[nodiscard]] inline CodePoints code_points(std::string_view s) {
    CodePoints r;
    r.cp.reserve(s.size());
    r.offset.reserve(s.size() + 1);
    for (std::size_t i = 0; i < s.size();) {
        const auto st = utf8_step(s, i);
        r.offset.push_back(i);
        r.cp.push_back(st.status == 0 ? st.cp : kReplacementChar);
        i += st.len;
    }
    r.offset.push_back(s.size());
    return r;
}

class Scanner {
public:
    Scanner(const std::vector<char32_t>& cp, std::size_t end) : cp_(cp), end_(end) {}

    [[nodiscard]] CharClass cls(std::size_t i) const noexcept {
        return i < end_ ? char_class(cp_[i]) : CharClass::space;  // only queried for i < end_
    }
    [[nodiscard]] bool at(std::size_t i, char32_t c) const noexcept { return i < end_ && cp_[i] == c; }
    [[nodiscard]] bool has(std::size_t i) const noexcept { return i < end_; }

    /// Length of 's|'t|'re|'ve|'m|'ll|'d at i (0 if none); `fold` accepts ASCII upper case too.
    [[nodiscard]] std::size_t contraction(std::size_t i, bool fold) const noexcept {
        if (!at(i, U'\'') || !has(i + 1)) return 0;
        auto lower = [&](std::size_t k) -> char32_t {
            const char32_t c = cp_[k];
            return fold && c >= U'A' && c <= U'Z' ? c + 32 : c;
        };
        const char32_t a = lower(i + 1);
        if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
        if (has(i + 2)) {
            const char32_t b = lower(i + 2);
            if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
        }
        return 0;
    }
    /// End of the run of class k starting at i.
    [[nodiscard]] std::size_t run(std::size_t i, CharClass k) const noexcept {
        while (i < end_ && char_class(cp_[i]) == k) ++i;
        return i;
    }
    /// \s+(?!\S)|\s+ at a whitespace code point i: the whole run at the end of the text, else the run
    /// minus its last code point (left to prefix the next piece), else the single code point.
    [[nodiscard]] std::size_t space_run(std::size_t i) const noexcept {
        const std::size_t j = run(i, CharClass::space);
        if (j == end_ || j - i == 1) return j;
        return j - 1;
    }

    /// One match of the GPT-2 regex at i; returns its end.
    [[nodiscard]] std::size_t gpt2(std::size_t i) const noexcept {
        if (const std::size_t n = contraction(i, false)) return i + n;
        std::size_t k = i;
        if (cp_[k] == U' ' && has(k + 1) && cls(k + 1) != CharClass::space) ++k;  // " ?" then a non-space class
        const CharClass c = cls(k);
        if (c != CharClass::space) return run(k, c);
        return space_run(i);
    }

    /// One match of the Qwen2 / Llama-3 regex at i (max_digits 1 or 3); returns its end.
    [[nodiscard]] std::size_t qwen(std::size_t i, std::size_t max_digits) const noexcept {
        if (const std::size_t n = contraction(i, true)) return i + n;
        const CharClass c = cls(i);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (c == CharClass::letter) return run(i, CharClass::letter);
        if (c != CharClass::number && cp_[i] != U'\r' && cp_[i] != U'\n' && has(i + 1) &&
            cls(i + 1) == CharClass::letter)
            return run(i + 1, CharClass::letter);
        // \p{N} or \p{N}{1,3}
        if (c == CharClass::number) {
            std::size_t j = i;
            while (j < end_ && j - i < max_digits && cls(j) == CharClass::number) ++j;
            return j;
        }
        // " ?[^\s\p{L}\p{N}]+[\r\n]*"
        std::size_t k = i;
        if (cp_[k] == U' ' && has(k + 1) && cls(k + 1) == CharClass::other) ++k;
        if (cls(k) == CharClass::other) {
            std::size_t j = run(k, CharClass::other);
            while (j < end_ && (cp_[j] == U'\r' || cp_[j] == U'\n')) ++j;
            return j;
        }
        // c is whitespace: \s*[\r\n]+ ends after the run's last newline, if it has one
        const std::size_t j = run(i, CharClass::space);
        for (std::size_t p = j; p > i; --p)
            if (cp_[p - 1] == U'\r' || cp_[p - 1] == U'\n') return p;
        return space_run(i);
    }

private:
    const std::vector<char32_t>& cp_;
    std::size_t end_;
};

}  // namespace detail

/// A piece of the input: byte offsets [begin, end).
struct Piece {
    std::size_t begin;
    std::size_t end;
    friend bool operator==(const Piece&, const Piece&) = default;
};

/// Splits well-formed UTF-8 `text` into the pieces the pre-tokenizer's regex matches, in order;
/// the pieces cover the text exactly.
[[nodiscard]] inline std::vector<Piece> pre_tokenize(std::string_view text, PreTokenizer pre) {
    const detail::CodePoints cps = detail::code_points(text);
    const std::size_t n = cps.cp.size();
    std::vector<Piece> out;
    auto scan = [&](std::size_t begin, std::size_t end) {
        const detail::Scanner sc(cps.cp, end);
        for (std::size_t i = begin; i < end;) {
            std::size_t j = 0;
            switch (pre) {
                case PreTokenizer::gpt2:
                case PreTokenizer::smollm: j = sc.gpt2(i); break;
                case PreTokenizer::qwen2: j = sc.qwen(i, 1); break;
                case PreTokenizer::llama3: j = sc.qwen(i, 3); break;
            }
            out.push_back({cps.offset[i], cps.offset[j]});
            i = j;
        }
    };
    if (pre != PreTokenizer::smollm) {
        scan(0, n);
        return out;
    }
    // Digits(individual_digits): every number code point is a piece of its own; the regex runs on the
    // stretches between them without seeing across.
    std::size_t start = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (char_class(cps.cp[i]) != CharClass::number) continue;
        scan(start, i);
        out.push_back({cps.offset[i], cps.offset[i + 1]});
        start = i + 1;
    }
    scan(start, n);
    return out;
}

/// The pieces as strings (for tests and debugging).
[[nodiscard]] inline std::vector<std::string> pre_tokenize_strings(std::string_view text, PreTokenizer pre) {
    std::vector<std::string> r;
    for (const Piece& p : pre_tokenize(text, pre)) r.emplace_back(text.substr(p.begin, p.end - p.begin));
    return r;
}

}  // namespace optiq::tokenizer

#pragma once
// UTF-8 and Unicode helpers for the tokenizers: strict decoding (Unicode 15 §3.9 Table 3-7 well-formed
// sequences), the invalid-input policy, lossy repair with one U+FFFD per maximal subpart (what
// Rust's String::from_utf8_lossy and so HF `tokenizers` produce), the character classes the
// pre-tokenizer regexes use, and GPT-2's byte <-> printable-character map.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "optiq/core/error.hpp"
#include "optiq/tokenizer/unicode_tables.hpp"

namespace optiq::tokenizer {

/// What encode() does with input that is not well-formed UTF-8. HF `tokenizers` only ever sees valid
/// strings (Python str / Rust String), so there is no reference behaviour to copy: the default refuses.
enum class Utf8Policy {
    strict,   ///< throw value_error naming the byte offset
    replace,  ///< replace each maximal ill-formed subpart by U+FFFD, then tokenize
};

/// Character classes of the pre-tokenizer regexes: \p{L}, \p{N}, \s (White_Space), anything else.
enum class CharClass : std::uint8_t { other = 0, letter = 1, number = 2, space = 3 };

namespace detail {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

/// Length of the well-formed prefix of a UTF-8 sequence starting at s[i], and its code point.
/// status: 0 a complete sequence of `len` bytes; 1 truncated by the end of the buffer after `len`
/// valid bytes; 2 ill-formed, with `len` >= 1 bytes forming the maximal subpart to replace.
struct Utf8Step {
    int status;
    std::size_t len;
    char32_t cp;
};

[[nodiscard]] inline Utf8Step utf8_step(std::string_view s, std::size_t i) noexcept {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) return {0, 1, b0};
    std::size_t need;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Table 3-7)
    char32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
        cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        cp = b0 & 0x0Fu;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;  // no surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        cp = b0 & 0x07u;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
        return {2, 1, kReplacementChar};
    }
    for (std::size_t k = 1; k < need; ++k) {
        if (i + k >= s.size()) return {1, k, kReplacementChar};
        const auto b = static_cast<unsigned char>(s[i + k]);
        const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) return {2, k, kReplacementChar};
        cp = (cp << 6) | (b & 0x3Fu);
    }
    return {0, need, cp};
}

inline void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace detail

/// Offset of the first ill-formed byte of `s`, or s.size() when `s` is well-formed UTF-8.
[[nodiscard]] inline std::size_t find_invalid_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const auto st = detail::utf8_step(s, i);
        if (st.status != 0) return i;
        i += st.len;
    }
    return s.size();
}

/// `s` with each maximal ill-formed subpart (and a truncated tail) replaced by U+FFFD.
[[nodiscard]] inline std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto st = detail::utf8_step(s, i);
        if (st.status == 0) {
            out.append(s.substr(i, st.len));
        } else {
            out += detail::kReplacementUtf8;
        }
        i += st.len;
    }
    return out;
}

/// Applies the input policy: returns `s` unchanged when valid, else throws or repairs.
[[nodiscard]] inline std::string apply_utf8_policy(std::string_view s, Utf8Policy policy) {
    const std::size_t bad = find_invalid_utf8(s);
    if (bad == s.size()) return std::string(s);
    if (policy == Utf8Policy::strict)
        ::optiq::detail::fail<value_error>("tokenizer: input is not valid UTF-8 (byte 0x", std::hex,
                                           static_cast<unsigned>(static_cast<unsigned char>(s[bad])), std::dec,
                                           " at offset ", bad, "); pass Utf8Policy::replace to substitute U+FFFD");
    return utf8_lossy(s);
}

/// Code points of well-formed UTF-8 `s` (ill-formed bytes become U+FFFD).
[[nodiscard]] inline std::u32string decode_utf8(std::string_view s) {
    std::u32string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto st = detail::utf8_step(s, i);
        out += st.status == 0 ? st.cp : detail::kReplacementChar;
        i += st.len;
    }
    return out;
}

[[nodiscard]] inline std::string encode_utf8(std::u32string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s) detail::append_utf8(out, c);
    return out;
}

/// The class of code point `c` (Unicode version: detail::kUnicodeVersion).
[[nodiscard]] inline CharClass char_class(char32_t c) noexcept {
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::letter;
        if (c >= '0' && c <= '9') return CharClass::number;
        if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return CharClass::space;
        return CharClass::other;
    }
    const auto& t = detail::kUnicodeRanges;
    auto it = std::upper_bound(std::begin(t), std::end(t), static_cast<std::uint32_t>(c),
                               [](std::uint32_t v, const detail::UnicodeRange& r) { return v < r.first; });
    if (it == std::begin(t)) return CharClass::other;
    --it;
    return c <= it->last ? static_cast<CharClass>(it->klass) : CharClass::other;
}

[[nodiscard]] inline bool is_letter(char32_t c) noexcept { return char_class(c) == CharClass::letter; }
[[nodiscard]] inline bool is_number(char32_t c) noexcept { return char_class(c) == CharClass::number; }
[[nodiscard]] inline bool is_space(char32_t c) noexcept { return char_class(c) == CharClass::space; }

/// GPT-2's reversible map from bytes to printable code points (openai/gpt-2 encoder.py
/// bytes_to_unicode): printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in order.
struct ByteUnicodeMap {
    std::array<char32_t, 256> to_char{};
    std::array<std::string, 256> to_utf8{};
    std::array<int, 0x144> from_char{};  // the image is U+0021..U+0143

    ByteUnicodeMap() {
        char32_t next = 0x100;
        for (unsigned b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_char[b] = printable ? static_cast<char32_t>(b) : next++;
            detail::append_utf8(to_utf8[b], to_char[b]);
        }
        from_char.fill(-1);
        for (unsigned b = 0; b < 256; ++b) from_char[to_char[b]] = static_cast<int>(b);
    }

    /// The byte a mapped code point stands for, or -1 when `c` is not in the map's image.
    [[nodiscard]] int byte_of(char32_t c) const noexcept {
        return c < from_char.size() ? from_char[c] : -1;
    }

    /// Bytes of a token written in mapped form ("Ġthe" -> " the"); false when a character is outside the map.
    [[nodiscard]] bool unmap(std::string_view mapped, std::string& bytes) const {
        bytes.clear();
        for (std::size_t i = 0; i < mapped.size();) {
            const auto st = detail::utf8_step(mapped, i);
            if (st.status != 0) return false;
            const int b = byte_of(st.cp);
            if (b < 0) return false;
            bytes += static_cast<char>(b);
            i += st.len;
        }
        return true;
    }
};

}  // namespace optiq::tokenizer

#pragma once
// SentencePiece-style BPE with scores, as llama2.c's run.c encode()/decode() and llama.cpp's "llama"
// (SPM) vocabulary run it:
//   1. optional BOS; a dummy prefix space before non-empty text (add_dummy_prefix);
//   2. each UTF-8 character becomes the token spelling it, or, when the vocabulary has none, one byte
//      fallback token <0xXX> per byte (ids byte+3 in llama2.c / SentencePiece vocabularies);
//   3. repeatedly merge the adjacent pair whose concatenated spelling is a vocabulary entry with the
//      highest score, leftmost among equal scores, until no pair concatenates to an entry.
// llama2.c's tokenizer.bin spells spaces as ' '; GGUF "llama" vocabularies (real SentencePiece) as
// U+2581 '▁', so the text's spaces are written as '▁' first (space_symbol). Decoding drops the
// leading space of the first piece (at the start or after BOS), maps <0xXX> tokens to their byte and
// control tokens (BOS, EOS) to nothing. With a GGUF vocabulary, control and user-defined tokens in the
// text are matched whole (parse_special) and the dummy prefix also follows each of them (llama.cpp).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/tokenizer/bpe.hpp"  // EncodeOptions
#include "optiq/tokenizer/unicode.hpp"
#include "optiq/tokenizer/vocab.hpp"

namespace optiq::tokenizer {

struct SentencePieceOptions {
    std::string space_symbol = " ";  ///< how the vocabulary spells a space: " " (llama2.c) or "\u2581"
    bool add_bos = true;
    bool add_dummy_prefix = true;  ///< tokenizer.ggml.add_space_prefix
    std::optional<TokenId> bos_id = 1;
    std::optional<TokenId> eos_id = 2;
    std::optional<TokenId> unk_id = 0;
    Utf8Policy utf8 = Utf8Policy::strict;
};

class SentencePieceBpe {
public:
    /// llama2.c tokenizer.bin contents (io::Llama2cTokenizer's vocab and scores): ids 0/1/2 are
    /// <unk>/BOS/EOS, <0xXX> entries are byte tokens, spaces are spelled ' ', and (as in llama2.c) no
    /// special token is matched inside the text.
    [[nodiscard]] static SentencePieceBpe from_llama2c(std::vector<std::string> vocab, std::vector<float> scores) {
        std::vector<TokenType> types(vocab.size(), TokenType::normal);
        for (std::size_t i = 0; i < vocab.size(); ++i)
            if (byte_value(vocab[i]) >= 0) types[i] = TokenType::byte;
        if (!types.empty()) types[0] = TokenType::unknown;
        for (std::size_t i = 1; i < std::min<std::size_t>(3, types.size()); ++i) types[i] = TokenType::control;
        return SentencePieceBpe(std::move(vocab), std::move(scores), std::move(types), SentencePieceOptions{}, false);
    }

    /// GGUF "llama" vocabulary: tokenizer.ggml.tokens / scores / token_type plus the options the
    /// file's metadata gives (bos/eos/unk ids, add_bos_token, add_space_prefix; space_symbol U+2581).
    /// Control and user-defined tokens are matched whole in the text when parse_special is on.
    [[nodiscard]] static SentencePieceBpe from_vocab(std::vector<std::string> tokens, std::vector<float> scores,
                                                     std::span<const std::int32_t> token_types,
                                                     SentencePieceOptions options) {
        if (!token_types.empty() && token_types.size() != tokens.size())
            ::optiq::detail::fail<shape_error>("tokenizer: ", token_types.size(), " token types for ", tokens.size(),
                                               " tokens");
        std::vector<TokenType> types(tokens.size(), TokenType::normal);
        for (std::size_t i = 0; i < token_types.size(); ++i) {
            if (token_types[i] < 0 || token_types[i] > 6)
                ::optiq::detail::fail<format_error>("tokenizer: token ", i, " has token type ", token_types[i],
                                                    " (known: 0..6)");
            types[i] = static_cast<TokenType>(token_types[i]);
        }
        return SentencePieceBpe(std::move(tokens), std::move(scores), std::move(types), std::move(options), true);
    }

    [[nodiscard]] std::size_t vocab_size() const noexcept { return pieces_.size(); }
    [[nodiscard]] const SentencePieceOptions& options() const noexcept { return opt_; }
    [[nodiscard]] const std::string& piece(TokenId id) const { return pieces_[check(id)]; }
    [[nodiscard]] float score(TokenId id) const { return scores_[check(id)]; }
    [[nodiscard]] TokenType token_type(TokenId id) const { return types_[check(id)]; }
    [[nodiscard]] std::optional<TokenId> token_id(std::string_view piece) const {
        auto it = by_piece_.find(std::string(piece));
        if (it == by_piece_.end()) return std::nullopt;
        return it->second;
    }

    [[nodiscard]] std::vector<TokenId> encode(std::string_view text, const EncodeOptions& eo = {}) const {
        const std::string s = apply_utf8_policy(text, opt_.utf8);
        std::vector<TokenId> out;
        if (eo.add_bos.value_or(opt_.add_bos)) {
            if (!opt_.bos_id) ::optiq::detail::fail<config_error>("tokenizer: add_bos is set but no BOS id is known");
            out.push_back(*opt_.bos_id);
        }
        // As llama.cpp's SPM session: the dummy prefix goes before the text at the start and after each
        // special token.
        bool after_special = true;
        auto text_part = [&](std::size_t b, std::size_t e) {
            encode_text(std::string_view(s).substr(b, e - b), after_special && opt_.add_dummy_prefix, out);
            after_special = false;
        };
        if (eo.parse_special)
            special_.split(s, text_part, [&](TokenId id) {
                out.push_back(id);
                after_special = true;
            });
        else if (!s.empty())
            text_part(0, s.size());
        if (eo.add_eos) {
            if (!opt_.eos_id) ::optiq::detail::fail<config_error>("tokenizer: add_eos is set but no EOS id is known");
            out.push_back(*opt_.eos_id);
        }
        return out;
    }

    /// One token's bytes given the token before it (-1 at the start), for decode and StreamingDecoder.
    [[nodiscard]] std::string decode_piece(TokenId prev, TokenId id, bool skip_special) const {
        const std::size_t i = check(id);
        switch (types_[i]) {
            case TokenType::control:
            case TokenType::unused: return {};
            case TokenType::unknown: return skip_special ? std::string() : pieces_[i];
            case TokenType::byte: return std::string(1, static_cast<char>(byte_value(pieces_[i])));
            case TokenType::user_defined: return pieces_[i];
            default: break;
        }
        std::string p = unescape(pieces_[i]);
        const bool at_start = prev < 0 || (opt_.bos_id && prev == *opt_.bos_id);
        if (opt_.add_dummy_prefix && at_start && !p.empty() && p[0] == ' ') p.erase(0, 1);
        return p;
    }

    [[nodiscard]] std::string decode_bytes(std::span<const TokenId> ids, bool skip_special = false) const {
        std::string out;
        TokenId prev = -1;
        for (TokenId id : ids) {
            out += decode_piece(prev, id, skip_special);
            prev = id;
        }
        return out;
    }
    /// Text of the tokens; byte tokens that do not form valid UTF-8 become U+FFFD.
    [[nodiscard]] std::string decode(std::span<const TokenId> ids, bool skip_special = false) const {
        return utf8_lossy(decode_bytes(ids, skip_special));
    }

    /// 0..255 when `piece` is exactly "<0xXX>" (two upper- or lower-case hex digits), else -1.
    [[nodiscard]] static int byte_value(std::string_view piece) noexcept {
        if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
        auto hex = [](char c) {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        const int h = hex(piece[3]), l = hex(piece[4]);
        return h < 0 || l < 0 ? -1 : h * 16 + l;
    }

private:
    SentencePieceBpe(std::vector<std::string> pieces, std::vector<float> scores, std::vector<TokenType> types,
                     SentencePieceOptions opt, bool match_special)
        : pieces_(std::move(pieces)), scores_(std::move(scores)), types_(std::move(types)), opt_(std::move(opt)) {
        if (pieces_.empty()) ::optiq::detail::fail<format_error>("tokenizer: the vocabulary is empty");
        if (scores_.size() != pieces_.size())
            ::optiq::detail::fail<shape_error>("tokenizer: ", scores_.size(), " scores for ", pieces_.size(), " tokens");
        if (opt_.space_symbol.empty()) ::optiq::detail::fail<config_error>("tokenizer: space_symbol is empty");
        byte_token_.fill(-1);
        std::vector<SpecialToken> special;
        for (std::size_t i = 0; i < pieces_.size(); ++i) {
            const auto id = static_cast<TokenId>(i);
            by_piece_.emplace(pieces_[i], id);  // first id wins, like a lookup in a stably sorted vocab
            if (types_[i] == TokenType::byte) {
                const int b = byte_value(pieces_[i]);
                if (b < 0)
                    ::optiq::detail::fail<format_error>("tokenizer: token ", i, " '", pieces_[i],
                                                        "' has the byte type but is not spelled <0xXX>");
                if (byte_token_[static_cast<std::size_t>(b)] < 0) byte_token_[static_cast<std::size_t>(b)] = id;
            }
            if (match_special && (types_[i] == TokenType::control || types_[i] == TokenType::user_defined))
                special.push_back({pieces_[i], id});
        }
        special_ = detail::SpecialMatcher(std::move(special));
        for (const auto& o : {opt_.bos_id, opt_.eos_id, opt_.unk_id})
            if (o) (void)check(*o);
    }

    [[nodiscard]] std::size_t check(TokenId id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size())
            ::optiq::detail::fail<value_error>("tokenizer: token id ", id, " is outside the vocabulary [0, ",
                                               pieces_.size(), ")");
        return static_cast<std::size_t>(id);
    }

    [[nodiscard]] std::string unescape(std::string_view p) const {
        if (opt_.space_symbol == " ") return std::string(p);
        std::string out;
        for (std::size_t i = 0; i < p.size();) {
            if (p.compare(i, opt_.space_symbol.size(), opt_.space_symbol) == 0) {
                out += ' ';
                i += opt_.space_symbol.size();
            } else {
                out += p[i++];
            }
        }
        return out;
    }

    void encode_text(std::string_view s, bool dummy_prefix, std::vector<TokenId>& out) const {
        std::string text;
        if (dummy_prefix && !s.empty()) text += ' ';
        text += s;
        // Initial symbols: one per character, or byte fallback tokens.
        std::vector<TokenId> sym;
        std::string ch;
        for (std::size_t i = 0; i < text.size();) {
            const auto st = detail::utf8_step(text, i);  // text is well-formed here
            ch.assign(text, i, st.len);
            if (ch == " ") ch = opt_.space_symbol;
            auto it = by_piece_.find(ch);
            if (it != by_piece_.end()) {
                sym.push_back(it->second);
            } else {
                for (std::size_t k = 0; k < st.len; ++k) {
                    const TokenId b = byte_token_[static_cast<unsigned char>(text[i + k])];
                    if (b >= 0) {
                        sym.push_back(b);
                    } else if (opt_.unk_id) {
                        sym.push_back(*opt_.unk_id);
                        break;
                    } else {
                        ::optiq::detail::fail<value_error>("tokenizer: '", ch,
                                                           "' has no token, no byte fallback and no unknown token");
                    }
                }
            }
            i += st.len;
        }
        // Highest score first, leftmost on ties (llama2.c's strict '>' scan from the left).
        std::string cat;
        detail::merge_pairs(sym, [&](TokenId a, TokenId b) -> std::optional<std::pair<double, TokenId>> {
            cat.assign(pieces_[static_cast<std::size_t>(a)]);
            cat += pieces_[static_cast<std::size_t>(b)];
            auto it = by_piece_.find(cat);
            if (it == by_piece_.end()) return std::nullopt;
            return std::pair<double, TokenId>{scores_[static_cast<std::size_t>(it->second)], it->second};
        });
        out.insert(out.end(), sym.begin(), sym.end());
    }

    std::vector<std::string> pieces_;
    std::vector<float> scores_;
    std::vector<TokenType> types_;
    SentencePieceOptions opt_;
    std::unordered_map<std::string, TokenId> by_piece_;
    std::array<TokenId, 256> byte_token_{};
    detail::SpecialMatcher special_;
};

}  // namespace optiq::tokenizer

#pragma once
// Byte-level BPE (GPT-2 style), as HF `tokenizers` (BPE model + ByteLevel pre-tokenizer/decoder) and
// llama.cpp's "gpt2" vocabulary run it:
//   1. special tokens (HF added tokens / GGUF control and user-defined tokens) are matched whole,
//      leftmost-longest, and emitted as their ids;
//   2. the text between them is split by the model's pre-tokenizer regex (pretokenize.hpp);
//   3. each piece starts as one symbol per byte and the adjacent pair with the lowest merge rank is
//      merged, leftmost first among equal ranks, until no pair has a rank (with ignore_merges, a
//      piece that is itself a vocabulary entry is emitted whole first, as Llama-3 does).
// The vocabulary and merges are written in GPT-2's byte -> printable-character mapping ("Ġthe");
// internally tokens are kept as raw bytes. Inputs: HF tokenizer.json, or the plain arrays a GGUF
// "gpt2" tokenizer provides (tokenizer.ggml.tokens / merges / token_type).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/core/error.hpp"
#include "optiq/tokenizer/pretokenize.hpp"
#include "optiq/tokenizer/unicode.hpp"
#include "optiq/tokenizer/vocab.hpp"

namespace optiq::tokenizer {

namespace detail {

/// A JSON value quoted in an error message: cut to `max` bytes, never throwing on odd strings.
[[nodiscard]] inline std::string json_excerpt(const nlohmann::json& v, std::size_t max = 200) {
    std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (s.size() > max) s.resize(max), s += "...";
    return s;
}

/// Field `key` of object `o` (which the caller calls `where` in messages, e.g. "model"), or nullptr when
/// it is absent or null. A non-object `o` is a format_error: nlohmann's type_error must not escape.
[[nodiscard]] inline const nlohmann::json* json_field(const nlohmann::json& o, const char* key, std::string_view where,
                                                      std::string_view source) {
    if (!o.is_object())
        ::optiq::detail::fail<format_error>(source, ": '", where, "' must be an object, got ", o.type_name());
    const auto it = o.find(key);
    return it == o.end() || it->is_null() ? nullptr : &*it;
}

[[nodiscard]] inline bool json_bool(const nlohmann::json& o, const char* key, bool fallback, std::string_view where,
                                    std::string_view source) {
    const nlohmann::json* v = json_field(o, key, where, source);
    if (!v) return fallback;
    if (!v->is_boolean())
        ::optiq::detail::fail<format_error>(source, ": field '", where, ".", key, "' must be a boolean, got ",
                                            v->type_name());
    return v->get<bool>();
}

[[nodiscard]] inline std::string json_string(const nlohmann::json& o, const char* key, std::string_view fallback,
                                             std::string_view where, std::string_view source) {
    const nlohmann::json* v = json_field(o, key, where, source);
    if (!v) return std::string(fallback);
    if (!v->is_string())
        ::optiq::detail::fail<format_error>(source, ": field '", where, ".", key, "' must be a string, got ",
                                            v->type_name());
    return v->get<std::string>();
}

/// A JSON integer >= 0 at its full width (no narrowing to TokenId); nullopt for anything else.
[[nodiscard]] inline std::optional<std::uint64_t> json_index(const nlohmann::json& v) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
    return std::nullopt;
}

}  // namespace detail

struct BpeOptions {
    PreTokenizer pre = PreTokenizer::gpt2;
    bool ignore_merges = false;  ///< emit a piece whole when it is a vocabulary entry (Llama-3)
    bool add_bos = false;        ///< tokenizer.ggml.add_bos_token
    std::optional<TokenId> bos_id;
    std::optional<TokenId> eos_id;
    Utf8Policy utf8 = Utf8Policy::strict;
};

struct EncodeOptions {
    bool parse_special = true;               ///< match special tokens in the text (HF's behaviour)
    std::optional<bool> add_bos;             ///< override the tokenizer's add_bos
    bool add_eos = false;
};

class ByteLevelBpe {
public:
    /// From GGUF-style arrays: `tokens` in mapped form (special tokens as plain text), `merges` as
    /// "left right" strings in rank order, `token_types` (empty means all normal).
    [[nodiscard]] static ByteLevelBpe from_vocab(std::vector<std::string> tokens, std::span<const std::string> merges,
                                                 std::span<const std::int32_t> token_types, BpeOptions options) {
        if (!token_types.empty() && token_types.size() != tokens.size())
            ::optiq::detail::fail<shape_error>("tokenizer: ", token_types.size(), " token types for ", tokens.size(),
                                               " tokens");
        std::vector<std::pair<std::string, std::string>> pairs;
        pairs.reserve(merges.size());
        for (std::size_t r = 0; r < merges.size(); ++r) {
            const std::string& m = merges[r];
            const std::size_t sp = m.find(' ');
            if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos)
                ::optiq::detail::fail<format_error>("tokenizer: merge ", r, " '", m,
                                                    "' is not two tokens separated by one space");
            pairs.emplace_back(m.substr(0, sp), m.substr(sp + 1));
        }
        std::vector<TokenType> types(tokens.size(), TokenType::normal);
        for (std::size_t i = 0; i < token_types.size(); ++i) {
            if (token_types[i] < 0 || token_types[i] > 6)
                ::optiq::detail::fail<format_error>("tokenizer: token ", i, " has token type ", token_types[i],
                                                    " (known: 0..6)");
            types[i] = static_cast<TokenType>(token_types[i]);
        }
        return ByteLevelBpe(std::move(tokens), std::move(types), pairs, std::move(options));
    }

    /// From a parsed HF tokenizer.json (model.type "BPE" with byte-level pre-tokenizer and decoder).
    /// Token ids index dense tables, so every id (model.vocab and added_tokens) must lie below the
    /// number of tokens the file declares, |model.vocab| + |added_tokens|: real files number their
    /// tokens 0..n-1 (added tokens either repeat vocabulary entries or continue after them), and a
    /// small file cannot make a table of 2^31 entries. Holes are allowed within that bound.
    [[nodiscard]] static ByteLevelBpe from_hf_json(const nlohmann::json& j, std::string_view source = "tokenizer.json") {
        auto bad = [&](auto&&... what) -> void {
            ::optiq::detail::fail<format_error>(source, ": ", std::forward<decltype(what)>(what)...);
        };
        if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) bad("no 'model' object");
        const auto& model = j["model"];
        if (model.contains("type") && model["type"] != "BPE")
            ::optiq::detail::fail<config_error>(source, ": model.type ", detail::json_excerpt(model["type"]),
                                                " is not BPE");
        if (!model.contains("vocab") || !model["vocab"].is_object()) bad("'model.vocab' is not an object");
        if (!model.contains("merges") || !model["merges"].is_array()) bad("'model.merges' is not an array");
        const nlohmann::json* added_json = detail::json_field(j, "added_tokens", "(top level)", source);
        if (added_json && !added_json->is_array()) bad("'added_tokens' is not an array");

        // Options of HF's BPE model and normalizers this class does not implement are refused, not ignored.
        auto unsupported = [&](auto&&... what) -> void {
            ::optiq::detail::fail<config_error>(source, ": ", std::forward<decltype(what)>(what)...,
                                                " is not supported by optiq's byte-level BPE");
        };
        auto set = [&](const nlohmann::json& o, const char* k) { return o.contains(k) && !o[k].is_null(); };
        if (detail::json_bool(model, "byte_fallback", false, "model", source)) unsupported("model.byte_fallback = true");
        if (set(model, "continuing_subword_prefix") && model["continuing_subword_prefix"] != "")
            unsupported("model.continuing_subword_prefix");
        if (set(model, "end_of_word_suffix") && model["end_of_word_suffix"] != "") unsupported("model.end_of_word_suffix");
        if (set(model, "dropout") && model["dropout"] != 0) unsupported("model.dropout (BPE dropout)");
        // NFC is accepted with the text taken as already composed (WikiText, model output, most input are);
        // any other normalizer would change the ids.
        if (set(j, "normalizer") && detail::json_string(j["normalizer"], "type", "", "normalizer", source) != "NFC")
            unsupported("normalizer ", detail::json_excerpt(j["normalizer"]));

        const std::uint64_t n_declared = model["vocab"].size() + (added_json ? added_json->size() : 0);
        const std::uint64_t id_limit = std::min<std::uint64_t>(n_declared, static_cast<std::uint64_t>(INT32_MAX) + 1);
        std::vector<std::pair<std::string, TokenId>> entries;
        entries.reserve(model["vocab"].size());
        for (const auto& [tok, id] : model["vocab"].items()) {
            const auto v = detail::json_index(id);
            if (!v) bad("model.vocab['", tok, "'] is not a non-negative integer id");
            if (*v >= id_limit)
                bad("model.vocab['", tok, "'] = ", *v, " is not below ", id_limit,
                    ", the number of tokens the file declares (model.vocab + added_tokens)");
            entries.emplace_back(tok, static_cast<TokenId>(*v));
        }
        std::vector<SpecialToken> added;
        std::vector<bool> added_special;
        if (added_json) {
            for (std::size_t k = 0; k < added_json->size(); ++k) {
                const auto& a = (*added_json)[k];
                const std::string where = ::optiq::detail::concat("added_tokens[", k, "]");
                if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string())
                    bad(where, " lacks an integer 'id' or a string 'content'");
                const auto v = detail::json_index(a["id"]);
                if (!v) bad("field '", where, ".id' is not a non-negative integer id");
                if (*v >= id_limit)
                    bad("field '", where, ".id' = ", *v, " is not below ", id_limit,
                        ", the number of tokens the file declares (model.vocab + added_tokens)");
                for (const char* k2 : {"lstrip", "rstrip", "single_word"})
                    if (detail::json_bool(a, k2, false, where, source))
                        unsupported("added token ", detail::json_excerpt(a["content"]), " with ", k2, " = true");
                added.push_back({a["content"].get<std::string>(), static_cast<TokenId>(*v)});
                added_special.push_back(detail::json_bool(a, "special", false, where, source));
            }
        }
        std::size_t n = 0;
        for (const auto& e : entries) n = std::max(n, static_cast<std::size_t>(e.second) + 1);
        for (const auto& a : added) n = std::max(n, static_cast<std::size_t>(a.id) + 1);
        std::vector<std::string> tokens(n);
        std::vector<TokenType> types(n, TokenType::unused);
        for (const auto& [tok, id] : entries) {
            if (types[static_cast<std::size_t>(id)] != TokenType::unused)
                bad("id ", id, " appears twice in model.vocab");
            tokens[static_cast<std::size_t>(id)] = tok;
            types[static_cast<std::size_t>(id)] = TokenType::normal;
        }
        for (std::size_t k = 0; k < added.size(); ++k) {
            const auto id = static_cast<std::size_t>(added[k].id);
            if (types[id] == TokenType::normal && tokens[id] != added[k].content)
                bad("added token '", added[k].content, "' has id ", id, ", which model.vocab gives to '", tokens[id],
                    "'");
            tokens[id] = added[k].content;
            // Every added token is matched whole; "special" ones are skipped by decode(skip_special).
            types[id] = added_special[k] ? TokenType::control : TokenType::user_defined;
        }

        std::vector<std::pair<std::string, std::string>> pairs;
        const auto& merges = model["merges"];
        pairs.reserve(merges.size());
        for (std::size_t r = 0; r < merges.size(); ++r) {
            const auto& m = merges[r];
            if (m.is_string()) {  // legacy "a b"
                const auto s = m.get<std::string>();
                const std::size_t sp = s.find(' ');
                if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos)
                    bad("model.merges[", r, "] '", s, "' is not two tokens separated by one space");
                pairs.emplace_back(s.substr(0, sp), s.substr(sp + 1));
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                pairs.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
            } else {
                bad("model.merges[", r, "] is neither \"a b\" nor [\"a\", \"b\"]");
            }
        }

        BpeOptions opt;
        opt.ignore_merges = detail::json_bool(model, "ignore_merges", false, "model", source);
        opt.pre = detect_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : nlohmann::json(), source);
        return ByteLevelBpe(std::move(tokens), std::move(types), pairs, opt);
    }

    [[nodiscard]] static ByteLevelBpe from_hf_json_text(std::string_view text,
                                                       std::string_view source = "tokenizer.json") {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text);
        } catch (const nlohmann::json::exception& e) {
            ::optiq::detail::fail<format_error>(source, ": invalid JSON: ", e.what());
        }
        return from_hf_json(j, source);
    }

    [[nodiscard]] static ByteLevelBpe from_hf_file(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) ::optiq::detail::fail<format_error>(path.string(), ": cannot open");
        std::ostringstream ss;
        ss << in.rdbuf();
        return from_hf_json_text(ss.str(), path.string());
    }

    [[nodiscard]] std::size_t vocab_size() const noexcept { return bytes_.size(); }
    [[nodiscard]] const BpeOptions& options() const noexcept { return opt_; }
    [[nodiscard]] TokenType token_type(TokenId id) const { return types_[check(id)]; }
    [[nodiscard]] bool is_special(TokenId id) const {
        const TokenType t = token_type(id);
        return t == TokenType::control || t == TokenType::user_defined || t == TokenType::unknown;
    }
    /// The bytes a token stands for (special tokens: their text).
    [[nodiscard]] const std::string& token_bytes(TokenId id) const { return bytes_[check(id)]; }
    /// Id of the token whose mapped form (or, for special tokens, text) is `token`.
    [[nodiscard]] std::optional<TokenId> token_id(std::string_view token) const {
        auto it = by_string_.find(std::string(token));
        if (it == by_string_.end()) return std::nullopt;
        return it->second;
    }
    [[nodiscard]] const std::vector<SpecialToken>& special_tokens() const noexcept { return special_.tokens(); }

    /// Token ids of `text` (see the file comment). Ill-formed UTF-8 follows options().utf8.
    [[nodiscard]] std::vector<TokenId> encode(std::string_view text, const EncodeOptions& eo = {}) const {
        const std::string s = apply_utf8_policy(text, opt_.utf8);
        std::vector<TokenId> out;
        if (eo.add_bos.value_or(opt_.add_bos)) {
            if (!opt_.bos_id) ::optiq::detail::fail<config_error>("tokenizer: add_bos is set but no BOS id is known");
            out.push_back(*opt_.bos_id);
        }
        auto text_part = [&](std::size_t b, std::size_t e) { encode_text(std::string_view(s).substr(b, e - b), out); };
        if (eo.parse_special)
            special_.split(s, text_part, [&](TokenId id) { out.push_back(id); });
        else
            text_part(0, s.size());
        if (eo.add_eos) {
            if (!opt_.eos_id) ::optiq::detail::fail<config_error>("tokenizer: add_eos is set but no EOS id is known");
            out.push_back(*opt_.eos_id);
        }
        return out;
    }

    /// The tokens' bytes concatenated (not necessarily valid UTF-8).
    [[nodiscard]] std::string decode_bytes(std::span<const TokenId> ids, bool skip_special = false) const {
        std::string out;
        for (TokenId id : ids) out += decode_piece(-1, id, skip_special);
        return out;
    }
    /// Text of the tokens; ill-formed byte sequences become U+FFFD (HF's lossy ByteLevel decoder).
    [[nodiscard]] std::string decode(std::span<const TokenId> ids, bool skip_special = false) const {
        return utf8_lossy(decode_bytes(ids, skip_special));
    }
    /// One token's bytes, for StreamingDecoder (byte-level BPE has no context: prev is unused).
    [[nodiscard]] std::string decode_piece(TokenId /*prev*/, TokenId id, bool skip_special) const {
        const std::size_t i = check(id);
        if (skip_special && (types_[i] == TokenType::control || types_[i] == TokenType::unknown)) return {};
        return bytes_[i];
    }

    /// The pre-tokenizer an HF tokenizer.json declares: ByteLevel(use_regex) -> gpt2; a Sequence of
    /// Digits(individual_digits) and ByteLevel -> smollm; a Split on Qwen2's / Llama-3's regex -> qwen2 / llama3.
    [[nodiscard]] static PreTokenizer detect_pre_tokenizer(const nlohmann::json& p, std::string_view source) {
        auto unsupported = [&]() -> void {
            ::optiq::detail::fail<config_error>(source, ": pre_tokenizer ", detail::json_excerpt(p, 300),
                                                " is not one optiq implements (gpt2, smollm, qwen2, llama3)");
        };
        if (!p.is_object()) unsupported();
        // ByteLevel's own regex runs unless use_regex is false; a prefix space would change every piece.
        auto byte_level_regex = [&](const nlohmann::json& q, std::string_view where) {
            if (detail::json_bool(q, "add_prefix_space", false, where, source)) unsupported();
            return detail::json_bool(q, "use_regex", true, where, source);
        };
        const std::string type = detail::json_string(p, "type", "", "pre_tokenizer", source);
        if (type == "ByteLevel") {
            if (!byte_level_regex(p, "pre_tokenizer")) unsupported();
            return PreTokenizer::gpt2;
        }
        if (type != "Sequence" || !p.contains("pretokenizers") || !p["pretokenizers"].is_array()) unsupported();
        bool digits = false, byte_level = false, byte_level_uses_regex = false;
        std::optional<PreTokenizer> split;
        const auto& list = p["pretokenizers"];
        for (std::size_t k = 0; k < list.size(); ++k) {
            const auto& q = list[k];
            const std::string where = ::optiq::detail::concat("pre_tokenizer.pretokenizers[", k, "]");
            const std::string t = detail::json_string(q, "type", "", where, source);
            if (t == "Digits" && detail::json_bool(q, "individual_digits", false, where, source)) {
                digits = true;
            } else if (t == "ByteLevel") {
                byte_level = true;
                byte_level_uses_regex = byte_level_regex(q, where);
            } else if (t == "Split" && q.contains("pattern") && q["pattern"].contains("Regex")) {
                const std::string re = detail::json_string(q["pattern"], "Regex", "", where + ".pattern", source);
                if (re.find("\\p{N}{1,3}") != std::string::npos)
                    split = PreTokenizer::llama3;
                else if (re.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|") != std::string::npos)
                    split = PreTokenizer::qwen2;
                else
                    unsupported();
            } else {
                unsupported();
            }
        }
        if (!byte_level) unsupported();
        if (split && !digits && !byte_level_uses_regex) return *split;
        if (!split && digits && byte_level_uses_regex) return PreTokenizer::smollm;
        if (!split && !digits && byte_level_uses_regex) return PreTokenizer::gpt2;
        unsupported();
        return PreTokenizer::gpt2;
    }

private:
    ByteLevelBpe(std::vector<std::string> tokens, std::vector<TokenType> types,
                 const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt)
        : types_(std::move(types)), opt_(std::move(opt)) {
        const ByteUnicodeMap map;
        const std::size_t n = tokens.size();
        if (n == 0) ::optiq::detail::fail<format_error>("tokenizer: the vocabulary is empty");
        if (n > static_cast<std::size_t>(INT32_MAX)) ::optiq::detail::fail<format_error>("tokenizer: vocabulary too large");
        bytes_.resize(n);
        byte_token_.fill(-1);
        std::vector<SpecialToken> special;
        std::string raw;
        for (std::size_t i = 0; i < n; ++i) {
            const auto id = static_cast<TokenId>(i);
            const TokenType t = types_[i];
            by_string_.emplace(tokens[i], id);  // first id wins on duplicates
            if (t == TokenType::control || t == TokenType::user_defined) {
                bytes_[i] = tokens[i];
                special.push_back({tokens[i], id});
                continue;
            }
            if (t == TokenType::unused) continue;
            if (!map.unmap(tokens[i], raw)) {
                // Not in GPT-2's mapping: keep the text as it is (HF's ByteLevel decoder does the same).
                bytes_[i] = tokens[i];
            } else {
                bytes_[i] = raw;
            }
            by_bytes_.emplace(bytes_[i], id);
            if (bytes_[i].size() == 1 && byte_token_[static_cast<unsigned char>(bytes_[i][0])] < 0)
                byte_token_[static_cast<unsigned char>(bytes_[i][0])] = id;
        }
        special_ = detail::SpecialMatcher(std::move(special));
        merges_.reserve(merges.size() * 2);
        for (std::size_t r = 0; r < merges.size(); ++r) {
            const auto& [a, b] = merges[r];
            const auto ia = by_string_.find(a), ib = by_string_.find(b), ic = by_string_.find(a + b);
            if (ia == by_string_.end() || ib == by_string_.end())
                ::optiq::detail::fail<format_error>("tokenizer: merge ", r, " '", a, " ", b, "' names unknown token '",
                                                    ia == by_string_.end() ? a : b, "'");
            if (ic == by_string_.end())
                ::optiq::detail::fail<format_error>("tokenizer: merge ", r, " '", a, " ", b, "' produces '", a + b,
                                                    "', which is not in the vocabulary");
            // A pair listed twice keeps its later rank: HF collects the merges into a map the same way.
            merges_.insert_or_assign(key(ia->second, ib->second), Merge{static_cast<std::int32_t>(r), ic->second});
        }
        if (opt_.bos_id) (void)check(*opt_.bos_id);
        if (opt_.eos_id) (void)check(*opt_.eos_id);
    }

    struct Merge {
        std::int32_t rank;
        TokenId id;
    };

    [[nodiscard]] static std::uint64_t key(TokenId a, TokenId b) noexcept {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }

    [[nodiscard]] std::size_t check(TokenId id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= bytes_.size())
            ::optiq::detail::fail<value_error>("tokenizer: token id ", id, " is outside the vocabulary [0, ",
                                               bytes_.size(), ")");
        return static_cast<std::size_t>(id);
    }

    void encode_text(std::string_view s, std::vector<TokenId>& out) const {
        std::vector<TokenId> sym;
        for (const Piece& p : pre_tokenize(s, opt_.pre)) {
            const std::string_view piece = s.substr(p.begin, p.end - p.begin);
            if (opt_.ignore_merges) {
                if (auto it = by_bytes_.find(std::string(piece)); it != by_bytes_.end()) {
                    out.push_back(it->second);
                    continue;
                }
            }
            sym.clear();
            for (char c : piece) {
                const TokenId t = byte_token_[static_cast<unsigned char>(c)];
                if (t < 0)
                    ::optiq::detail::fail<value_error>("tokenizer: the vocabulary has no token for byte 0x", std::hex,
                                                       static_cast<unsigned>(static_cast<unsigned char>(c)));
                sym.push_back(t);
            }
            merge(sym);
            out.insert(out.end(), sym.begin(), sym.end());
        }
    }

    // Lowest rank first, leftmost among equal ranks: the order HF's heap of (rank, position) pops in.
    void merge(std::vector<TokenId>& sym) const {
        detail::merge_pairs(sym, [this](TokenId a, TokenId b) -> std::optional<std::pair<double, TokenId>> {
            auto it = merges_.find(key(a, b));
            if (it == merges_.end()) return std::nullopt;
            return std::pair<double, TokenId>{-static_cast<double>(it->second.rank), it->second.id};
        });
    }

    std::vector<std::string> bytes_;
    std::vector<TokenType> types_;
    BpeOptions opt_;
    std::unordered_map<std::string, TokenId> by_string_;
    std::unordered_map<std::string, TokenId> by_bytes_;
    std::array<TokenId, 256> byte_token_{};
    std::unordered_map<std::uint64_t, Merge> merges_;
    detail::SpecialMatcher special_;
};

}  // namespace optiq::tokenizer

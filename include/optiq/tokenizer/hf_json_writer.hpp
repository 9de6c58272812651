#pragma once
// HF `tokenizers` files (tokenizer.json + tokenizer_config.json) generated from a vocabulary that
// ships inside a model file, so that transformers' AutoTokenizer (which mlx_lm.load uses)
// tokenizes as optiq's own tokenizers do:
// - a GGUF "gpt2" vocabulary (byte-level BPE: tokens in GPT-2's mapped form, merges in rank order)
//   becomes a BPE model with the ByteLevel pre-tokenizer and decoder; tokenizer.ggml.pre picks the
//   splitting regex exactly as bpe.hpp / pretokenize.hpp read it back (gpt2, smollm = Digits +
//   ByteLevel, qwen2 / llama3 = Split on their regex + ByteLevel without regex);
// - a SentencePiece-style vocabulary with scores (llama2.c tokenizer.bin, GGUF "llama") becomes HF's
//   Llama layout: normalizer Prepend('▁') + Replace(' ', '▁'), no pre-tokenizer, a BPE model with
//   byte_fallback and a decoder that undoes both. Scores are turned into merges: for every token t
//   and every split of t into two vocabulary entries (a, b), the merge "a b" gets the rank of t's
//   score (highest first). HF's BPE then merges, among adjacent pairs, the one of lowest rank,
//   which is llama2.c's rule (merge the pair whose concatenation has the highest score); equal
//   scores are the one place they can differ (llama2.c: leftmost; HF: order in the merge list).
// Control tokens (GGUF token_type 3, BOS / EOS / <unk> of llama2.c) become special added tokens;
// user-defined ones (type 4) non-special added tokens; both are matched whole in the text, as
// optiq's tokenizers match them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/core/error.hpp"
#include "optiq/io/gguf.hpp"
#include "optiq/tokenizer/unicode.hpp"

namespace optiq::tokenizer {

struct HfTokenizerFiles {
    nlohmann::json tokenizer;         ///< tokenizer.json
    nlohmann::json tokenizer_config;  ///< tokenizer_config.json (chat_template included when known)
};

namespace detail {

inline const char* const kSpmSpace = "\u2581";

[[nodiscard]] inline nlohmann::json added_token(std::int64_t id, const std::string& content, bool special) {
    return {{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
            {"rstrip", false},    {"normalized", false}, {"special", special}};
}

[[nodiscard]] inline nlohmann::json byte_level(bool use_regex, bool trim_offsets = true) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", trim_offsets}, {"use_regex", use_regex}};
}

/// The pre-tokenizer of a GGUF tokenizer.ggml.pre value (llama.cpp's names, as pretokenize.hpp).
[[nodiscard]] inline nlohmann::json gpt2_pre_tokenizer(const std::string& pre) {
    static const char* const qwen2 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char* const llama3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (pre == "gpt2" || pre == "default" || pre == "gpt-2") return byte_level(true);
    if (pre == "smollm")
        return {{"type", "Sequence"},
                {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
    const bool q = pre == "qwen2";
    if (q || pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3")
        return {{"type", "Sequence"},
                {"pretokenizers",
                 {{{"type", "Split"}, {"pattern", {{"Regex", q ? qwen2 : llama3}}}, {"behavior", "Isolated"}, {"invert", false}},
                  byte_level(false, false)}}};
    optiq::detail::fail<config_error>("tokenizer.json writer: tokenizer.ggml.pre '", pre,
                                      "' is not supported (gpt2, default, smollm, qwen2, llama-bpe)");
}

/// HF's TemplateProcessing that prepends `bos` (id) to every sequence.
[[nodiscard]] inline nlohmann::json bos_template(const std::string& bos, std::int64_t id) {
    const nlohmann::json b = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
    return {{"type", "TemplateProcessing"},
            {"single", {b, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair", {b, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, b, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", {id}}, {"tokens", {bos}}}}}}};
}

/// `id` as an index into `n` tokens; value_error (not std::out_of_range) when outside [0, n).
[[nodiscard]] inline std::size_t checked_id(std::int64_t id, std::size_t n, std::string_view what) {
    if (id < 0 || static_cast<std::uint64_t>(id) >= n)
        optiq::detail::fail<value_error>("tokenizer.json writer: ", what, " id ", id, " is outside the vocabulary [0, ",
                                         n, ")");
    return static_cast<std::size_t>(id);
}

[[nodiscard]] inline nlohmann::json base_file() {
    return {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}};
}

/// Offsets at which `s` may be split without cutting a UTF-8 character.
[[nodiscard]] inline std::vector<std::size_t> char_boundaries(const std::string& s) {
    std::vector<std::size_t> b;
    for (std::size_t i = 0; i < s.size();) {
        if (i) b.push_back(i);
        i += std::max<std::size_t>(1, utf8_step(s, i).len);
    }
    return b;
}

}  // namespace detail

/// tokenizer.json for a byte-level BPE vocabulary (GGUF "gpt2" arrays). token_types: GGUF's values
/// (empty: all normal). bos / eos / unk: ids or nullopt; add_bos: tokenizer.ggml.add_bos_token.
[[nodiscard]] inline HfTokenizerFiles hf_byte_level_bpe(const std::vector<std::string>& tokens,
                                                        const std::vector<std::string>& merges,
                                                        const std::vector<std::int32_t>& token_types, const std::string& pre,
                                                        std::optional<std::int64_t> bos, std::optional<std::int64_t> eos,
                                                        bool add_bos) {
    if (!token_types.empty() && token_types.size() != tokens.size())
        optiq::detail::fail<shape_error>("tokenizer.json writer: ", token_types.size(), " token types for ", tokens.size(),
                                         " tokens");
    nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const int type = token_types.empty() ? 1 : token_types[i];
        if (!vocab.contains(tokens[i])) vocab[tokens[i]] = i;  // first id wins, as in optiq's lookup
        if (type == 3 || type == 4) added.push_back(detail::added_token(static_cast<std::int64_t>(i), tokens[i], type == 3));
    }
    auto name = [&](std::optional<std::int64_t> id) -> nlohmann::json {
        if (!id || *id < 0 || static_cast<std::size_t>(*id) >= tokens.size()) return nullptr;
        return tokens[static_cast<std::size_t>(*id)];
    };
    HfTokenizerFiles f;
    f.tokenizer = detail::base_file();
    f.tokenizer["added_tokens"] = added;
    f.tokenizer["normalizer"] = nullptr;
    f.tokenizer["pre_tokenizer"] = detail::gpt2_pre_tokenizer(pre);
    f.tokenizer["post_processor"] =
        add_bos && bos ? detail::bos_template(tokens[detail::checked_id(*bos, tokens.size(), "BOS")], *bos)
                       : nlohmann::json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
    f.tokenizer["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    const bool llama3 = pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3";
    f.tokenizer["model"] = {{"type", "BPE"},           {"dropout", nullptr},       {"unk_token", nullptr},
                            {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                            {"fuse_unk", false},       {"byte_fallback", false},   {"ignore_merges", llama3},
                            {"vocab", vocab},          {"merges", merges}};
    f.tokenizer_config = {{"add_bos_token", add_bos},       {"add_eos_token", false},
                          {"add_prefix_space", false},      {"clean_up_tokenization_spaces", false},
                          {"bos_token", name(bos)},         {"eos_token", name(eos)},
                          {"unk_token", nullptr},           {"tokenizer_class", "PreTrainedTokenizerFast"}};
    return f;
}

/// tokenizer.json for a SentencePiece-style BPE vocabulary with scores. `pieces` spell a space as
/// `space` (" " in llama2.c's tokenizer.bin, "▁" in GGUF "llama"); token_types as GGUF's (empty:
/// llama2.c's convention, ids 0/1/2 = <unk>/<s>/</s> and <0xXX> byte tokens).
[[nodiscard]] inline HfTokenizerFiles hf_sentencepiece_bpe(const std::vector<std::string>& pieces,
                                                           const std::vector<float>& scores,
                                                           std::vector<std::int32_t> token_types, const std::string& space,
                                                           std::optional<std::int64_t> bos, std::optional<std::int64_t> eos,
                                                           std::optional<std::int64_t> unk, bool add_bos,
                                                           bool add_dummy_prefix = true) {
    const std::size_t n = pieces.size();
    if (scores.size() != n)
        optiq::detail::fail<shape_error>("tokenizer.json writer: ", scores.size(), " scores for ", n, " tokens");
    if (token_types.empty()) {
        token_types.assign(n, 1);
        for (std::size_t i = 0; i < n; ++i) {
            const std::string& p = pieces[i];
            if (p.size() == 6 && p.rfind("<0x", 0) == 0 && p.back() == '>') token_types[i] = 6;
        }
        if (n > 0) token_types[0] = 2;
        for (std::size_t i = 1; i < std::min<std::size_t>(3, n); ++i) token_types[i] = 3;
    } else if (token_types.size() != n) {
        optiq::detail::fail<shape_error>("tokenizer.json writer: ", token_types.size(), " token types for ", n, " tokens");
    }
    // Spaces in the HF vocabulary are always '▁' (the normalizer writes them so).
    std::vector<std::string> hf(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::string& p = pieces[i];
        if (space == detail::kSpmSpace || token_types[i] == 3 || token_types[i] == 4) {
            hf[i] = p;
            continue;
        }
        for (std::size_t k = 0; k < p.size();) {
            if (p.compare(k, space.size(), space) == 0) {
                hf[i] += detail::kSpmSpace;
                k += space.size();
            } else {
                hf[i] += p[k++];
            }
        }
    }
    nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
    std::unordered_map<std::string, std::size_t> id_of;
    for (std::size_t i = 0; i < n; ++i) {
        if (id_of.emplace(hf[i], i).second) vocab[hf[i]] = i;
        if (token_types[i] == 2 || token_types[i] == 3 || token_types[i] == 4)
            added.push_back(detail::added_token(static_cast<std::int64_t>(i), hf[i], token_types[i] != 4));
    }
    // Merges from scores: which pairs concatenate to a mergeable entry, best score first.
    struct M {
        float score;
        std::size_t token, split;
    };
    std::vector<M> ms;
    for (std::size_t i = 0; i < n; ++i) {
        if (token_types[i] != 1 || id_of.at(hf[i]) != i) continue;
        for (std::size_t s : detail::char_boundaries(hf[i])) {
            const auto a = id_of.find(hf[i].substr(0, s)), b = id_of.find(hf[i].substr(s));
            if (a == id_of.end() || b == id_of.end()) continue;
            if (token_types[a->second] != 1 || token_types[b->second] != 1) continue;
            ms.push_back({scores[i], i, s});
        }
    }
    std::stable_sort(ms.begin(), ms.end(), [](const M& x, const M& y) { return x.score > y.score; });
    nlohmann::json merges = nlohmann::json::array();
    for (const M& m : ms) merges.push_back(hf[m.token].substr(0, m.split) + " " + hf[m.token].substr(m.split));

    auto name = [&](std::optional<std::int64_t> id) -> nlohmann::json {
        if (!id || *id < 0 || static_cast<std::size_t>(*id) >= n) return nullptr;
        return hf[static_cast<std::size_t>(*id)];
    };
    HfTokenizerFiles f;
    f.tokenizer = detail::base_file();
    f.tokenizer["added_tokens"] = added;
    nlohmann::json norm = nlohmann::json::array();
    if (add_dummy_prefix) norm.push_back({{"type", "Prepend"}, {"prepend", detail::kSpmSpace}});
    norm.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", detail::kSpmSpace}});
    f.tokenizer["normalizer"] = {{"type", "Sequence"}, {"normalizers", norm}};
    f.tokenizer["pre_tokenizer"] = nullptr;
    f.tokenizer["post_processor"] = add_bos && bos ? detail::bos_template(hf[detail::checked_id(*bos, n, "BOS")], *bos)
                                                   : nlohmann::json(nullptr);
    nlohmann::json dec = nlohmann::json::array();
    dec.push_back({{"type", "Replace"}, {"pattern", {{"String", detail::kSpmSpace}}}, {"content", " "}});
    dec.push_back({{"type", "ByteFallback"}});
    dec.push_back({{"type", "Fuse"}});
    if (add_dummy_prefix) dec.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    f.tokenizer["decoder"] = {{"type", "Sequence"}, {"decoders", dec}};
    f.tokenizer["model"] = {{"type", "BPE"},
                            {"dropout", nullptr},
                            {"unk_token", name(unk)},
                            {"continuing_subword_prefix", nullptr},
                            {"end_of_word_suffix", nullptr},
                            {"fuse_unk", true},
                            {"byte_fallback", true},
                            {"ignore_merges", false},
                            {"vocab", vocab},
                            {"merges", merges}};
    f.tokenizer_config = {{"add_bos_token", add_bos},   {"add_eos_token", false},       {"bos_token", name(bos)},
                          {"eos_token", name(eos)},     {"unk_token", name(unk)},       {"legacy", true},
                          {"clean_up_tokenization_spaces", false}, {"tokenizer_class", "PreTrainedTokenizerFast"}};
    return f;
}

/// llama2.c tokenizer.bin contents (io::Llama2cTokenizer vocab and scores): BOS added, dummy prefix.
/// Karpathy's export spells BOS / EOS "\n<s>\n" / "\n</s>\n"; they are written as SentencePiece
/// names them (<unk>, <s>, </s>), which is what HF configs and chat code expect.
[[nodiscard]] inline HfTokenizerFiles hf_tokenizer_from_llama2c(std::vector<std::string> vocab,
                                                                const std::vector<float>& scores) {
    const char* const names[] = {"<unk>", "<s>", "</s>"};
    for (std::size_t i = 0; i < std::min<std::size_t>(3, vocab.size()); ++i) vocab[i] = names[i];
    return hf_sentencepiece_bpe(vocab, scores, {}, " ", 1, 2, 0, true, true);
}

/// The tokenizer a GGUF file's metadata holds (tokenizer.ggml.model "gpt2" or "llama"), with its
/// chat template in tokenizer_config.json. format_error when the file has no tokenizer.
[[nodiscard]] inline HfTokenizerFiles hf_tokenizer_from_gguf(const io::GgufFile& f) {
    const auto& md = f.metadata();
    if (!md.contains("tokenizer.ggml.model"))
        optiq::detail::fail<format_error>(f.path(), ": no tokenizer in the metadata (tokenizer.ggml.model)");
    const std::string model = md.get<std::string>("tokenizer.ggml.model");
    const auto& tokens = md.get_array<std::string>("tokenizer.ggml.tokens");
    std::vector<std::int32_t> types;
    if (md.contains("tokenizer.ggml.token_type")) types = md.get_array<std::int32_t>("tokenizer.ggml.token_type");
    auto id = [&](const char* k) -> std::optional<std::int64_t> {
        if (!md.contains(k)) return std::nullopt;
        const std::int64_t v = md.get_int(k);
        if (v < 0 || v > INT32_MAX)
            optiq::detail::fail<format_error>(f.path(), ": metadata key '", k, "' = ", v, " is not a token id");
        return v;
    };
    HfTokenizerFiles out;
    if (model == "gpt2") {
        out = hf_byte_level_bpe(tokens, md.get_array<std::string>("tokenizer.ggml.merges"), types,
                                md.get_or<std::string>("tokenizer.ggml.pre", "gpt2"), id("tokenizer.ggml.bos_token_id"),
                                id("tokenizer.ggml.eos_token_id"), md.get_or<bool>("tokenizer.ggml.add_bos_token", false));
    } else if (model == "llama") {
        out = hf_sentencepiece_bpe(tokens, md.get_array<float>("tokenizer.ggml.scores"), types, detail::kSpmSpace,
                                   id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id"),
                                   id("tokenizer.ggml.unknown_token_id"), md.get_or<bool>("tokenizer.ggml.add_bos_token", true),
                                   md.get_or<bool>("tokenizer.ggml.add_space_prefix", true));
    } else {
        optiq::detail::fail<config_error>(f.path(), ": tokenizer.ggml.model '", model, "' is not supported (gpt2, llama)");
    }
    if (md.contains("tokenizer.chat_template"))
        out.tokenizer_config["chat_template"] = md.get<std::string>("tokenizer.chat_template");
    const auto arch = f.architecture();
    if (!arch.empty() && md.contains(arch + ".context_length"))
        out.tokenizer_config["model_max_length"] = md.get_int(arch + ".context_length");
    return out;
}

}  // namespace optiq::tokenizer

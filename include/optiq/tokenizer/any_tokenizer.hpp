#pragma once
// AnyTokenizer: whichever tokenizer a model ships (byte-level BPE from tokenizer.json or a GGUF "gpt2"
// vocabulary, SentencePiece-style BPE from a llama2.c tokenizer.bin or a GGUF "llama" vocabulary),
// plus its chat template when it declares one — what every driver needs next to model::load().
//
//   auto tok = tokenizer::load_tokenizer("SmolLM2.gguf");           // from the model
//   auto tok = tokenizer::load_tokenizer("stories260K.bin", "tok512.bin");
//   auto ids = tok.encode(tok.chat()->render({{"user", "Hi"}}, true));
//
// Lookup when no tokenizer path is given: a directory's tokenizer.json (chat template from
// chat_template.jinja or tokenizer_config.json beside it), a .gguf file's own vocabulary, and
// tokenizer.bin or tok512.bin beside a llama2.c checkpoint.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/core/error.hpp"
#include "optiq/io/gguf.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/tokenizer/bpe.hpp"
#include "optiq/tokenizer/chat_template.hpp"
#include "optiq/tokenizer/sentencepiece.hpp"

namespace optiq::tokenizer {

class AnyTokenizer {
public:
    using Impl = std::variant<std::monostate, SentencePieceBpe, ByteLevelBpe>;

    AnyTokenizer() = default;
    explicit AnyTokenizer(Impl impl, std::optional<ChatTemplate> chat = std::nullopt)
        : impl_(std::move(impl)), chat_(std::move(chat)) {}

    /// No tokenizer was found (a raw-id workflow).
    [[nodiscard]] bool empty() const noexcept { return impl_.index() == 0; }
    [[nodiscard]] const Impl& impl() const noexcept { return impl_; }
    [[nodiscard]] const ByteLevelBpe* byte_level() const noexcept { return std::get_if<ByteLevelBpe>(&impl_); }
    [[nodiscard]] const SentencePieceBpe* sentencepiece() const noexcept { return std::get_if<SentencePieceBpe>(&impl_); }
    /// The chat template, when the model declares one optiq renders.
    [[nodiscard]] const std::optional<ChatTemplate>& chat() const noexcept { return chat_; }
    void set_chat(std::optional<ChatTemplate> c) { chat_ = std::move(c); }

    [[nodiscard]] std::size_t vocab_size() const {
        return std::visit(
            [](const auto& t) -> std::size_t {
                if constexpr (requires { t.vocab_size(); }) return t.vocab_size();
                else return 0;
            },
            impl_);
    }
    /// add_bos: the tokenizer's own default unless given.
    [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text, std::optional<bool> add_bos = {}) const {
        EncodeOptions eo;
        eo.add_bos = add_bos;
        return std::visit(
            [&](const auto& t) -> std::vector<std::int32_t> {
                if constexpr (requires { t.encode(text, eo); }) return t.encode(text, eo);
                else optiq::detail::fail<config_error>("tokenizer: none loaded (give a tokenizer file)");
            },
            impl_);
    }
    /// Text of ids; special tokens (BOS, EOS, <|im_end|>, ...) are skipped when skip_special.
    [[nodiscard]] std::string decode(std::span<const std::int32_t> ids, bool skip_special = true) const {
        return std::visit(
            [&](const auto& t) -> std::string {
                if constexpr (requires { t.decode(ids, skip_special); }) return t.decode(ids, skip_special);
                else optiq::detail::fail<config_error>("tokenizer: none loaded (give a tokenizer file)");
            },
            impl_);
    }
    /// Whether encode() prepends BOS by default.
    [[nodiscard]] bool adds_bos() const { return encode("a").size() > encode("a", false).size(); }

private:
    Impl impl_;
    std::optional<ChatTemplate> chat_;
};

namespace detail {

[[nodiscard]] inline std::string read_text_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) optiq::detail::fail<format_error>("tokenizer: ", p.string(), ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace detail

/// The tokenizer stored in a GGUF file's metadata (tokenizer.ggml.*); empty when it has none.
[[nodiscard]] inline AnyTokenizer tokenizer_from_gguf(const io::GgufFile& f) {
    const auto& md = f.metadata();
    if (!md.contains("tokenizer.ggml.model")) return {};
    const std::string model = md.get<std::string>("tokenizer.ggml.model");
    auto tokens = md.get_array<std::string>("tokenizer.ggml.tokens");
    std::vector<std::int32_t> types;
    if (md.contains("tokenizer.ggml.token_type")) types = md.get_array<std::int32_t>("tokenizer.ggml.token_type");
    // Checked before narrowing: 2^32 + 1 must not become token 1.
    auto id = [&](const char* k) -> std::optional<TokenId> {
        if (!md.contains(k)) return std::nullopt;
        const std::int64_t v = md.get_int(k);
        if (v < 0 || v > INT32_MAX)
            optiq::detail::fail<format_error>(f.path(), ": metadata key '", k, "' = ", v, " is not a token id");
        return static_cast<TokenId>(v);
    };
    AnyTokenizer::Impl impl;
    if (model == "gpt2") {
        BpeOptions o;
        o.pre = pre_tokenizer_from_gguf(md.get_or<std::string>("tokenizer.ggml.pre", "gpt2"));
        o.add_bos = md.get_or<bool>("tokenizer.ggml.add_bos_token", false);
        o.bos_id = id("tokenizer.ggml.bos_token_id");
        o.eos_id = id("tokenizer.ggml.eos_token_id");
        impl = ByteLevelBpe::from_vocab(std::move(tokens), md.get_array<std::string>("tokenizer.ggml.merges"), types, o);
    } else if (model == "llama") {
        SentencePieceOptions o;
        o.space_symbol = "\u2581";
        o.add_bos = md.get_or<bool>("tokenizer.ggml.add_bos_token", true);
        o.add_dummy_prefix = md.get_or<bool>("tokenizer.ggml.add_space_prefix", true);
        o.bos_id = id("tokenizer.ggml.bos_token_id");
        o.eos_id = id("tokenizer.ggml.eos_token_id");
        o.unk_id = id("tokenizer.ggml.unknown_token_id");
        impl = SentencePieceBpe::from_vocab(std::move(tokens), md.get_array<float>("tokenizer.ggml.scores"), types, o);
    } else {
        optiq::detail::fail<config_error>("tokenizer: ", f.path(), ": tokenizer.ggml.model '", model,
                                          "' is not supported (gpt2, llama)");
    }
    std::optional<ChatTemplate> chat;
    if (md.contains("tokenizer.chat_template")) chat = ChatTemplate::detect(md.get<std::string>("tokenizer.chat_template"));
    return AnyTokenizer(std::move(impl), std::move(chat));
}

[[nodiscard]] inline AnyTokenizer tokenizer_from_gguf(const std::filesystem::path& path) {
    return tokenizer_from_gguf(io::GgufFile::open(path));
}

/// tokenizer.json (+ the chat template beside it).
[[nodiscard]] inline AnyTokenizer tokenizer_from_hf_json(const std::filesystem::path& p) {
    std::optional<ChatTemplate> chat;
    const std::filesystem::path dir = p.parent_path();
    if (std::filesystem::exists(dir / "chat_template.jinja")) {
        chat = ChatTemplate::detect(detail::read_text_file(dir / "chat_template.jinja"));
    } else if (std::filesystem::exists(dir / "tokenizer_config.json")) {
        const auto j = nlohmann::json::parse(detail::read_text_file(dir / "tokenizer_config.json"), nullptr, false);
        if (j.is_discarded())
            optiq::detail::fail<format_error>("tokenizer: ", (dir / "tokenizer_config.json").string(), ": not valid JSON");
        if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
            chat = ChatTemplate::detect(j["chat_template"].get<std::string>());
    }
    return AnyTokenizer(ByteLevelBpe::from_hf_file(p), std::move(chat));
}

/// The tokenizer of `model` (a directory, .gguf or llama2.c .bin), or the file `explicit_path`
/// (tokenizer.json, .gguf, llama2.c tokenizer.bin) when it is given. Empty when the model has none.
[[nodiscard]] inline AnyTokenizer load_tokenizer(const std::filesystem::path& model,
                                                 const std::filesystem::path& explicit_path = {}) {
    namespace fs = std::filesystem;
    fs::path p = explicit_path;
    if (p.empty()) {
        if (fs::is_directory(model)) p = model / "tokenizer.json";
        else if (model.extension() == ".gguf") return tokenizer_from_gguf(model);
        else
            for (const char* n : {"tokenizer.bin", "tok512.bin"})
                if (fs::exists(model.parent_path() / n)) p = model.parent_path() / n;
        if (p.empty() || !fs::exists(p)) return {};
    } else if (!fs::exists(p)) {
        optiq::detail::fail<format_error>("tokenizer: ", p.string(), ": no such file");
    }
    if (p.extension() == ".gguf") return tokenizer_from_gguf(p);
    if (p.extension() == ".json") return tokenizer_from_hf_json(p);
    const auto l = io::Llama2cTokenizer::open(p);
    return AnyTokenizer(SentencePieceBpe::from_llama2c(l.vocab, l.scores));
}

}  // namespace optiq::tokenizer

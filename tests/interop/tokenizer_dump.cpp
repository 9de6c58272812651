// Dump program for tests/interop/check_tokenizer.py: runs optiq's tokenizers and chat templates on
// inputs the script writes as JSON and writes the results as JSON.
//   optiq_tokenizer_dump gguf MODEL.gguf IN.json OUT.json      texts -> ids, decoded text (GGUF vocab)
//   optiq_tokenizer_dump hfjson TOKENIZER.json IN.json OUT.json  texts -> ids, decoded text (HF tokenizer.json)
//   optiq_tokenizer_dump llama2c TOKENIZER.bin IN.json OUT.json
//   optiq_tokenizer_dump pretok NAME IN.json OUT.json          texts -> pre-tokenizer pieces
//   optiq_tokenizer_dump chat TEMPLATE.jinja IN.json OUT.json  conversations -> rendered prompts
// IN.json: {"texts": [...]} or {"conversations": [{"messages": [{"role", "content"}], "add_generation_prompt"}]}.
// The GGUF glue (metadata keys -> tokenizer) lives here; the tokenizers take plain vectors.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/io/gguf.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/tokenizer/bpe.hpp"
#include "optiq/tokenizer/chat_template.hpp"
#include "optiq/tokenizer/pretokenize.hpp"
#include "optiq/tokenizer/sentencepiece.hpp"

namespace tk = optiq::tokenizer;
using json = nlohmann::json;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// JSON strings here may carry arbitrary bytes (ids decoded to invalid UTF-8 are already lossy-repaired).
std::vector<std::string> texts_of(const json& in) { return in.at("texts").get<std::vector<std::string>>(); }

template <class Tok>
json run_texts(const Tok& tok, const json& in) {
    json ids = json::array(), decoded = json::array(), streamed = json::array();
    for (const std::string& t : texts_of(in)) {
        const auto v = tok.encode(t);
        ids.push_back(v);
        decoded.push_back(tok.decode(v));
        tk::StreamingDecoder<Tok> dec(tok);
        std::string s;
        for (auto id : v) s += dec.push(id);
        s += dec.flush();
        streamed.push_back(s);
    }
    return {{"ids", ids}, {"decoded", decoded}, {"streamed", streamed}};
}

json run_gguf(const std::string& path, const json& in) {
    const auto file = optiq::io::GgufFile::open(path);
    const auto& md = file.metadata();
    const auto& model = md.get<std::string>("tokenizer.ggml.model");
    std::vector<std::string> tokens = md.get_array<std::string>("tokenizer.ggml.tokens");
    std::vector<std::int32_t> types;
    if (md.contains("tokenizer.ggml.token_type")) types = md.get_array<std::int32_t>("tokenizer.ggml.token_type");
    auto opt_id = [&](const char* key) -> std::optional<tk::TokenId> {
        if (!md.contains(key)) return std::nullopt;
        return static_cast<tk::TokenId>(md.get_int(key));
    };
    if (model == "gpt2") {
        tk::BpeOptions o;
        o.pre = tk::pre_tokenizer_from_gguf(md.get_or<std::string>("tokenizer.ggml.pre", "default"));
        o.ignore_merges = o.pre == tk::PreTokenizer::llama3;
        o.add_bos = md.get_or<bool>("tokenizer.ggml.add_bos_token", false);
        o.bos_id = opt_id("tokenizer.ggml.bos_token_id");
        o.eos_id = opt_id("tokenizer.ggml.eos_token_id");
        const auto& merges = md.get_array<std::string>("tokenizer.ggml.merges");
        const auto tok = tk::ByteLevelBpe::from_vocab(std::move(tokens), merges, types, o);
        return run_texts(tok, in);
    }
    if (model == "llama") {
        tk::SentencePieceOptions o;
        o.space_symbol = "\xE2\x96\x81";
        o.add_bos = md.get_or<bool>("tokenizer.ggml.add_bos_token", true);
        o.add_dummy_prefix = md.get_or<bool>("tokenizer.ggml.add_space_prefix", true);
        o.bos_id = opt_id("tokenizer.ggml.bos_token_id");
        o.eos_id = opt_id("tokenizer.ggml.eos_token_id");
        o.unk_id = opt_id("tokenizer.ggml.unknown_token_id");
        std::vector<float> scores = md.get_array<float>("tokenizer.ggml.scores");
        const auto tok = tk::SentencePieceBpe::from_vocab(std::move(tokens), std::move(scores), types, o);
        return run_texts(tok, in);
    }
    throw std::runtime_error("tokenizer.ggml.model '" + model + "' is not handled");
}

json run_chat(const std::string& template_path, const json& in) {
    const auto tmpl = tk::ChatTemplate::detect(slurp(template_path));
    json out = json::array();
    for (const auto& conv : in.at("conversations")) {
        std::vector<tk::ChatMessage> msgs;
        for (const auto& m : conv.at("messages"))
            msgs.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
        out.push_back(tmpl.render(msgs, conv.value("add_generation_prompt", false)));
    }
    return {{"format", std::string(tk::chat_format_name(tmpl.format()))}, {"rendered", out}};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s gguf|hfjson|llama2c|pretok|chat SOURCE IN.json OUT.json\n", argv[0]);
        return 2;
    }
    try {
        const std::string mode = argv[1], source = argv[2];
        const json in = json::parse(slurp(argv[3]));
        json out;
        if (mode == "gguf") {
            out = run_gguf(source, in);
        } else if (mode == "hfjson") {
            out = run_texts(tk::ByteLevelBpe::from_hf_file(source), in);
        } else if (mode == "llama2c") {
            const auto t = optiq::io::Llama2cTokenizer::open(source);
            out = run_texts(tk::SentencePieceBpe::from_llama2c(t.vocab, t.scores), in);
        } else if (mode == "pretok") {
            const tk::PreTokenizer pre = tk::pre_tokenizer_from_gguf(source);
            json pieces = json::array();
            for (const std::string& t : texts_of(in)) pieces.push_back(tk::pre_tokenize_strings(t, pre));
            out = {{"pieces", pieces}};
        } else if (mode == "chat") {
            out = run_chat(source, in);
        } else {
            std::fprintf(stderr, "unknown mode '%s'\n", mode.c_str());
            return 2;
        }
        std::ofstream(argv[4], std::ios::binary) << out.dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "optiq_tokenizer_dump: %s\n", e.what());
        return 1;
    }
    return 0;
}

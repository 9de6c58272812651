#include "optiq/tokenizer/hf_json_writer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "../io/gguf_builder.hpp"
#include "../io/io_test_util.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/tokenizer/any_tokenizer.hpp"

namespace {

using namespace optiq;
using namespace optiq::tokenizer;
namespace fs = std::filesystem;

const std::vector<std::string> kLines = {
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    " = Robert Boulter = ",
    " In 2006 , Boulter starred alongside Whishaw in the play Citizenship written by Mark Ravenhill . ",
    "Numbers 12345 and 3.14, café, naïve \xE2\x80\x94 \xE2\x80\x9Cquotes\xE2\x80\x9D",
    "  two  spaces\tand a tab\nand a newline",
    "",
    "a"};

fs::path stories_tok() { return io::test::shared_models_dir() / "stories260K" / "tok512.bin"; }
fs::path smollm_gguf() { return io::test::cache_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"; }

/// HF tokenizers' BPE on one word, written out: symbols are the word's characters (or <0xXX>
/// byte tokens when a character is not in the vocabulary: byte_fallback), then the adjacent pair
/// with the lowest merge rank is merged, leftmost first, until no pair has a rank.
std::vector<std::int64_t> hf_bpe_word(const nlohmann::json& model, const std::string& word) {
    const auto& vocab = model["vocab"];
    std::map<std::pair<std::string, std::string>, std::size_t> rank;
    for (std::size_t r = 0; r < model["merges"].size(); ++r) {
        const std::string m = model["merges"][r];
        const auto sp = m.find(' ');
        rank.emplace(std::pair{m.substr(0, sp), m.substr(sp + 1)}, r);
    }
    std::vector<std::string> sym;
    for (std::size_t i = 0; i < word.size();) {
        const std::size_t len = std::max<std::size_t>(1, tokenizer::detail::utf8_step(word, i).len);
        const std::string ch = word.substr(i, len);
        if (vocab.contains(ch)) {
            sym.push_back(ch);
        } else {
            for (std::size_t k = 0; k < len; ++k) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "<0x%02X>", static_cast<unsigned char>(word[i + k]));
                sym.emplace_back(buf);
            }
        }
        i += len;
    }
    for (;;) {
        std::size_t best = sym.size(), best_rank = SIZE_MAX;
        for (std::size_t i = 0; i + 1 < sym.size(); ++i) {
            const auto it = rank.find({sym[i], sym[i + 1]});
            if (it != rank.end() && it->second < best_rank) best_rank = it->second, best = i;
        }
        if (best == sym.size()) break;
        sym[best] += sym[best + 1];
        sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    std::vector<std::int64_t> ids;
    for (const auto& s : sym) ids.push_back(vocab.at(s).get<std::int64_t>());
    return ids;
}

TEST(HfJsonWriter, Llama2cMergesFromScoresTokenizeAsLlama2c) {
    if (!fs::exists(stories_tok())) GTEST_SKIP() << stories_tok() << " not found";
    const auto t = io::Llama2cTokenizer::open(stories_tok());
    const HfTokenizerFiles f = hf_tokenizer_from_llama2c(t.vocab, t.scores);
    const auto spm = SentencePieceBpe::from_llama2c(t.vocab, t.scores);
    const auto& j = f.tokenizer;
    EXPECT_EQ(j["model"]["type"], "BPE");
    EXPECT_TRUE(j["model"]["byte_fallback"].get<bool>());
    EXPECT_EQ(j["model"]["unk_token"], "<unk>");
    ASSERT_EQ(j["added_tokens"].size(), 3u);
    EXPECT_EQ(j["added_tokens"][1]["content"], "<s>");
    EXPECT_EQ(f.tokenizer_config["bos_token"], "<s>");
    EXPECT_TRUE(f.tokenizer_config["add_bos_token"].get<bool>());
    // Spaces become '▁' in the vocabulary, as the normalizer writes them.
    for (const auto& [tok, id] : j["model"]["vocab"].items()) EXPECT_EQ(tok.find(' '), std::string::npos) << tok;
    for (const std::string& line : kLines) {
        if (line.empty()) continue;
        // Normalizer: Prepend('▁') then Replace(' ', '▁'); post-processor: BOS.
        std::string norm = "\u2581";
        for (char ch : line) norm += ch == ' ' ? std::string("\u2581") : std::string(1, ch);
        std::vector<std::int64_t> hf = {1};
        for (auto id : hf_bpe_word(j["model"], norm)) hf.push_back(id);
        const auto want = spm.encode(line);
        EXPECT_EQ(hf, std::vector<std::int64_t>(want.begin(), want.end())) << line;
    }
}

TEST(HfJsonWriter, GgufByteLevelReadsBackToTheSameIds) {
    if (!fs::exists(smollm_gguf())) GTEST_SKIP() << smollm_gguf() << " not found";
    const auto gguf = io::GgufFile::open(smollm_gguf());
    const HfTokenizerFiles f = hf_tokenizer_from_gguf(gguf);
    EXPECT_EQ(f.tokenizer["pre_tokenizer"]["type"], "Sequence");  // smollm: Digits + ByteLevel
    EXPECT_FALSE(f.tokenizer_config["add_bos_token"].get<bool>());
    EXPECT_EQ(f.tokenizer_config["eos_token"], "<|im_end|>");
    ASSERT_TRUE(f.tokenizer_config.contains("chat_template"));
    EXPECT_NE(f.tokenizer_config["chat_template"].get<std::string>().find("<|im_start|>"), std::string::npos);
    // optiq's own tokenizer.json reader on the written file tokenizes as the GGUF vocabulary does.
    const auto from_json = ByteLevelBpe::from_hf_json(f.tokenizer);
    const auto from_gguf = tokenizer_from_gguf(gguf);
    for (const std::string& line : kLines) EXPECT_EQ(from_json.encode(line), from_gguf.encode(line)) << line;
    EXPECT_EQ(from_json.encode("<|im_start|>user\nHi<|im_end|>"), from_gguf.encode("<|im_start|>user\nHi<|im_end|>"));
}

TEST(HfJsonWriter, PreTokenizersReadBackAsTheirKind) {
    const std::vector<std::string> toks = {"a", "b", "ab"};
    const std::vector<std::string> merges = {"a b"};
    for (const auto& [pre, kind] : std::vector<std::pair<std::string, PreTokenizer>>{
             {"gpt2", PreTokenizer::gpt2}, {"smollm", PreTokenizer::smollm}, {"qwen2", PreTokenizer::qwen2},
             {"llama-bpe", PreTokenizer::llama3}}) {
        const auto f = hf_byte_level_bpe(toks, merges, {}, pre, std::nullopt, std::nullopt, false);
        EXPECT_EQ(ByteLevelBpe::detect_pre_tokenizer(f.tokenizer["pre_tokenizer"], pre), kind) << pre;
        EXPECT_EQ(ByteLevelBpe::from_hf_json(f.tokenizer).encode("ab"), std::vector<TokenId>{2}) << pre;
    }
    EXPECT_THROW((void)hf_byte_level_bpe(toks, merges, {}, "unknown-pre", std::nullopt, std::nullopt, false), config_error);
    EXPECT_THROW((void)hf_byte_level_bpe(toks, merges, {1, 1}, "gpt2", std::nullopt, std::nullopt, false), shape_error);
}

TEST(HfJsonWriter, OutOfRangeIdsAreOptiqErrors) {
    // A BOS id outside the vocabulary once escaped as std::out_of_range from vector::at.
    const std::vector<std::string> toks = {"a", "b", "ab"};
    const std::vector<std::string> merges = {"a b"};
    EXPECT_THROW((void)hf_byte_level_bpe(toks, merges, {}, "gpt2", 3, std::nullopt, true), value_error);
    EXPECT_THROW((void)hf_byte_level_bpe(toks, merges, {}, "gpt2", -1, std::nullopt, true), value_error);
    EXPECT_THROW((void)hf_sentencepiece_bpe(toks, {0.f, 0.f, 0.f}, {}, " ", 7, 2, 0, true), value_error);
    // From GGUF metadata, ids are checked before narrowing and named with the file and key.
    io::test::GgufBuilder b;
    b.kv_string("tokenizer.ggml.model", "gpt2");
    b.kv_strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
    b.kv_strings("tokenizer.ggml.merges", {"a b"});
    b.kv_u64("tokenizer.ggml.eos_token_id", (1ull << 32) + 1);  // was written out as a null eos_token
    try {
        (void)hf_tokenizer_from_gguf(io::GgufFile::from_bytes(b.build(), "w.gguf"));
        FAIL() << "eos id 2^32 + 1 accepted";
    } catch (const format_error& e) {
        EXPECT_NE(std::string(e.what()).find("w.gguf: metadata key 'tokenizer.ggml.eos_token_id'"), std::string::npos)
            << e.what();
    }
}

}  // namespace

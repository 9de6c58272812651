#include "optiq/tokenizer/pretokenize.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "optiq/core/rng.hpp"

namespace tk = optiq::tokenizer;
using V = std::vector<std::string>;

namespace {

V split(std::string_view s, tk::PreTokenizer p) { return tk::pre_tokenize_strings(s, p); }

// Expected pieces follow the regexes by hand (leftmost alternative wins; \s+(?!\S) gives back the
// last white-space character when a non-space follows). tests/interop checks the scanners against
// HF tokenizers on WikiText.
TEST(PreTokenize, Gpt2) {
    const auto g = tk::PreTokenizer::gpt2;
    EXPECT_EQ(split("Hello, world! I'm  fine\n\nok", g),
              (V{"Hello", ",", " world", "!", " I", "'m", " ", " fine", "\n", "\n", "ok"}));
    EXPECT_EQ(split("x  ", g), (V{"x", "  "}));
    EXPECT_EQ(split("a1b2 34", g), (V{"a", "1", "b", "2", " 34"}));
    EXPECT_EQ(split("(foo) bar.\n", g), (V{"(", "foo", ")", " bar", ".", "\n"}));
    EXPECT_EQ(split("I'M 'sa", g), (V{"I", "'", "M", " '", "sa"}));  // case-sensitive contractions
    EXPECT_EQ(split("caf\xC3\xA9 \xC2\xBD\t-x", g), (V{"caf\xC3\xA9", " \xC2\xBD", "\t", "-", "x"}));
    EXPECT_TRUE(split("", g).empty());
}

TEST(PreTokenize, SmolLMIsolatesEveryDigit) {
    const auto s = tk::PreTokenizer::smollm;
    EXPECT_EQ(split("a1b2 34", s), (V{"a", "1", "b", "2", " ", "3", "4"}));
    EXPECT_EQ(split("in 1990, ok", s), (V{"in", " ", "1", "9", "9", "0", ",", " ok"}));
    // The regex does not see across a digit: "  " before it is a run at the end of its stretch.
    EXPECT_EQ(split("x  7", s), (V{"x", "  ", "7"}));
}

TEST(PreTokenize, Qwen2AndLlama3) {
    const auto q = tk::PreTokenizer::qwen2, l = tk::PreTokenizer::llama3;
    EXPECT_EQ(split("Hello, WORLD'S 123\n\n  x", q),
              (V{"Hello", ",", " WORLD", "'S", " ", "1", "2", "3", "\n\n", " ", " x"}));
    EXPECT_EQ(split("Hello, WORLD'S 12345\n\n  x", l),
              (V{"Hello", ",", " WORLD", "'S", " ", "123", "45", "\n\n", " ", " x"}));
    EXPECT_EQ(split("(foo) bar.\n", q), (V{"(foo", ")", " bar", ".\n"}));
    EXPECT_EQ(split("\tx \n y", q), (V{"\tx", " \n", " y"}));
}

TEST(PreTokenize, PiecesCoverTheText) {
    const std::string s = "Mixed: \xE4\xB8\xAD\xE6\x96\x87 42\r\n\t 'll  \xF0\x9F\x98\x80!!";
    for (auto p : {tk::PreTokenizer::gpt2, tk::PreTokenizer::smollm, tk::PreTokenizer::qwen2, tk::PreTokenizer::llama3}) {
        std::string joined;
        for (const auto& piece : split(s, p)) {
            EXPECT_FALSE(piece.empty());
            joined += piece;
        }
        EXPECT_EQ(joined, s) << tk::pre_tokenizer_name(p);
    }
}

TEST(PreTokenize, RandomTextIsCoveredByNonEmptyPieces) {
    const std::vector<std::string> alphabet = {"a", "Z", " ", "\n", "\r", "\t", "5", "'", "s", "LL", "-", "\xC3\xA9",
                                               "\xD9\xA3", "\xE3\x80\x80", "\xF0\x9F\x98\x80", "\xCC\x81"};
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        optiq::Rng rng(seed);
        std::string s;
        const auto n = rng.next_u64() % 40;
        for (std::uint64_t i = 0; i < n; ++i) s += alphabet[rng.next_u64() % alphabet.size()];
        for (auto p : {tk::PreTokenizer::gpt2, tk::PreTokenizer::smollm, tk::PreTokenizer::qwen2,
                       tk::PreTokenizer::llama3}) {
            std::size_t at = 0;
            for (const tk::Piece& piece : tk::pre_tokenize(s, p)) {
                ASSERT_EQ(piece.begin, at) << "seed " << seed;
                ASSERT_LT(piece.begin, piece.end) << "seed " << seed;
                at = piece.end;
            }
            EXPECT_EQ(at, s.size()) << "seed " << seed << " " << tk::pre_tokenizer_name(p);
        }
    }
}

TEST(PreTokenize, GgufNames) {
    EXPECT_EQ(tk::pre_tokenizer_from_gguf("smollm"), tk::PreTokenizer::smollm);
    EXPECT_EQ(tk::pre_tokenizer_from_gguf("qwen2"), tk::PreTokenizer::qwen2);
    EXPECT_EQ(tk::pre_tokenizer_from_gguf("llama-bpe"), tk::PreTokenizer::llama3);
    EXPECT_EQ(tk::pre_tokenizer_from_gguf("default"), tk::PreTokenizer::gpt2);
    EXPECT_THROW((void)tk::pre_tokenizer_from_gguf("deepseek-coder"), optiq::config_error);
}

}  // namespace

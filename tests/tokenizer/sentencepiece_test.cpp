#include "optiq/tokenizer/sentencepiece.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "optiq/core/rng.hpp"
#include "optiq/io/llama2c.hpp"

namespace tk = optiq::tokenizer;
using Ids = std::vector<tk::TokenId>;

namespace {

tk::EncodeOptions opts(bool parse_special, std::optional<bool> add_bos = std::nullopt, bool add_eos = false) {
    tk::EncodeOptions o;
    o.parse_special = parse_special;
    o.add_bos = add_bos;
    o.add_eos = add_eos;
    return o;
}

// <unk> <s> </s>, the 256 byte tokens at byte+3, then a few pieces whose scores decide the merges.
struct Toy {
    std::vector<std::string> vocab;
    std::vector<float> scores;
    std::vector<std::int32_t> types;
    explicit Toy(const std::string& space) {
        add("<unk>", 0, 2);
        add("<s>", 0, 3);
        add("</s>", 0, 3);
        for (int b = 0; b < 256; ++b) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "<0x%02X>", b);
            add(buf, 0, 6);
        }
        add(space, -10);       // 259
        add("a", -10);         // 260
        add("b", -10);         // 261
        add("ab", -1);         // 262
        add(space + "a", -2);  // 263
        add(space + "ab", -0.5f);  // 264
        add("ba", -1);         // 265: ties with "ab"
        add("c", -10);         // 266
    }
    void add(std::string s, float score, std::int32_t type = 1) {
        vocab.push_back(std::move(s));
        scores.push_back(score);
        types.push_back(type);
    }
};

tk::SentencePieceBpe toy_llama2c() {
    Toy t(" ");
    return tk::SentencePieceBpe::from_llama2c(t.vocab, t.scores);
}

TEST(SentencePiece, MergesHighestScoreFirstLeftmostOnTies) {
    const auto sp = toy_llama2c();
    EXPECT_EQ(sp.encode("ab"), (Ids{1, 264}));  // " " "a" "b" -> " " "ab" (-1 beats " a" -2) -> " ab"
    // "ab" and "ba" tie at -1: the leftmost merges first, giving " ab" "a" (rightmost first would give " a" "ba").
    EXPECT_EQ(sp.encode("aba"), (Ids{1, 264, 260}));
    EXPECT_EQ(sp.encode("bab"), (Ids{1, 259, 265, 261}));  // " " "b" "a" "b": "ba" leftmost of the tie
    EXPECT_EQ(sp.encode(""), (Ids{1}));                    // no dummy prefix for empty text
    EXPECT_EQ(sp.encode("ab", opts(true, false, true)), (Ids{264, 2}));
}

TEST(SentencePiece, LongInputMergesInNearLinearTime) {
    Ids want(100001, 260);
    want[0] = 1;
    want[1] = 263;  // " a", then "a" x 99999 ("aa" is not a piece)
    EXPECT_EQ(toy_llama2c().encode(std::string(100000, 'a')), want);
}

TEST(SentencePiece, ByteFallbackAndDecode) {
    const auto sp = toy_llama2c();
    const Ids ids = sp.encode("c\xC3\xA9");  // é is not in the vocabulary: C3 A9 -> ids 0xC3+3, 0xA9+3
    EXPECT_EQ(ids, (Ids{1, 259, 266, 0xC3 + 3, 0xA9 + 3}));
    EXPECT_EQ(sp.decode(ids), "c\xC3\xA9");  // the dummy space after BOS is dropped
    EXPECT_EQ(sp.decode(Ids{264, 264}), "ab ab");
    EXPECT_EQ(sp.decode(Ids{260, 264, 2}), "a ab");  // EOS decodes to nothing
    EXPECT_EQ(sp.decode(Ids{0xC3 + 3}), "\xEF\xBF\xBD");  // a lone lead byte: lossy
    EXPECT_EQ(sp.decode_bytes(Ids{0xC3 + 3}), "\xC3");
    for (const char* s : {"ab ba  cab", "\xE2\x98\x83 snow", " lead", "trail "})
        EXPECT_EQ(sp.decode(sp.encode(s)), s) << s;
}

TEST(SentencePiece, RoundTripsRandomText) {
    const std::vector<std::string> alphabet = {"a", "b", "ab", " ", "  ", "c", "\n", "\xC3\xA9", "\xF0\x9F\x98\x80", "z"};
    const auto sp = toy_llama2c();
    for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        optiq::Rng rng(seed);
        std::string s;
        const auto n = rng.next_u64() % 30;
        for (std::uint64_t i = 0; i < n; ++i) s += alphabet[rng.next_u64() % alphabet.size()];
        EXPECT_EQ(sp.decode(sp.encode(s)), s) << "seed " << seed;
    }
}

TEST(SentencePiece, GgufStyleVocabularyWithSpaceSymbolAndSpecialTokens) {
    const std::string space = "\xE2\x96\x81";  // U+2581
    Toy t(space);
    tk::SentencePieceOptions o;
    o.space_symbol = space;
    const auto sp = tk::SentencePieceBpe::from_vocab(t.vocab, t.scores, t.types, o);
    EXPECT_EQ(sp.encode("ab ab"), (Ids{1, 264, 264}));
    EXPECT_EQ(sp.decode(sp.encode("ab ab")), "ab ab");
    // Control tokens are matched whole; the dummy prefix goes before the text at the start and after each
    // special token, as llama.cpp's SPM tokenizer does: "▁ab" both times.
    EXPECT_EQ(sp.encode("ab</s>ab"), (Ids{1, 264, 2, 264}));
    EXPECT_EQ(sp.encode("</s>ab"), (Ids{1, 2, 264}));
    EXPECT_EQ(sp.encode("ab</s>ab", opts(false)).size(), 7u);  // <, /, s, > as byte tokens
}

TEST(SentencePiece, BadInputIsRejected) {
    Toy t(" ");
    EXPECT_THROW((void)tk::SentencePieceBpe::from_llama2c(t.vocab, std::vector<float>(3)), optiq::shape_error);
    auto bad_types = t.types;
    bad_types[260] = 6;  // "a" typed as a byte token
    EXPECT_THROW((void)tk::SentencePieceBpe::from_vocab(t.vocab, t.scores, bad_types, {}), optiq::format_error);
    bad_types[260] = 9;
    EXPECT_THROW((void)tk::SentencePieceBpe::from_vocab(t.vocab, t.scores, bad_types, {}), optiq::format_error);
    const auto sp = toy_llama2c();
    EXPECT_THROW((void)sp.decode(Ids{267}), optiq::value_error);
    EXPECT_THROW((void)sp.encode("a\xFF"), optiq::value_error);
    tk::SentencePieceOptions o;
    o.utf8 = tk::Utf8Policy::replace;
    const auto lenient = tk::SentencePieceBpe::from_vocab(t.vocab, t.scores, t.types, o);
    EXPECT_EQ(lenient.encode("a\xFF"), (Ids{1, 263, 0xEF + 3, 0xBF + 3, 0xBD + 3}));  // U+FFFD's bytes
    // Without byte tokens and without <unk>, a character outside the vocabulary cannot be encoded.
    o.unk_id.reset();
    o.utf8 = tk::Utf8Policy::strict;
    const auto no_fallback = tk::SentencePieceBpe::from_vocab({"<s>", "</s>", " ", "a"}, {0, 0, 0, 0}, {}, o);
    EXPECT_THROW((void)no_fallback.encode("z"), optiq::value_error);
}

// ---- the real stories260K tokenizer (../shared/models/stories260K/tok512.bin) ----------------------
std::filesystem::path tok512() {
    if (const char* m = std::getenv("OPTIQ_MODELS"); m && *m) return std::filesystem::path(m) / "stories260K/tok512.bin";
    return std::filesystem::path(__FILE__).parent_path() / "../../../shared/models/stories260K/tok512.bin";
}

TEST(SentencePieceStories260K, EncodesLikeLlama2c) {
    if (!std::filesystem::exists(tok512())) GTEST_SKIP() << tok512() << " is absent";
    const auto file = optiq::io::Llama2cTokenizer::open(tok512());
    const auto sp = tk::SentencePieceBpe::from_llama2c(file.vocab, file.scores);
    ASSERT_EQ(sp.vocab_size(), 512u);
    const Ids ids = sp.encode("Once upon a time, there was a little dog");
    EXPECT_EQ(ids, (Ids{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 400, 428}));
    // Hand check: the pieces spell the text with the dummy-prefix space, and " dog" is " do" + "g".
    EXPECT_EQ(sp.piece(403), " Once");
    EXPECT_EQ(sp.piece(376), " little");
    EXPECT_EQ(sp.piece(400), " do");
    EXPECT_EQ(sp.piece(428), "g");
    EXPECT_EQ(sp.decode(ids), "Once upon a time, there was a little dog");
    // ö and the snowman are not in the 512-token vocabulary: byte fallback at id byte+3.
    const Ids w = sp.encode("w\xC3\xB6rld \xE2\x98\x83");
    EXPECT_EQ(w, (Ids{1, 263, 0xC3 + 3, 0xB6 + 3, 420, 341, 410, 0xE2 + 3, 0x98 + 3, 0x83 + 3}));
    EXPECT_EQ(sp.decode(w), "w\xC3\xB6rld \xE2\x98\x83");
    tk::StreamingDecoder<tk::SentencePieceBpe> d(sp);
    std::string streamed;
    for (std::size_t i = 0; i < w.size(); ++i) {
        const std::string part = d.push(w[i]);
        if (w[i] == 0xE2 + 3 || w[i] == 0x98 + 3) {
            EXPECT_EQ(part, "");  // inside the snowman's bytes
        }
        streamed += part;
    }
    EXPECT_EQ(streamed + d.flush(), "w\xC3\xB6rld \xE2\x98\x83");
}

}  // namespace

#include "optiq/tokenizer/vocab.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "optiq/core/rng.hpp"

namespace tk = optiq::tokenizer;

namespace {

// A token is just its bytes here; id 99 is a "special" token that skip_special drops.
struct FakeTok {
    std::vector<std::string> bytes;
    [[nodiscard]] std::string decode_piece(tk::TokenId, tk::TokenId id, bool skip_special) const {
        if (id == 99) return skip_special ? "" : "<eos>";
        return bytes.at(static_cast<std::size_t>(id));
    }
};

TEST(StreamingDecoder, HoldsBackIncompleteUtf8) {
    // 😀 = F0 9F 98 80 split over three tokens, then "é" = C3 A9 split over two, then ASCII.
    const FakeTok tok{{"a\xF0", "\x9F\x98", "\x80!", "\xC3", "\xA9", "z"}};
    tk::StreamingDecoder<FakeTok> d(tok);
    EXPECT_EQ(d.push(0), "a");
    EXPECT_EQ(d.pending(), 1u);
    EXPECT_EQ(d.push(1), "");
    EXPECT_EQ(d.pending(), 3u);
    EXPECT_EQ(d.push(2), "\xF0\x9F\x98\x80!");
    EXPECT_EQ(d.pending(), 0u);
    EXPECT_EQ(d.push(3), "");
    EXPECT_EQ(d.push(4), "\xC3\xA9");
    EXPECT_EQ(d.push(99), "<eos>");
    EXPECT_EQ(d.push(5), "z");
    EXPECT_EQ(d.flush(), "");
}

TEST(StreamingDecoder, InvalidBytesBecomeReplacementAtOnceAndFlushEndsAnOpenSequence) {
    const FakeTok tok{{"\x80", "x\xE2\x82", "\xE2"}};
    tk::StreamingDecoder<FakeTok> d(tok, /*skip_special=*/true);
    EXPECT_EQ(d.push(0), "\xEF\xBF\xBD");  // a lone continuation byte can never be completed
    EXPECT_EQ(d.push(1), "x");             // E2 82 may still be completed: held back
    EXPECT_EQ(d.push(2), "\xEF\xBF\xBD");  // ... but E2 is not a continuation byte: E2 82 is replaced
    EXPECT_EQ(d.push(99), "");             // skipped special token
    EXPECT_EQ(d.pending(), 1u);
    EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");  // the unfinished E2 at the end
    EXPECT_EQ(d.pending(), 0u);
}

// Property: however the bytes are cut into tokens, the stream's output is the lossy decode of the whole.
TEST(StreamingDecoder, AnyChunkingGivesTheLossyDecodeOfTheWhole) {
    const std::vector<std::string> alphabet = {"a", " ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x80",
                                               "\xC3", "\xF0\x9F", "\xED\xA0\x80", "\xFF", "\xE2\x82"};
    for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        optiq::Rng rng(seed);
        std::string whole;
        const auto n = 1 + rng.next_u64() % 24;
        for (std::uint64_t i = 0; i < n; ++i) whole += alphabet[rng.next_u64() % alphabet.size()];
        FakeTok tok;
        for (std::size_t i = 0; i < whole.size();) {
            const std::size_t len = std::min<std::size_t>(whole.size() - i, 1 + rng.next_u64() % 5);
            tok.bytes.push_back(whole.substr(i, len));
            i += len;
        }
        tk::StreamingDecoder<FakeTok> d(tok);
        std::string out;
        for (std::size_t id = 0; id < tok.bytes.size(); ++id) {
            const std::string part = d.push(static_cast<tk::TokenId>(id));
            EXPECT_EQ(tk::find_invalid_utf8(part), part.size()) << "seed " << seed;
            out += part;
        }
        out += d.flush();
        EXPECT_EQ(out, tk::utf8_lossy(whole)) << "seed " << seed;
    }
}

TEST(SpecialMatcher, LeftmostLongestWholeTokens) {
    const tk::detail::SpecialMatcher m({{"<|a|>", 5}, {"<|a|><|b|>", 6}, {"<|b|>", 7}, {"", 8}});
    std::vector<std::string> parts;
    const std::string s = "x<|a|><|b|>y<|b|><|a|<|a|>";
    m.split(
        s, [&](std::size_t b, std::size_t e) { parts.push_back("T:" + s.substr(b, e - b)); },
        [&](tk::TokenId id) { parts.push_back("S:" + std::to_string(id)); });
    EXPECT_EQ(parts, (std::vector<std::string>{"T:x", "S:6", "T:y", "S:7", "T:<|a|", "S:5"}));
}

}  // namespace

#include "optiq/model/generate.hpp"

#include <gtest/gtest.h>

#include "model_test_util.hpp"

namespace optiq::model::test {
namespace {

Detokenizer stories_detok() {
    return [](std::span<const TokenId> ids) { return decode_stories(ids); };
}

TEST(Generate, GreedyMatchesManualDecodeAndCountsTokens) {
    auto m = stories();
    const auto want = greedy(m, {1}, 30);
    GenerateOptions o;
    o.max_tokens = 30;
    const auto r = generate(m, std::vector<TokenId>{1}, o, stories_detok());
    EXPECT_EQ(r.tokens, want);
    EXPECT_EQ(r.stop, StopReason::max_tokens);
    EXPECT_EQ(r.text, decode_stories(want));
    EXPECT_EQ(r.prompt_tokens, 1u);
    EXPECT_GT(r.decode_tokens_per_second(), 0.0);
}

TEST(Generate, StopStringCutsTextAndStreamNeverShowsIt) {
    auto m = stories();
    GenerateOptions o;
    o.max_tokens = 100;
    o.stop_strings = {" park", "zzz"};
    std::string streamed;
    const auto r = generate(m, std::vector<TokenId>{1}, o, stories_detok(), [&](std::string_view s) { streamed += s; });
    EXPECT_EQ(r.stop, StopReason::stop_string);
    EXPECT_EQ(r.text, "Once upon a time, there was a little girl named Lily. She loved to play outside in the");
    EXPECT_EQ(streamed, r.text);
}

TEST(Generate, StopTokenAndEos) {
    auto m = stories();
    const auto ids = greedy(m, {1}, 10);
    GenerateOptions o;
    o.max_tokens = 50;
    o.stop_ids = {ids[4]};
    std::vector<TokenId> seen;
    const auto r = generate(m, std::vector<TokenId>{1}, o, stories_detok(), {}, [&](TokenId t) { seen.push_back(t); });
    EXPECT_EQ(r.stop, StopReason::stop_token);
    const auto first = std::find(ids.begin(), ids.end(), ids[4]);
    EXPECT_EQ(r.tokens, std::vector<TokenId>(ids.begin(), first + 1));
    EXPECT_EQ(seen, r.tokens);
    EXPECT_EQ(r.text, decode_stories(std::span(r.tokens).first(r.tokens.size() - 1)));
    // Sampled stories end with BOS (llama2.c's delimiter, the model's EOS here) long before 400 tokens.
    GenerateOptions s;
    s.max_tokens = 400;
    s.sampling.temperature = 1.0f;
    s.sampling.seed = 3;
    const auto r2 = generate(m, std::vector<TokenId>{1}, s);
    EXPECT_EQ(r2.stop, StopReason::stop_token);
    EXPECT_EQ(r2.tokens.back(), 1);
}

TEST(Generate, SeededSamplingIsReproducibleAndContextIsBounded) {
    auto m = stories();
    GenerateOptions o;
    o.max_tokens = 40;
    o.stop_at_eos = false;
    o.sampling.temperature = 0.8f;
    o.sampling.top_p = 0.9f;
    o.sampling.seed = 11;
    const auto a = generate(m, std::vector<TokenId>{1}, o);
    const auto b = generate(m, std::vector<TokenId>{1}, o);
    EXPECT_EQ(a.tokens, b.tokens);
    o.max_tokens = 1000;  // seq_len 512: stops when the context is full
    const auto c = generate(m, std::vector<TokenId>{1, 400}, o);
    EXPECT_EQ(c.stop, StopReason::context_full);
    EXPECT_EQ(c.tokens.size(), 511u);
    o.stop_strings = {"x"};
    EXPECT_THROW((void)generate(m, std::vector<TokenId>{1}, o), config_error);  // no detokenizer
}

}  // namespace
}  // namespace optiq::model::test

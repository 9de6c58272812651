#include "optiq/model/perplexity.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "model_test_util.hpp"

namespace optiq::model::test {
namespace {

TEST(Perplexity, FollowsLlamaCppProtocolOnStories) {
    auto m = stories();
    // A short text: the model's own greedy story (3 chunks of 64 tokens, plus a partial chunk).
    std::vector<TokenId> text{1};
    for (TokenId t : greedy(m, {1}, 210)) text.push_back(t);
    const std::size_t ctx = 64;
    const auto r = perplexity(m, text, ctx);
    EXPECT_EQ(r.chunks, 3u);
    EXPECT_EQ(r.predictions, 3u * 31u);  // positions 32..62 predict 33..63
    ASSERT_EQ(r.chunk_perplexity.size(), 3u);
    EXPECT_DOUBLE_EQ(r.chunk_perplexity.back(), r.perplexity);
    // Independent: token-by-token decode of each chunk from an empty cache, NLL summed in double.
    double nll = 0.0;
    for (std::size_t c = 0; c < 3; ++c) {
        m.reset();
        for (std::size_t j = 0; j + 1 < ctx; ++j) {
            const auto lg = m.decode(text[c * ctx + j]);
            if (j < ctx / 2) continue;
            double mx = -1e30, z = 0.0;
            for (float l : lg) mx = std::max(mx, double(l));
            for (float l : lg) z += std::exp(double(l) - mx);
            nll += std::log(z) + mx - lg[static_cast<std::size_t>(text[c * ctx + j + 1])];
        }
    }
    EXPECT_NEAR(r.perplexity, std::exp(nll / 93.0), 1e-4 * r.perplexity);
    // Greedy text is what the model expects most: perplexity is small, random ids score far worse.
    EXPECT_LT(r.perplexity, 3.0);
    std::vector<TokenId> noise(192);
    Rng rng(5);
    for (auto& t : noise) t = static_cast<TokenId>(rng.next_u64() % 512);
    EXPECT_GT(perplexity(m, noise, ctx).perplexity, 50.0);
    // max_chunks and BOS replacement.
    const auto one = perplexity(m, text, ctx, 1, TokenId{1});
    EXPECT_EQ(one.chunks, 1u);
    EXPECT_DOUBLE_EQ(one.perplexity, r.chunk_perplexity.front());  // chunk 0 already starts with BOS
    EXPECT_THROW((void)perplexity(m, std::span(text).first(63), ctx), value_error);
}

}  // namespace
}  // namespace optiq::model::test

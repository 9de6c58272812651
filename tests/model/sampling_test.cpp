#include "optiq/model/sampling.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

namespace optiq::model {
namespace {

const std::vector<float> kLogits{1.0f, 3.0f, 2.0f, 0.0f, 3.0f, -1.0f};

TEST(Sampler, GreedyIsArgmaxLowestIdOnTies) {
    Sampler s;
    EXPECT_EQ(s.sample(kLogits), 1);
    EXPECT_EQ(Sampler::argmax(kLogits), 1);
    SamplingOptions o;
    o.temperature = 5.0f;
    o.top_k = 1;
    Sampler k1(o);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(k1.sample(kLogits), 1);  // top-1 keeps the lowest id of the tie
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferent) {
    SamplingOptions o;
    o.temperature = 1.0f;
    o.seed = 7;
    Sampler a(o), b(o);
    o.seed = 8;
    Sampler c(o);
    std::vector<int> ta, tb, tc;
    for (int i = 0; i < 64; ++i) {
        ta.push_back(a.sample(kLogits));
        tb.push_back(b.sample(kLogits));
        tc.push_back(c.sample(kLogits));
    }
    EXPECT_EQ(ta, tb);
    EXPECT_NE(ta, tc);
}

TEST(Sampler, FrequenciesFollowSoftmaxAtTemperature) {
    SamplingOptions o;
    o.temperature = 2.0f;
    o.seed = 1;
    Sampler s(o);
    const int n = 40000;
    std::vector<int> count(kLogits.size());
    for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(s.sample(kLogits))];
    double z = 0;
    for (float l : kLogits) z += std::exp(l / 2.0);
    for (std::size_t i = 0; i < kLogits.size(); ++i) {
        const double p = std::exp(kLogits[i] / 2.0) / z;
        EXPECT_NEAR(count[i] / double(n), p, 4.5 * std::sqrt(p * (1 - p) / n) + 1e-4) << "token " << i;
    }
}

TEST(Sampler, TopKTopPMinPRestrictTheSupport) {
    auto support = [](SamplingOptions o) {
        o.temperature = 1.0f;
        Sampler s(o);
        std::vector<int> seen(kLogits.size());
        for (int i = 0; i < 3000; ++i) seen[static_cast<std::size_t>(s.sample(kLogits))] = 1;
        return seen;
    };
    SamplingOptions k;
    k.top_k = 3;  // ids 1, 4 (logit 3), 2 (logit 2)
    EXPECT_EQ(support(k), (std::vector<int>{0, 1, 1, 0, 1, 0}));
    SamplingOptions p;
    p.top_p = 0.7f;  // p(1) = p(4) = 0.3995..., two reach 0.7
    EXPECT_EQ(support(p), (std::vector<int>{0, 1, 0, 0, 1, 0}));
    SamplingOptions m;
    m.min_p = 0.3f;  // p(2)/p_max = e^-1 = 0.37 kept, p(0)/p_max = e^-2 = 0.135 dropped
    EXPECT_EQ(support(m), (std::vector<int>{0, 1, 1, 0, 1, 0}));
}

TEST(Sampler, LargeVocabularyTopPAndMinPKeepTheSortedPrefix) {
    // 49152 logits (SmolLM2's vocabulary size) at three spreads: the sampler sorts only the tokens
    // that can be in the prefix; what it draws must lie in the prefix a full sort gives.
    for (const double sigma : {0.3, 2.0, 6.0}) {
        Rng rng(5);
        std::vector<float> logits(49152);
        for (auto& l : logits) l = static_cast<float>(sigma * rng.normal());
        std::vector<std::int32_t> order(logits.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
            const float la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
            return la > lb || (la == lb && a < b);
        });
        const double mx = logits[static_cast<std::size_t>(order[0])];
        double z = 0.0;
        for (const float l : logits) z += std::exp(l - mx);
        for (const auto& [top_p, min_p] : {std::pair{0.9f, 0.0f}, std::pair{1.0f, 0.05f}, std::pair{0.5f, 0.01f}}) {
            std::vector<char> allowed(logits.size(), 0);
            double c = 0.0;
            for (const std::int32_t id : order) {
                const double w = std::exp(logits[static_cast<std::size_t>(id)] - mx);
                if (min_p > 0.0f && w < min_p) break;
                allowed[static_cast<std::size_t>(id)] = 1;
                c += w / z;
                if (top_p < 1.0f && c >= top_p) break;
            }
            SamplingOptions o;
            o.temperature = 1.0f;
            o.top_p = top_p;
            o.min_p = min_p;
            Sampler s(o);
            for (int i = 0; i < 100; ++i) {
                const auto t = s.sample(logits);
                ASSERT_TRUE(allowed[static_cast<std::size_t>(t)]) << "sigma " << sigma << " top_p " << top_p << " min_p "
                                                                 << min_p << ": token " << t;
            }
        }
    }
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
    SamplingOptions o;
    o.repetition_penalty = 2.0f;
    Sampler s(o);
    const std::vector<std::int32_t> hist{1, 4};
    EXPECT_EQ(s.sample(kLogits, hist), 2);  // 3/2 = 1.5 < 2
    const std::vector<float> neg{-1.0f, -0.6f};
    const std::vector<std::int32_t> h1{1};
    EXPECT_EQ(s.sample(neg, h1), 0);  // -0.6 * 2 = -1.2 < -1
    o.repetition_window = 1;          // only the last token (4) is penalized
    Sampler w(o);
    EXPECT_EQ(w.sample(kLogits, hist), 1);
}

TEST(Sampler, RejectsBadOptions) {
    SamplingOptions o;
    o.top_p = 0.0f;
    EXPECT_THROW(Sampler{o}, config_error);
    o = {};
    o.min_p = 1.5f;
    EXPECT_THROW(Sampler{o}, config_error);
    o = {};
    o.repetition_penalty = 0.0f;
    EXPECT_THROW(Sampler{o}, config_error);
    Sampler s;
    EXPECT_THROW((void)s.sample(std::vector<float>{}), value_error);
}

}  // namespace
}  // namespace optiq::model

#include "optiq/alloc/solver/exact.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <random>

#include "alloc_test_util.hpp"
#include "optiq/alloc/concepts.hpp"
#include "optiq/alloc/solver/greedy.hpp"

namespace {

using namespace optiq::alloc;
using optiq::alloc::test::random_table;

static_assert(optiq::Solver<ExactKnapsack>);

/// Minimum cost over every choice with weighted bpw <= budget, by enumeration.
double brute_force(const CostTable& t, double budget, std::vector<int>* best_bits) {
    const std::size_t n = t.size(), m = t.n_choices();
    std::vector<std::size_t> c(n, 0);
    double best = std::numeric_limits<double>::infinity();
    for (;;) {
        std::vector<int> bits(n);
        for (std::size_t i = 0; i < n; ++i) bits[i] = t.candidate_bits()[c[i]];
        if (weighted_bpw(t, bits) <= budget) {
            const Allocation a = make_allocation(t, bits);
            if (a.cost < best) {
                best = a.cost;
                *best_bits = bits;
            }
        }
        std::size_t k = 0;
        while (k < n && ++c[k] == m) c[k++] = 0;
        if (k == n) break;
    }
    return best;
}

TEST(ExactKnapsack, EqualsBruteForceOnSmallTables) {
    int checked = 0;
    for (std::uint64_t seed = 1; seed <= 150; ++seed) {
        const std::size_t n = 2 + seed % 7;  // 2..8 units
        const CostTable t = random_table(seed, n, {2, 4, 8});
        const double budget = 2.0 + 6.0 * static_cast<double>((seed * 37) % 100) / 100.0;
        std::vector<int> bf_bits;
        const double bf = brute_force(t, budget, &bf_bits);
        const Allocation a = ExactKnapsack{}.solve(t, budget);
        EXPECT_LE(a.bpw, budget);
        EXPECT_NEAR(a.cost, bf, 1e-9 * bf) << "seed " << seed << " n " << n << " budget " << budget;
        ++checked;
    }
    EXPECT_EQ(checked, 150);
}

TEST(ExactKnapsack, NeverWorseThanGreedyOnRandomTables) {
    const GreedyKnapsack plain(GreedyKnapsack::Options{0, 1.0, 0});
    int strictly_better = 0, strictly_better_convex = 0;
    for (std::uint64_t seed = 1; seed <= 120; ++seed) {
        const bool convex = seed % 2 == 0;
        const CostTable t = random_table(seed, 14 + seed % 28, {2, 3, 4, 6, 8}, true, convex);
        const double target = 2.5 + 4.0 * static_cast<double>(seed % 10) / 10.0;
        const Allocation g = plain.solve(t, target);
        ASSERT_GE(g.bpw, target);
        // Same budget as the greedy actually used: the exact optimum can only be cheaper.
        const Allocation e = ExactKnapsack{}.solve(t, g.bpw);
        EXPECT_LE(e.bpw, g.bpw + 1e-12);
        EXPECT_LE(e.cost, g.cost * (1 + 1e-12)) << "seed " << seed;
        if (e.cost < g.cost * (1 - 1e-9)) ++(convex ? strictly_better_convex : strictly_better);
    }
    // On convex tables the greedy lands on the lower convex hull, so it is (nearly) optimal at its
    // own bpw; with non-monotone marginal gains it is not, and the DP finds cheaper choices.
    EXPECT_GE(strictly_better, 30);
    std::printf("exact strictly cheaper than greedy: %d of 60 non-convex, %d of 60 convex tables\n",
                strictly_better, strictly_better_convex);
}

TEST(ExactKnapsack, HandWorkedOptimum) {
    // Bits {2, 4}, params 100 / 300 / 200 (P = 600). Budget 2 + 1000/600 bpw leaves 1000 bit-params
    // for upgrades costing 200 / 600 / 400. Feasible sets: {0,1} cost 19, {0,2} cost 27, {1,2} cost 10,
    // and all three (1200) does not fit. The best ratio (unit 0, 10/200) is not in the optimum.
    CostTable t({2, 4});
    t.add(make_unit("model.layers.1.mlp.up_proj", 100, 4), {10.0, 0.0});
    t.add(make_unit("model.layers.1.mlp.down_proj", 300, 4), {27.0, 0.0});
    t.add(make_unit("model.layers.2.mlp.down_proj", 200, 4), {19.0, 0.0});
    const double budget = 2.0 + 1000.0 / 600.0;
    const Allocation e = ExactKnapsack{}.solve(t, budget);
    EXPECT_EQ(e.bits, (std::vector<int>{2, 4, 4}));
    EXPECT_DOUBLE_EQ(e.cost, 10.0);
    EXPECT_NEAR(e.bpw, budget, 1e-12);
}

TEST(ExactKnapsack, ModelSizedTableStaysSmall) {
    // SmolLM2-135M's shapes (30 blocks x 7 projections + embedding, 211 units, 6 candidates): the
    // weights share the factor 192 * 576, so the frontier holds at most P / 110592 * 6 ~ 7300 states.
    CostTable t({2, 3, 4, 5, 6, 8});
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(0.5, 2.0);
    const auto add = [&](const std::string& name, std::uint64_t params) {
        std::vector<double> c;
        for (int b : t.candidate_bits()) c.push_back(static_cast<double>(params) * std::ldexp(1.0, -2 * b) * u(rng));
        t.add(make_unit(name, params, 30), c);
    };
    add("model.embed_tokens", 49152ull * 576);
    const std::pair<const char*, std::uint64_t> projs[] = {
        {"self_attn.q_proj", 576 * 576},   {"self_attn.k_proj", 192 * 576},   {"self_attn.v_proj", 192 * 576},
        {"self_attn.o_proj", 576 * 576},   {"mlp.gate_proj", 1536 * 576},     {"mlp.up_proj", 1536 * 576},
        {"mlp.down_proj", 576 * 1536}};
    for (int l = 0; l < 30; ++l)
        for (const auto& [name, params] : projs) add("model.layers." + std::to_string(l) + "." + name, params);
    const GreedyKnapsack plain(GreedyKnapsack::Options{0, 1.0, 0});
    for (double target : {3.0, 5.25}) {
        const Allocation g = plain.solve(t, target);
        const Allocation e = ExactKnapsack(ExactKnapsack::Options{20000}).solve(t, g.bpw);
        EXPECT_LE(e.bpw, g.bpw);
        EXPECT_LE(e.cost, g.cost * (1 + 1e-12));
    }
}

TEST(ExactKnapsack, BudgetBelowMinimumThrowsNamingNumbers) {
    const CostTable t = random_table(3, 5, {4, 8});
    try {
        (void)ExactKnapsack{}.solve(t, 3.5);
        FAIL() << "no throw";
    } catch (const optiq::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("3.5"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("4 bits"), std::string::npos) << e.what();
    }
}

TEST(ExactKnapsack, BudgetAtOrAboveMaxGivesAllMax) {
    const CostTable t = random_table(5, 9, {4, 8});
    const Allocation a = ExactKnapsack{}.solve(t, 9.0);
    for (int b : a.bits) EXPECT_EQ(b, 8);
    EXPECT_DOUBLE_EQ(a.bpw, 8.0);
    const Allocation lo = ExactKnapsack{}.solve(t, 4.0);
    for (int b : lo.bits) EXPECT_EQ(b, 4);
}

TEST(ExactKnapsack, MaxStatesGuardThrowsInsteadOfApproximating) {
    const CostTable t = random_table(7, 30, {2, 3, 4, 5, 6, 8});
    EXPECT_THROW((void)ExactKnapsack(ExactKnapsack::Options{4}).solve(t, 4.0), optiq::config_error);
}

}  // namespace

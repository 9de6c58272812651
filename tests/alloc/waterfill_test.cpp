#include "optiq/alloc/solver/waterfill.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "alloc_test_util.hpp"
#include "optiq/alloc/concepts.hpp"

namespace {

using namespace optiq::alloc;
using optiq::alloc::test::random_table;

static_assert(optiq::Solver<ReverseWaterFilling>);

CostTable kv_table(const std::vector<double>& w, std::vector<int> bits, double beta) {
    CostTable t(bits);
    for (std::size_t i = 0; i < w.size(); ++i) {
        Unit u;
        u.name = "layers." + std::to_string(i) + ".kv";
        u.kind = UnitKind::kv_layer;
        u.block = static_cast<int>(i);
        u.param_count = 1;
        u.weight = w[i];
        std::vector<double> c;
        for (int b : bits) c.push_back(w[i] * std::pow(beta, -b));
        t.add(u, c);
    }
    return t;
}

TEST(ReverseWaterFilling, WorkedCaseFromTheSpec) {
    // reference-spec "Numbers to reproduce" 7: w = [1, 3.5, 12.25], bbar = 2, beta = 3.5 -> [1, 2, 3].
    const CostTable t = kv_table({1.0, 3.5, 12.25}, {1, 2, 3, 4}, 3.5);
    const ReverseWaterFilling rq(3.5);
    const auto cont = rq.continuous_bits(t, 2.0);
    EXPECT_NEAR(cont[0], 1.0, 1e-12);
    EXPECT_NEAR(cont[1], 2.0, 1e-12);
    EXPECT_NEAR(cont[2], 3.0, 1e-12);
    const Allocation a = rq.solve(t, 2.0);
    EXPECT_EQ(a.bits, (std::vector<int>{1, 2, 3}));
    EXPECT_DOUBLE_EQ(a.bpw, 2.0);
    // Without explicit weights, w_i is recovered from the costs (they follow the model exactly).
    CostTable t2({1, 2, 3, 4});
    for (std::size_t i = 0; i < t.size(); ++i) {
        Unit u = t.unit(i);
        u.weight = 0;
        t2.add(u, t.costs(i));
    }
    EXPECT_EQ(rq.solve(t2, 2.0).bits, (std::vector<int>{1, 2, 3}));
}

TEST(ReverseWaterFilling, ClampSnapAndFixUpHitTheBudget) {
    // w spread far beyond the range: continuous bits go outside [2, 8], clamping loses bits, and
    // the fix-up must bring the total back to round(bbar * N) = 4 * 8 = 32.
    const std::vector<double> w = {1e-6, 1e-3, 1.0, 1.0, 5.0, 1e3, 1e6, 1e9};
    const CostTable t = kv_table(w, {2, 3, 4, 5, 6, 8}, 3.5);
    const Allocation a = ReverseWaterFilling(3.5).solve(t, 4.0);
    int sum = 0;
    for (int b : a.bits) sum += b;
    EXPECT_EQ(sum, 32);
    EXPECT_LE(a.bpw, 4.0);
    for (std::size_t i = 1; i < a.bits.size(); ++i) EXPECT_GE(a.bits[i], a.bits[i - 1]) << i;  // monotone in w
    EXPECT_EQ(a.bits.front(), 2);
}

TEST(ReverseWaterFilling, NeverExceedsTheBudget) {
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
        const CostTable t = random_table(seed, 3 + seed % 40, {2, 3, 4, 8});
        const double budget = 2.0 + 6.0 * static_cast<double>(seed % 17) / 17.0;
        const Allocation a = ReverseWaterFilling(5.0).solve(t, budget);
        EXPECT_LE(a.bpw, budget) << seed;
        // And nothing more fits: every unit not at max would cross the budget with one step.
        const auto& cand = t.candidate_bits();
        const double P = static_cast<double>(t.total_params());
        for (std::size_t i = 0; i < t.size(); ++i) {
            if (a.bits[i] == cand.back()) continue;
            const int next = cand[t.choice_of(a.bits[i]) + 1];
            EXPECT_GT(a.bpw + (next - a.bits[i]) * static_cast<double>(t.unit(i).param_count) / P, budget + 1e-12)
                << "seed " << seed << " unit " << i;
        }
    }
}

TEST(ReverseWaterFilling, InfeasibleBudgetThrows) {
    const CostTable t = kv_table({1, 2}, {2, 4}, 3.5);
    try {
        (void)ReverseWaterFilling().solve(t, 1.5);
        FAIL();
    } catch (const optiq::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("1.5"), std::string::npos) << e.what();
    }
    EXPECT_THROW(ReverseWaterFilling(1.0), optiq::config_error);
}

}  // namespace

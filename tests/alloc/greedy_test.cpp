#include "optiq/alloc/solver/greedy.hpp"

#include <gtest/gtest.h>

#include "alloc_test_util.hpp"
#include "optiq/alloc/concepts.hpp"

namespace {

using namespace optiq::alloc;
using optiq::alloc::test::random_table;

static_assert(optiq::Solver<GreedyKnapsack>);

TEST(GreedyKnapsack, TargetIsAFloorWithSmallOvershoot) {
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
        const CostTable t = random_table(seed, 7 * 6, {4, 8});
        const double target = 4.25 + 3.5 * static_cast<double>(seed % 8) / 8.0;
        const Allocation a = GreedyKnapsack{}.solve(t, target);
        EXPECT_GE(a.bpw, target) << seed;
        EXPECT_DOUBLE_EQ(a.bpw, weighted_bpw(t, a.bits));
        for (int b : a.bits) EXPECT_TRUE(b == 4 || b == 8);
    }
    // Without floor / guard, the greedy stops at the first step that reaches the target: the
    // overshoot is below one unit's step (4 bits * its params / P).
    const GreedyKnapsack plain(GreedyKnapsack::Options{0, 1.0, 0});
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
        const CostTable t = random_table(seed, 40, {4, 8});
        const Allocation a = plain.solve(t, 5.0);
        std::uint64_t max_params = 0;
        for (const Unit& u : t.units()) max_params = std::max(max_params, u.param_count);
        EXPECT_GE(a.bpw, 5.0);
        EXPECT_LT(a.bpw, 5.0 + 4.0 * static_cast<double>(max_params) / static_cast<double>(t.total_params()));
    }
}

TEST(GreedyKnapsack, PlainGreedyFollowsEfficiencyOrder) {
    // Equal params, bits {2, 4}: efficiency = dcost / (2 * 64). Costs at 2 bits 5, 9, 1, 7, all 0 at 4.
    // Target 3 bpw = two upgrades: the two largest drops (units 1 and 3).
    CostTable t({2, 4});
    const double c2[] = {5, 9, 1, 7};
    for (int i = 0; i < 4; ++i) t.add(make_unit("model.layers." + std::to_string(i) + ".mlp.up_proj", 64, 4), {c2[i], 0.0});
    const Allocation a = GreedyKnapsack(GreedyKnapsack::Options{0, 1.0, 0}).solve(t, 3.0);
    EXPECT_EQ(a.bits, (std::vector<int>{2, 4, 2, 4}));
    EXPECT_DOUBLE_EQ(a.bpw, 3.0);
    EXPECT_DOUBLE_EQ(a.cost, 6.0);
}

TEST(GreedyKnapsack, ProtectedUnitsUpgradeFirst) {
    // lm_head (outside layers.N) and block 0 / block 3 (first / last) are protected: x100 makes a
    // small KL there outrank a larger one in block 1 or 2.
    CostTable t({4, 8});
    t.add(make_unit("lm_head", 64, 4), {0.5, 0.0});
    t.add(make_unit("model.layers.0.mlp.up_proj", 64, 4), {0.3, 0.0});
    t.add(make_unit("model.layers.1.mlp.up_proj", 64, 4), {20.0, 0.0});
    t.add(make_unit("model.layers.2.mlp.up_proj", 64, 4), {10.0, 0.0});
    t.add(make_unit("model.layers.3.mlp.up_proj", 64, 4), {0.1, 0.0});
    EXPECT_TRUE(t.unit(0).is_protected);
    EXPECT_TRUE(t.unit(1).is_protected);
    EXPECT_FALSE(t.unit(2).is_protected);
    EXPECT_TRUE(t.unit(4).is_protected);
    const GreedyKnapsack g(GreedyKnapsack::Options{0, 100.0, 0});
    // Three upgrades (4 + 4*3/5 = 6.4 bpw): lm_head (50), layer 0 (30), layer 1 (20) by effective KL.
    const Allocation a = g.solve(t, 6.4);
    EXPECT_EQ(a.bits, (std::vector<int>{8, 8, 8, 4, 4}));
    // Not pinned: one upgrade goes to lm_head only.
    EXPECT_EQ(g.solve(t, 4.8).bits, (std::vector<int>{8, 4, 4, 4, 4}));
    // The plain greedy would take layers 1 and 2 first.
    EXPECT_EQ(GreedyKnapsack(GreedyKnapsack::Options{0, 1.0, 0}).solve(t, 5.6).bits, (std::vector<int>{4, 4, 8, 8, 4}));
}

TEST(GreedyKnapsack, BlockFloorPrefersAttentionProjections) {
    // One block (block 1 of 3) with q/k/v/o and an MLP whose KL at 4 bits is largest: the floor of 2
    // goes to the two attention projections with the largest KL (k_proj 3, q_proj 2), not the MLP.
    CostTable t({4, 8});
    t.add(make_unit("model.layers.1.self_attn.q_proj", 64, 3), {2.0, 0.0});
    t.add(make_unit("model.layers.1.self_attn.k_proj", 64, 3), {3.0, 0.0});
    t.add(make_unit("model.layers.1.self_attn.v_proj", 64, 3), {1.0, 0.0});
    t.add(make_unit("model.layers.1.mlp.down_proj", 64, 3), {50.0, 0.0});
    const Allocation a = GreedyKnapsack{}.solve(t, 4.0);
    EXPECT_EQ(a.bits, (std::vector<int>{8, 8, 4, 4}));
    // A block without attention projections gets a floor of 1: its top unit by KL.
    CostTable m({4, 8});
    m.add(make_unit("model.layers.1.mlp.up_proj", 64, 3), {2.0, 0.0});
    m.add(make_unit("model.layers.1.mlp.down_proj", 64, 3), {5.0, 0.0});
    m.add(make_unit("model.layers.1.mlp.gate_proj", 64, 3), {3.0, 0.0});
    EXPECT_EQ(GreedyKnapsack{}.solve(m, 4.0).bits, (std::vector<int>{4, 8, 4}));
}

TEST(GreedyKnapsack, LowBitRunGuardBreaksLongRuns) {
    // Ten blocks of one MLP unit each; the floor is off, so every block not upgraded by the greedy is
    // low-bit. Target 4: nothing upgraded, so blocks 3 and 7 (4th of each run) get upgraded.
    CostTable t({4, 8});
    for (int b = 0; b < 10; ++b)
        t.add(make_unit("model.layers." + std::to_string(b) + ".mlp.up_proj", 64, 10), {1.0 + b, 0.0});
    const Allocation a = GreedyKnapsack(GreedyKnapsack::Options{0, 1.0, 3}).solve(t, 4.0);
    EXPECT_EQ(a.bits, (std::vector<int>{4, 4, 4, 8, 4, 4, 4, 8, 4, 4}));
    int run = 0, longest = 0;
    for (int b : a.bits) longest = std::max(longest, run = b == 4 ? run + 1 : 0);
    EXPECT_LE(longest, 3);
}

TEST(GreedyKnapsack, TargetAboveMaxBitsThrows) {
    const CostTable t = random_table(1, 7, {4, 8});
    try {
        (void)GreedyKnapsack{}.solve(t, 8.5);
        FAIL();
    } catch (const optiq::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("8.5"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("8 bits"), std::string::npos) << e.what();
    }
    EXPECT_THROW(GreedyKnapsack(GreedyKnapsack::Options{-1, 100.0, 3}), optiq::config_error);
}

}  // namespace

#include "optiq/alloc/sensitivity/key_norm.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "optiq/alloc/concepts.hpp"
#include "optiq/alloc/solver/waterfill.hpp"

namespace {

using namespace optiq::alloc;

static_assert(optiq::Sensitivity<KeyNormSensitivity>);

TEST(KeyNormSensitivity, MeanSquaredKeyNormPerLayerWithFloor) {
    KeyNormSensitivity s("toy", 3.5);
    // Layer 0: tokens (1,0,0,0) and (1,1,1,1): ||k||^2 = 1 and 4, mean 2.5.
    const float l0[] = {1, 0, 0, 0, 1, 1, 1, 1};
    s.add_samples("model.layers.0.self_attn", l0, 4);
    // Layer 1: all zero keys: floored to 1e-6.
    const float l1[] = {0, 0, 0, 0};
    s.add_samples("model.layers.1.self_attn", l1, 4);
    // Layer 2 from two prompts: ||k||^2 = 9 then (4, 16): mean (9 + 4 + 16) / 3.
    const float l2a[] = {3, 0, 0, 0};
    const float l2b[] = {2, 0, 0, 0, 0, 0, 4, 0};
    s.add_samples("model.layers.2.self_attn", l2a, 4);
    s.add_samples("model.layers.2.self_attn", l2b, 4);
    const auto w = s.weights();
    ASSERT_EQ(w.size(), 3u);
    EXPECT_DOUBLE_EQ(w[0], 2.5);
    EXPECT_DOUBLE_EQ(w[1], 1e-6);
    EXPECT_DOUBLE_EQ(w[2], 29.0 / 3.0);
    const std::vector<int> bits = {2, 4, 8};
    const CostTable t = s.measure(bits);
    EXPECT_EQ(t.unit(2).block, 2);
    EXPECT_EQ(t.unit(2).kind, UnitKind::kv_layer);
    EXPECT_DOUBLE_EQ(t.cost(0, 1), 2.5 * std::pow(3.5, -4));
    EXPECT_DOUBLE_EQ(t.unit(0).weight, 2.5);
    EXPECT_THROW(s.add_samples("x", std::span<const float>(l0, 7), 4), optiq::shape_error);
}

TEST(KeyNormSensitivity, FeedsRateQuant) {
    // w = [1, 3.5, 12.25] via keys with ||k||^2 equal to those values -> bits [1, 2, 3] at bbar 2.
    KeyNormSensitivity s("toy", 3.5);
    const double w[] = {1.0, 3.5, 12.25};
    for (int l = 0; l < 3; ++l) {
        const float k[] = {static_cast<float>(std::sqrt(w[l])), 0.0f};
        s.add_samples("layers." + std::to_string(l), k, 2);
    }
    const std::vector<int> bits = {1, 2, 3, 4};
    const Allocation a = ReverseWaterFilling(3.5).solve(s.measure(bits), 2.0);
    EXPECT_EQ(a.bits, (std::vector<int>{1, 2, 3}));
    // The cache key follows the samples.
    KeyNormSensitivity s2("toy", 3.5);
    const float k[] = {1.0f, 0.0f};
    s2.add_samples("layers.0", k, 2);
    EXPECT_NE(s.cache_key(), s2.cache_key());
}

}  // namespace

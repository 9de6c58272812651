#include "optiq/codebook/affine.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"

namespace {

using optiq::Affine;

std::vector<float> group_of(std::size_t n, std::initializer_list<std::pair<std::size_t, float>> set) {
    std::vector<float> g(n, 0.0f);
    for (const auto& [i, v] : set) g[i] = v;
    return g;
}

// reference-spec "Numbers to reproduce" 6, first case; mlx 0.32 gives scale bits 0xBDCCCCCD, bias 1.0.
TEST(Affine, SpecCaseNegativeScale) {
    const Affine a(4, 32);
    const auto g = group_of(32, {{0, -0.5f}, {1, 1.0f}});
    const auto side = a.fit(g);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(side[0]), 0xBDCCCCCDu);  // -0.1f
    EXPECT_EQ(side[1], 1.0f);
    EXPECT_EQ(a.encode(0.0f, side), 10u);
    EXPECT_EQ(a.encode(-0.5f, side), 15u);
    EXPECT_EQ(a.encode(1.0f, side), 0u);
    EXPECT_EQ(a.encode(0.3f, side), 7u);
    EXPECT_EQ(a.encode(0.25f, side), 8u);  // (0.25 - 1) / -0.1 = 7.5: ties to even
    EXPECT_EQ(a.decode(0, side), 1.0f);    // the edge is exact
    EXPECT_EQ(a.decode(15, side), -0.5f);
}

// Second case: min -1, max 0.3 -> s = 1/12, bias -1, and 0.3 clips to code 15 = 0.25.
TEST(Affine, SpecCaseFarEndClips) {
    const Affine a(4, 32);
    const auto side = a.fit(group_of(32, {{0, -1.0f}, {1, 0.3f}}));
    EXPECT_EQ(side[0], 1.0f / 12.0f);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(side[0]), 0x3DAAAAABu);
    EXPECT_EQ(side[1], -1.0f);
    EXPECT_EQ(a.encode(0.3f, side), 15u);
    EXPECT_FLOAT_EQ(a.decode(15, side), 0.25f);
    EXPECT_EQ(a.encode(0.0f, side), 12u);
    EXPECT_EQ(a.decode(12, side), 0.0f);
}

// 1 bit is plain min/max in MLX (scale = max - min, bias = min; ml-explore/mlx #3478), which
// mlx 0.32.4 confirms: {-0.5, 1, 0...} gives scale 1.5, bias -0.5.
TEST(Affine, OneBitIsMinMax) {
    const Affine a(1, 32);
    const auto side = a.fit(group_of(32, {{0, -0.5f}, {1, 1.0f}}));
    EXPECT_EQ(side[0], 1.5f);
    EXPECT_EQ(side[1], -0.5f);
    EXPECT_EQ(a.encode(-0.5f, side), 0u);
    EXPECT_EQ(a.encode(1.0f, side), 1u);
    EXPECT_EQ(a.encode(0.0f, side), 0u);
    EXPECT_EQ(a.encode(0.25f, side), 0u);  // 0.75 / 1.5 = 0.5: tie to even
    EXPECT_EQ(a.encode(0.3f, side), 1u);
    // All-negative: still bias = min and a positive scale (2..8 bits would make max the edge).
    const auto neg = a.fit(std::vector<float>{-3.0f, -2.0f, -2.5f, -2.1f});
    EXPECT_EQ(neg[0], 1.0f);
    EXPECT_EQ(neg[1], -3.0f);
    EXPECT_EQ(a.decode(1, neg), -2.0f);
    // Constant: the 1e-7 floor.
    const auto c = a.fit(std::vector<float>(4, 3.0f));
    EXPECT_EQ(c[0], 1e-7f);
    EXPECT_EQ(c[1], 3.0f);
}

TEST(Affine, RintTiesToEven) {
    // {-3, 0}: |min| > |max| so s = 3/3 = 1 and bias = -3; -1.5 and -2.5 sit on exact halves.
    const Affine a(2, 4);
    const auto side = a.fit(std::vector<float>{-3.0f, 0.0f, -1.5f, -2.5f});
    EXPECT_EQ(side[0], 1.0f);
    EXPECT_EQ(side[1], -3.0f);
    EXPECT_EQ(a.encode(-1.5f, side), 2u);  // 1.5 -> 2
    EXPECT_EQ(a.encode(-2.5f, side), 0u);  // 0.5 -> 0 (round() would give 1)
    EXPECT_EQ(a.encode(-0.5f, side), 2u);  // 2.5 -> 2
}

TEST(Affine, ConstantAndZeroGroups) {
    const Affine a(4, 8);
    // Constant c: max - min = 0 so s = -1e-7 (|min| > |max| is false), q0 = rint(c / -1e-7) != 0,
    // so s = c / q0 and bias = c: every code is 0 and decodes to c exactly (mlx 0.32 agrees).
    for (const float c : {3.0f, -2.5f, 0.75f}) {
        const auto side = a.fit(std::vector<float>(8, c));
        EXPECT_EQ(side[1], c);
        EXPECT_LT(side[0], 0.0f);
        EXPECT_NEAR(side[0], -1e-7f, 1e-12f);
        EXPECT_EQ(a.encode(c, side), 0u);
        EXPECT_EQ(a.decode(0, side), c);
    }
    // Zeros (and values below 1e-7/2): q0 = 0, so bias = 0 and the floor scale stays.
    for (const float c : {0.0f, 1e-9f}) {
        const auto side = a.fit(std::vector<float>(8, c));
        EXPECT_EQ(side[0], -1e-7f);
        EXPECT_EQ(side[1], 0.0f);
        EXPECT_EQ(a.encode(c, side), 0u);
        EXPECT_EQ(a.decode(0, side), 0.0f);
    }
}

TEST(Affine, SignOfScaleFollowsTheLargerMagnitudeEdge) {
    const Affine a(3, 4);
    const auto pos = a.fit(std::vector<float>{-1.0f, 2.0f, 0.5f, 0.0f});  // |max| >= |min|: s < 0, bias = max
    EXPECT_LT(pos[0], 0.0f);
    EXPECT_EQ(pos[1], 2.0f);
    const auto neg = a.fit(std::vector<float>{-2.0f, 1.0f, 0.5f, 0.0f});  // |min| > |max|: s > 0, bias = min
    EXPECT_GT(neg[0], 0.0f);
    EXPECT_EQ(neg[1], -2.0f);
    const auto tie = a.fit(std::vector<float>{-2.0f, 2.0f, 0.5f, 0.0f});  // equal magnitudes: max is the edge
    EXPECT_LT(tie[0], 0.0f);
    EXPECT_EQ(tie[1], 2.0f);
}

// Over many random groups: the edge decodes exactly, 0 lands within a rounding of 0 when the
// group straddles it, codes stay in range, and in-range values are within half a step.
TEST(Affine, PropertiesOverRandomGroups) {
    optiq::Rng rng(5);
    for (int bits = 2; bits <= 8; ++bits) {
        const Affine a(bits, 64);
        for (int rep = 0; rep < 200; ++rep) {
            std::vector<float> g(64);
            const double spread = std::exp(rng.normal() * 3.0);
            const double shift = rng.uniform() < 0.3 ? rng.normal() * spread * 4.0 : 0.0;
            for (auto& v : g) v = static_cast<float>(rng.normal() * spread + shift);
            const auto side = a.fit(g);
            float lo = g[0], hi = g[0];
            for (const float v : g) lo = std::min(lo, v), hi = std::max(hi, v);
            const float edge = std::abs(lo) > std::abs(hi) ? lo : hi;
            ASSERT_EQ(side[1], edge);
            ASSERT_EQ(a.decode(a.encode(edge, side), side), edge);
            if (lo < 0.0f && hi > 0.0f) {
                const float z = a.decode(a.encode(0.0f, side), side);
                ASSERT_LE(std::abs(z), std::abs(edge) * 4e-7f) << "bits " << bits;
            }
            const float step = std::abs(side[0]);
            const float top = side[1] + side[0] * static_cast<float>(a.max_code());
            const float in_lo = std::min(side[1], top), in_hi = std::max(side[1], top);
            for (const float v : g) {
                const auto c = a.encode(v, side);
                ASSERT_LE(c, a.max_code());
                if (v >= in_lo && v <= in_hi) {
                    ASSERT_LE(std::abs(a.decode(c, side) - v), 0.5f * step + 4e-7f * std::abs(edge)) << "bits " << bits;
                }
            }
        }
    }
}

// MLX divides by the scale; multiplying by its reciprocal rounds differently for some inputs.
TEST(Affine, EncodeDividesByTheScale) {
    const Affine a(8, 32);
    optiq::Rng rng(77);
    int differing = 0;
    for (int rep = 0; rep < 20000 && differing < 20; ++rep) {
        std::vector<float> g(32);
        for (auto& v : g) v = static_cast<float>(rng.normal());
        const auto side = a.fit(g);
        const float inv = 1.0f / side[0];
        for (const float v : g) {
            const float by_div = std::rint((v - side[1]) / side[0]);
            const float by_mul = std::rint((v - side[1]) * inv);
            if (by_div != by_mul && by_div >= 0.0f && by_div <= 255.0f && by_mul >= 0.0f && by_mul <= 255.0f) {
                ++differing;
                EXPECT_EQ(a.encode(v, side), static_cast<std::uint32_t>(by_div));
            }
        }
    }
    EXPECT_GT(differing, 0) << "no input found where division and reciprocal multiplication differ";
}

TEST(Affine, DecodeIsMultiplyThenAddNotFused) {
    const Affine a(8, 32);
    optiq::Rng rng(3);
    int fused_differs = 0;
    for (int rep = 0; rep < 20000; ++rep) {
        const float s = static_cast<float>(rng.normal()), b = static_cast<float>(rng.normal());
        const auto q = static_cast<std::uint32_t>(rng.next_u64() >> 56);
        volatile float prod = s * static_cast<float>(q);  // volatile: the test's own reference is not contracted
        const float expect = prod + b;
        ASSERT_EQ(a.decode(q, {s, b}), expect);
        if (std::fma(s, static_cast<float>(q), b) != expect) ++fused_differs;
    }
    EXPECT_GT(fused_differs, 0);
}

TEST(Affine, ConfigurationAndMlxCompatibility) {
    EXPECT_THROW(Affine(0, 64), optiq::config_error);
    EXPECT_THROW(Affine(9, 64), optiq::config_error);
    EXPECT_THROW(Affine(4, 0), optiq::config_error);
    EXPECT_TRUE(Affine(4, 64).mlx_compatible());
    EXPECT_TRUE(Affine(1, 32).mlx_compatible());
    EXPECT_TRUE(Affine(3, 128).mlx_compatible());
    EXPECT_FALSE(Affine(7, 64).mlx_compatible());
    EXPECT_FALSE(Affine(4, 16).mlx_compatible());
    EXPECT_FALSE(Affine(4, 96).mlx_compatible());
    const Affine kv(4, 24);  // any group size is allowed outside MLX
    EXPECT_EQ(kv.group_size(96), 24u);
    EXPECT_EQ(kv.max_code(), 15u);
    EXPECT_EQ(Affine(8, 32).max_code(), 255u);
}

TEST(Affine, FitRejectsEmptyAndNonFiniteGroups) {
    const Affine a(4, 4);
    EXPECT_THROW((void)a.fit(std::vector<float>{}), optiq::shape_error);
    EXPECT_THROW((void)a.fit(std::vector<float>{1.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f, 2.0f}),
                 optiq::value_error);
    EXPECT_THROW((void)a.fit(std::vector<float>{1.0f, std::numeric_limits<float>::infinity(), 0.0f, 2.0f}),
                 optiq::value_error);
}

}  // namespace

#include "optiq/codebook/sign.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "optiq/codebook/lloyd_max.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"

namespace {

using optiq::Sign;

static_assert(optiq::FixedCodebook<Sign>);
static_assert(Sign::wants_unit_norm);

TEST(Sign, EncodesTheSignBit) {
    const Sign s(0.25f);
    EXPECT_EQ(s.bits(), 1);
    EXPECT_EQ(s.encode(-1.0f), 0u);
    EXPECT_EQ(s.encode(-std::numeric_limits<float>::denorm_min()), 0u);
    EXPECT_EQ(s.encode(-std::numeric_limits<float>::infinity()), 0u);
    EXPECT_EQ(s.encode(0.0f), 1u);
    EXPECT_EQ(s.encode(-0.0f), 1u);  // x < 0 is false for −0: zero codes as +m whatever its sign bit
    EXPECT_EQ(s.encode(std::numeric_limits<float>::denorm_min()), 1u);
    EXPECT_EQ(s.encode(3.0f), 1u);
    EXPECT_EQ(s.decode(0), -0.25f);
    EXPECT_EQ(s.decode(1), 0.25f);
    EXPECT_EQ(s.magnitude(), 0.25f);
    ASSERT_EQ(s.centroids().size(), 2u);
    EXPECT_EQ(s.centroids()[0], -0.25f);
    EXPECT_EQ(s.centroids()[1], 0.25f);
    for (std::uint32_t c = 0; c < 2; ++c) EXPECT_EQ(s.encode(s.decode(c)), c);
    EXPECT_EQ(s.group_size(64), 64u);
}

TEST(Sign, UnitVectorMagnitudeIsTheOneBitLloydMaxCentroid) {
    // Closed forms for small d: E|x_1| = 2/π on the circle, 1/2 on S² (x_1 uniform on [−1, 1]).
    EXPECT_FLOAT_EQ(Sign::for_unit_vectors(2).magnitude(), static_cast<float>(2.0 / std::numbers::pi));
    EXPECT_EQ(Sign::for_unit_vectors(3).magnitude(), 0.5f);
    for (std::size_t d : {4u, 17u, 64u, 128u, 1000u}) {
        const double dd = static_cast<double>(d);
        const double c = std::exp(std::lgamma(dd / 2) - std::lgamma((dd + 1) / 2)) / std::sqrt(std::numbers::pi);
        EXPECT_NEAR(Sign::for_unit_vectors(d).magnitude(), c, 1e-7 * c) << "d = " << d;
        const float lm = optiq::sphere_lloyd_max(d, 1).centroids()[1];
        EXPECT_NEAR(Sign::for_unit_vectors(d).magnitude(), lm, 2e-7 * lm) << "d = " << d;
    }
    // Gaussian form: sqrt(2/π)/sqrt(d), the N(0, 1/d) Lloyd-Max value (d = 128: 0.070523).
    EXPECT_NEAR(Sign::for_unit_vectors_gaussian(128).magnitude(), 0.0705237, 1e-7);
    EXPECT_NEAR(Sign::for_unit_vectors_gaussian(128).magnitude(), optiq::gaussian_lloyd_max(128, 1).centroids()[1],
                1e-8);
    // The two differ by O(1/d): Γ(n)/Γ(n + 1/2) = n^{-1/2}(1 + 1/(8n) + ...), 0.070662 vs 0.070524 at d = 128.
    EXPECT_NEAR(Sign::for_unit_vectors(128).magnitude(), 0.0706616, 1e-7);
}

TEST(Sign, MonteCarloDmseOnUnitVectorsIsTheExactOneBitValue) {
    // Coordinates of a uniform unit vector follow the sphere law, so coding them with
    // for_unit_vectors(d) must give D_mse = 1 − d m² = 0.36089 at d = 128 (reference-spec 2).
    const std::size_t d = 128, n = 4000;
    const Sign s = Sign::for_unit_vectors(d);
    optiq::Rng rng(99);
    std::vector<double> x(d);
    double sum = 0.0, sum2 = 0.0;
    for (std::size_t v = 0; v < n; ++v) {
        double norm = 0.0;
        for (auto& xi : x) {
            xi = rng.normal();
            norm += xi * xi;
        }
        norm = std::sqrt(norm);
        double err = 0.0;
        for (double xi : x) {
            const float y = static_cast<float>(xi / norm);
            const double e = double(y) - double(s.decode(s.encode(y)));
            err += e * e;
        }
        sum += err;
        sum2 += err * err;
    }
    const double mean = sum / n, se = std::sqrt((sum2 / n - mean * mean) / n);
    const double m = s.magnitude();
    EXPECT_NEAR(1.0 - double(d) * m * m, 0.36089, 0.5e-5);
    EXPECT_NEAR(mean, 0.36089, 4.0 * se);
    EXPECT_LT(se, 0.001);  // keeps the 4-sigma window within about 1% of the value
}

TEST(Sign, BadInputThrows) {
    EXPECT_THROW((void)Sign(0.0f), optiq::config_error);
    EXPECT_THROW((void)Sign(-1.0f), optiq::config_error);
    EXPECT_THROW((void)Sign(std::numeric_limits<float>::quiet_NaN()), optiq::config_error);
    EXPECT_THROW((void)Sign(std::numeric_limits<float>::infinity()), optiq::config_error);
    EXPECT_THROW((void)Sign::for_unit_vectors(0), optiq::config_error);
    EXPECT_THROW((void)Sign::for_unit_vectors(1), optiq::config_error);
    EXPECT_THROW((void)Sign::for_unit_vectors_gaussian(0), optiq::config_error);
    EXPECT_THROW((void)Sign(1.0f).decode(2), optiq::value_error);
}

}  // namespace

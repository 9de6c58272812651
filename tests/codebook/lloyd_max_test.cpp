#include "optiq/codebook/lloyd_max.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <numbers>
#include <span>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"

namespace {

using optiq::GaussianDensity;
using optiq::LaplaceDensity;
using optiq::LloydMax;
using optiq::SphereCoordinateDensity;

static_assert(optiq::FixedCodebook<LloydMax<GaussianDensity>>);
static_assert(optiq::FixedCodebook<LloydMax<SphereCoordinateDensity>>);
static_assert(optiq::FixedCodebook<LloydMax<LaplaceDensity>>);
static_assert(LloydMax<GaussianDensity>::wants_unit_norm && LloydMax<SphereCoordinateDensity>::wants_unit_norm);
static_assert(!LloydMax<LaplaceDensity>::wants_unit_norm);
static_assert(LloydMax<GaussianDensity>::side_floats == 0);

// reference-spec "Numbers to reproduce" 1: positive N(0,1) Lloyd-Max centroids (Max 1960).
const std::vector<std::vector<double>> kGaussCentroids = {
    {0.7979},
    {0.4528, 1.5104},
    {0.2451, 0.7560, 1.3439, 2.1519},
    {0.1284, 0.3880, 0.6568, 0.9423, 1.2562, 1.6180, 2.0690, 2.7326},
};
// Each value with the half-unit of its last printed digit.
const double kGaussMse[4] = {0.36338, 0.11748, 0.034548, 0.009501};
const double kGaussMseTol[4] = {0.5e-5, 0.5e-5, 0.5e-6, 0.5e-6};
// reference-spec 2: exact-Beta D_mse = d · C(f_d, b).
const double kSphere64[4] = {0.35839, 0.11453, 0.033391, 0.009132};
const double kSphere64Tol[4] = {0.5e-5, 0.5e-5, 0.5e-6, 0.5e-6};
const double kSphere128[4] = {0.36089, 0.11600, 0.033966, 0.009315};
const double kSphere128Tol[4] = {0.5e-5, 0.5e-5, 0.5e-6, 0.5e-6};

TEST(LloydMax, GaussianCentroidsMatchMax1960) {
    for (int b = 1; b <= 4; ++b) {
        const LloydMax cb(GaussianDensity(1.0), b);
        const auto c = cb.centroids();
        const std::size_t n = c.size(), half = n / 2;
        ASSERT_EQ(n, std::size_t{1} << b);
        for (std::size_t i = 0; i < half; ++i) {
            EXPECT_NEAR(c[half + i], kGaussCentroids[b - 1][i], 0.5e-4) << "b = " << b << ", i = " << i;
            EXPECT_NEAR(c[half - 1 - i], -kGaussCentroids[b - 1][i], 0.5e-4) << "b = " << b << ", i = " << i;
        }
        EXPECT_NEAR(cb.mse(), kGaussMse[b - 1], kGaussMseTol[b - 1]) << "b = " << b;
    }
    // b = 2: the boundary between the inner and outer level.
    EXPECT_NEAR(LloydMax(GaussianDensity(1.0), 2).boundaries()[2], 0.9816, 0.5e-4);
    // b = 1 in closed form: ±E|Z| = ±sqrt(2/π), MSE 1 − 2/π.
    EXPECT_NEAR(LloydMax(GaussianDensity(1.0), 1).centroids()[1], std::sqrt(2.0 / std::numbers::pi), 1e-7);
    EXPECT_NEAR(LloydMax(GaussianDensity(1.0), 1).mse(), 1.0 - 2.0 / std::numbers::pi, 1e-13);
}

TEST(LloydMax, GaussianTableScalesWithSigma) {
    for (int b = 1; b <= 8; ++b) {
        const LloydMax unit(GaussianDensity(1.0), b);
        const auto cb = optiq::gaussian_lloyd_max(128, b);
        const double s = 1.0 / std::sqrt(128.0);
        for (std::size_t i = 0; i < cb.centroids().size(); ++i)
            EXPECT_NEAR(cb.centroids()[i], s * unit.centroids()[i], 1e-7 * s * (1 + std::fabs(unit.centroids()[i])));
        EXPECT_NEAR(cb.mse() * 128.0, unit.mse(), 1e-14);
    }
}

TEST(LloydMax, ExactSphereLawMatchesReferenceDmse) {
    for (int b = 1; b <= 4; ++b) {
        EXPECT_NEAR(64.0 * optiq::sphere_lloyd_max(64, b).mse(), kSphere64[b - 1], kSphere64Tol[b - 1]) << "b = " << b;
        EXPECT_NEAR(128.0 * optiq::sphere_lloyd_max(128, b).mse(), kSphere128[b - 1], kSphere128Tol[b - 1])
            << "b = " << b;
    }
    // b = 1: c = E|x_1| = Γ(d/2) / (√π Γ((d+1)/2)) and D_mse = 1 − d c².
    for (std::size_t d : {2u, 5u, 64u, 128u}) {
        const double dd = static_cast<double>(d);
        const double c = std::exp(std::lgamma(dd / 2) - std::lgamma((dd + 1) / 2)) / std::sqrt(std::numbers::pi);
        const auto cb = optiq::sphere_lloyd_max(d, 1);
        EXPECT_NEAR(cb.centroids()[1], c, 2e-7 * c) << "d = " << d;
        EXPECT_NEAR(dd * cb.mse(), 1.0 - dd * c * c, 1e-12) << "d = " << d;
    }
}

TEST(LloydMax, SphereLawInDimensionThreeIsUniform) {
    // d = 3: x_1 is uniform on [−1, 1] (Archimedes), so the optimal quantizer is uniform with
    // centroids (2i + 1)/n − 1 and D_mse = 3 · (2/n)²/12 = 4^{−b}: the lower bound, attained.
    for (int b = 1; b <= 8; ++b) {
        const auto cb = optiq::sphere_lloyd_max(3, b);
        const std::size_t n = cb.levels();
        for (std::size_t i = 0; i < n; ++i)
            EXPECT_NEAR(cb.centroids()[i], (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(n) - 1.0, 1e-7);
        EXPECT_NEAR(3.0 * cb.mse(), std::pow(4.0, -b), 1e-12 * std::pow(4.0, -b)) << "b = " << b;
    }
}

TEST(LloydMax, LaplaceOneBitIsTheTruncatedMeanAbsoluteValue) {
    // On ±8s the b = 1 centroid is E[|x|] = s(1 − 9e^{-8})/(1 − e^{-8}) and the MSE is
    // E x² − c² with E x² = s²(2 − 82e^{-8})/(1 − e^{-8}).
    const double s = 0.05, e8 = std::exp(-8.0);
    const LloydMax cb(LaplaceDensity(s), 1);
    const double c = s * (1.0 - 9.0 * e8) / (1.0 - e8);
    EXPECT_NEAR(cb.centroids()[1], c, 1e-7 * c);
    EXPECT_NEAR(cb.mse(), s * s * (2.0 - 82.0 * e8) / (1.0 - e8) - c * c, 1e-14);
}

// Independent check of the Lloyd-Max fixed point for every b up to 8: each centroid must be the
// conditional mean of its cell (cells cut at the codebook's midpoint boundaries), integrated by
// composite Simpson on the pdf, and the MSE must match the same quadrature.
template <class D>
void expect_fixed_point(const LloydMax<D>& cb, double lo, double hi, int per_cell, const char* what) {
    const auto& f = cb.density();
    const auto c = cb.centroids();
    const auto t = cb.boundaries();
    const std::size_t n = c.size();
    double mse = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double a = i == 0 ? lo : t[i - 1], b = i + 1 == n ? hi : t[i];
        const double h = (b - a) / per_cell;
        double m0 = 0, m1 = 0, m2 = 0;
        for (int k = 0; k <= per_cell; ++k) {
            const double x = a + k * h;
            const double w = (k == 0 || k == per_cell) ? 1.0 : (k % 2 == 1 ? 4.0 : 2.0);
            const double p = w * f.pdf(x);
            m0 += p;
            m1 += p * x;
            m2 += p * (x - c[i]) * (x - c[i]);
        }
        const double mean = m1 / m0;
        // Centroids are floats: allow their rounding plus 1e-5 of the cell width.
        EXPECT_NEAR(c[i], mean, 1e-5 * (b - a) + 1e-7 * std::fabs(mean)) << what << " b = " << cb.bits() << " cell " << i;
        mse += m2 * h / 3.0;
    }
    EXPECT_NEAR(cb.mse(), mse, 1e-6 * mse) << what << " b = " << cb.bits();
}

TEST(LloydMax, SolutionsAreLloydMaxFixedPointsUpToEightBits) {
    for (int b = 1; b <= 8; ++b) {
        const LloydMax g(GaussianDensity(1.0), b);
        expect_fixed_point(g, -12.0, 12.0, 400, "N(0,1)");
        const auto s = optiq::sphere_lloyd_max(128, b);
        expect_fixed_point(s, -1.0, 1.0, 400, "sphere d=128");
        const LloydMax l(LaplaceDensity(1.0), b);
        expect_fixed_point(l, -8.0, 8.0, 400, "Laplace");
    }
}

TEST(LloydMax, SymmetricSortedAndBoundariesAreMidpoints) {
    for (int b = 1; b <= 8; ++b) {
        // The codebooks must outlive the spans into them.
        const auto sphere = optiq::sphere_lloyd_max(64, b);
        const auto gauss = optiq::gaussian_lloyd_max(64, b);
        const LloydMax laplace(LaplaceDensity(0.01), b);
        for (const auto c : {sphere.centroids(), gauss.centroids(), laplace.centroids()}) {
            const std::size_t n = c.size();
            ASSERT_EQ(n, std::size_t{1} << b);
            for (std::size_t i = 0; i < n; ++i) {
                if (i + 1 < n) {
                    EXPECT_LT(c[i], c[i + 1]) << "b = " << b << ", i = " << i;
                }
                EXPECT_NEAR(c[i], -c[n - 1 - i], 1e-6 * std::fabs(c[i])) << "b = " << b << ", i = " << i;
            }
        }
        const auto cb = optiq::sphere_lloyd_max(64, b);
        ASSERT_EQ(cb.boundaries().size(), cb.levels() - 1);
        for (std::size_t i = 0; i + 1 < cb.levels(); ++i)
            EXPECT_EQ(cb.boundaries()[i], 0.5 * (double(cb.centroids()[i]) + double(cb.centroids()[i + 1])));
    }
}

TEST(LloydMax, DmseRespectsTheoremBounds) {
    // Theorem 1 and 3: 4^{−b} <= D_mse <= (√3 π/2) 4^{−b} = 2.7207 · 4^{−b}.
    const double upper = std::sqrt(3.0) * std::numbers::pi / 2.0;
    EXPECT_NEAR(upper, 2.7207, 0.5e-4);
    for (int b = 1; b <= 8; ++b) {
        const double q = std::pow(4.0, -b);
        for (std::size_t d : {16u, 64u, 128u, 1024u}) {
            const double dm = static_cast<double>(d) * optiq::sphere_lloyd_max(d, b).mse();
            EXPECT_GE(dm, q) << "d = " << d << ", b = " << b;
            EXPECT_LE(dm, upper * q) << "d = " << d << ", b = " << b;
        }
        const double gm = LloydMax(GaussianDensity(1.0), b).mse();
        EXPECT_GE(gm, q) << "b = " << b;  // Shannon: D(R) = σ² 4^{−R} for a Gaussian source
        EXPECT_LE(gm, upper * q) << "b = " << b;
    }
    // The gap at b = 1 is 0.3634/0.25 ≈ 1.45 (reference-spec A, Theorem 3).
    EXPECT_NEAR(LloydMax(GaussianDensity(1.0), 1).mse() / 0.25, 1.4535, 1e-4);
}

TEST(LloydMax, DecodeThenEncodeIsIdentity) {
    for (int b = 1; b <= 8; ++b) {
        const auto s = optiq::sphere_lloyd_max(128, b);
        const LloydMax l(LaplaceDensity(0.02), b);
        for (std::uint32_t c = 0; c < s.levels(); ++c) {
            EXPECT_EQ(s.encode(s.decode(c)), c) << "b = " << b;
            EXPECT_EQ(l.encode(l.decode(c)), c) << "b = " << b;
        }
    }
}

TEST(LloydMax, EncodeIsTheNearestCentroid) {
    optiq::Rng rng(1234);
    for (int b = 1; b <= 8; ++b) {
        const auto cb = optiq::sphere_lloyd_max(128, b);
        const auto c = cb.centroids();
        for (int k = 0; k < 2000; ++k) {
            // Half from the coordinate law's scale, half uniform over a wide range (outside the
            // outermost centroids too).
            const float x = k % 2 == 0 ? static_cast<float>(rng.normal() / std::sqrt(128.0))
                                       : static_cast<float>(0.8 * (2.0 * rng.uniform() - 1.0));
            const std::uint32_t code = cb.encode(x);
            ASSERT_LT(code, c.size());
            const double best = std::fabs(double(x) - double(c[code]));
            for (std::size_t j = 0; j < c.size(); ++j) ASSERT_LE(best, std::fabs(double(x) - double(c[j]))) << x;
        }
        // Exactly on a boundary (a midpoint of two floats, if representable): either side is nearest.
        EXPECT_EQ(cb.encode(-std::numeric_limits<float>::infinity()), 0u);
        EXPECT_EQ(cb.encode(std::numeric_limits<float>::infinity()), cb.levels() - 1);
        EXPECT_EQ(cb.encode(c.front()), 0u);
        EXPECT_EQ(cb.encode(c.back()), cb.levels() - 1);
    }
}

TEST(LloydMax, EightBitTablesTakeFewNewtonSteps) {
    // Plain Lloyd sweeps need thousands of iterations at 256 levels; the Newton solver a handful.
    // Solved directly (not through the memo) so the count is this solve's.
    const auto t = optiq::detail::LloydMaxSolver<SphereCoordinateDensity>(SphereCoordinateDensity(96), 8).solve();
    EXPECT_LE(t.iterations, 20);
    EXPECT_EQ(t.centroids.size(), 256u);
    const auto g = optiq::detail::LloydMaxSolver<GaussianDensity>(GaussianDensity(1.0), 8).solve();
    EXPECT_LE(g.iterations, 20);
    // Panter-Dite: D → (√3π/2) 4^{−b} from below as b grows; at b = 8 within 1%.
    EXPECT_NEAR(g.mse / (std::sqrt(3.0) * std::numbers::pi / 2.0 * std::pow(4.0, -8)), 0.992, 0.001);
}

TEST(LloydMax, MemoReturnsTheSameTable) {
    const auto a = optiq::detail::lloyd_max_table(SphereCoordinateDensity(200), 5);
    const auto b = optiq::detail::lloyd_max_table(SphereCoordinateDensity(200), 5);
    EXPECT_EQ(a.get(), b.get());
    const auto c = optiq::detail::lloyd_max_table(SphereCoordinateDensity(201), 5);
    EXPECT_NE(a.get(), c.get());
    // Gaussian codebooks of every sigma share the N(0,1) table.
    const auto g1 = optiq::detail::lloyd_max_table(GaussianDensity(0.1).standardized(), 3);
    const auto g2 = optiq::detail::lloyd_max_table(GaussianDensity(7.0).standardized(), 3);
    EXPECT_EQ(g1.get(), g2.get());
}

TEST(LloydMax, BadBitsThrowConfigError) {
    for (int b : {-1, 0, 9, 16}) {
        EXPECT_THROW((void)optiq::sphere_lloyd_max(128, b), optiq::config_error) << b;
        EXPECT_THROW((void)LloydMax(GaussianDensity(1.0), b), optiq::config_error) << b;
        EXPECT_THROW((void)LloydMax(LaplaceDensity(1.0), b), optiq::config_error) << b;
    }
    EXPECT_THROW((void)optiq::sphere_lloyd_max(1, 2), optiq::config_error);
    const auto cb = optiq::sphere_lloyd_max(128, 2);
    EXPECT_THROW((void)cb.decode(4), optiq::value_error);
    EXPECT_NO_THROW((void)cb.decode(3));
}

TEST(LloydMax, GroupIsTheWholeVectorWithoutSideData) {
    const auto cb = optiq::sphere_lloyd_max(128, 3);
    EXPECT_EQ(cb.group_size(128), 128u);
    EXPECT_EQ(cb.group_size(96), 96u);
    EXPECT_EQ(cb.fit(std::span<const float>()).size(), 0u);
    EXPECT_EQ(cb.bits(), 3);
}

// encode() uses a grid over the boundaries instead of a binary search; it must give exactly
// lower_bound's answer, also right at, just below and just above every boundary and far outside.
TEST(LloydMax, GridEncodeEqualsLowerBoundEverywhere) {
    optiq::Rng rng(11);
    auto check = [&](const auto& cb, double spread) {
        const auto b = cb.boundaries();
        auto reference = [&](float x) {
            return static_cast<std::uint32_t>(std::lower_bound(b.begin(), b.end(), static_cast<double>(x)) - b.begin());
        };
        std::vector<float> xs{0.0f, -0.0f, 1e30f, -1e30f, std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
        for (const double t : b) {
            const float f = static_cast<float>(t);
            xs.insert(xs.end(), {f, std::nextafter(f, 1e30f), std::nextafter(f, -1e30f)});
        }
        for (int i = 0; i < 20000; ++i) xs.push_back(static_cast<float>(spread * rng.normal()));
        for (const float x : xs) ASSERT_EQ(cb.encode(x), reference(x)) << "bits " << cb.bits() << " x " << x;
    };
    for (int bits = 1; bits <= 8; ++bits) {
        check(optiq::LloydMax(optiq::SphereCoordinateDensity(128), bits), 1.0 / std::sqrt(128.0));
        check(optiq::LloydMax(optiq::GaussianDensity(1.0), bits), 1.0);
        check(optiq::LloydMax(optiq::LaplaceDensity(0.01), bits), 0.02);
    }
}

}  // namespace

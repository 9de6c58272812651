#include "optiq/codebook/densities.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <numbers>

#include "optiq/core/error.hpp"

namespace {

using optiq::GaussianDensity;
using optiq::LaplaceDensity;
using optiq::SphereCoordinateDensity;

static_assert(optiq::Density<GaussianDensity>);
static_assert(optiq::Density<SphereCoordinateDensity>);
static_assert(optiq::Density<LaplaceDensity>);
static_assert(GaussianDensity::for_unit_vectors && SphereCoordinateDensity::for_unit_vectors);
static_assert(!LaplaceDensity::for_unit_vectors);

// Composite Simpson on n (even) intervals: an integrator independent of the headers' Gauss-Legendre.
double simpson(double a, double b, int n, const std::function<double(double)>& g) {
    const double h = (b - a) / n;
    double s = g(a) + g(b);
    for (int i = 1; i < n; ++i) s += (i % 2 == 1 ? 4.0 : 2.0) * g(a + i * h);
    return s * h / 3.0;
}

TEST(Densities, GaussLegendreIsExactForPolynomialsOfDegree39) {
    const auto& rule = optiq::detail::gauss_legendre20();
    double w = 0.0;
    for (double wi : rule.w) w += wi;
    EXPECT_NEAR(w, 2.0, 1e-14);
    // ∫_{-1}^{1} x^k dx = 2/(k+1) for even k, 0 for odd k.
    for (int k = 0; k <= 39; ++k) {
        double s = 0.0;
        for (std::size_t i = 0; i < rule.x.size(); ++i) s += rule.w[i] * std::pow(rule.x[i], k);
        EXPECT_NEAR(s, k % 2 == 0 ? 2.0 / (k + 1) : 0.0, 1e-14) << "k = " << k;
    }
    // Degree 40 is not integrated exactly: the rule is 20-point, not more.
    double s40 = 0.0;
    for (std::size_t i = 0; i < rule.x.size(); ++i) s40 += rule.w[i] * std::pow(rule.x[i], 40);
    EXPECT_GT(std::fabs(s40 - 2.0 / 41.0), 1e-13);
}

TEST(Densities, SphereLawIsTheSymmetricBetaLaw) {
    // Lemma 1: (x+1)/2 ~ Beta(a, a), a = (d-1)/2, so f_d(x) = Beta_pdf((x+1)/2) / 2.
    for (std::size_t d : {2u, 3u, 5u, 64u, 128u, 1000u}) {
        const SphereCoordinateDensity f(d);
        const double a = 0.5 * (static_cast<double>(d) - 1.0);
        const double log_beta = 2.0 * std::lgamma(a) - std::lgamma(2.0 * a);
        for (double x : {-0.9, -0.3, -0.05, 0.0, 0.1, 0.42, 0.77}) {
            const double u = 0.5 * (x + 1.0);
            const double beta = std::exp((a - 1.0) * std::log(u) + (a - 1.0) * std::log(1.0 - u) - log_beta);
            EXPECT_NEAR(f.pdf(x), 0.5 * beta, 1e-12 * (1.0 + 0.5 * beta)) << "d = " << d << ", x = " << x;
        }
        EXPECT_EQ(f.pdf(1.5), 0.0);
        EXPECT_EQ(f.pdf(-1.0), 0.0);
    }
}

TEST(Densities, SphereLawHasUnitMassAndVarianceOneOverD) {
    // integrate() works in θ = asin x, so even d = 2 (the arcsine law, infinite at ±1) is exact.
    for (std::size_t d : {2u, 3u, 4u, 7u, 64u, 128u, 4096u}) {
        const SphereCoordinateDensity f(d);
        const double var = 1.0 / static_cast<double>(d);
        EXPECT_NEAR(f.integrate(-1.0, 1.0, [](double) { return 1.0; }), 1.0, 1e-12) << "d = " << d;
        EXPECT_NEAR(f.integrate(-1.0, 1.0, [](double x) { return x; }), 0.0, 1e-15) << "d = " << d;
        EXPECT_NEAR(f.integrate(-1.0, 1.0, [](double x) { return x * x; }), var, 1e-12 * var) << "d = " << d;
    }
}

TEST(Densities, SphereCellMomentsMatchIndependentQuadrature) {
    const SphereCoordinateDensity f(128);
    for (auto [a, b] : {std::pair{-1.0, -0.2}, std::pair{-0.1, 0.05}, std::pair{0.0, 1.0}, std::pair{0.2, 0.3}}) {
        const auto m = f.cell_moments(a, b);
        const double mass = simpson(a, b, 20000, [&](double x) { return f.pdf(x); });
        const double first = simpson(a, b, 20000, [&](double x) { return x * f.pdf(x); });
        EXPECT_NEAR(m.mass, mass, 1e-12) << a << ".." << b;
        EXPECT_NEAR(m.first, first, 1e-12) << a << ".." << b;
    }
}

TEST(Densities, GaussianCellMomentsAreTheClosedForms) {
    const GaussianDensity f(0.125);
    EXPECT_NEAR(f.pdf(0.0), 1.0 / (0.125 * std::sqrt(2.0 * std::numbers::pi)), 1e-12);
    // Published: Φ(1) − Φ(−1) = 0.682689492137; Φ(2) − Φ(1) = 0.135905121983.
    EXPECT_NEAR(f.cell_moments(-0.125, 0.125).mass, 0.682689492137, 1e-12);
    EXPECT_NEAR(f.cell_moments(0.125, 0.25).mass, 0.135905121983, 1e-12);
    EXPECT_NEAR(f.cell_moments(f.lo(), f.hi()).mass, 1.0, 1e-15);
    // Far tail, where Φ(b) − Φ(a) computed as a difference near 1 would lose every digit:
    // P(Z > 8) = 6.22096057427e-16.
    EXPECT_NEAR(f.cell_moments(8 * 0.125, f.hi()).mass / 6.22096057427e-16, 1.0, 1e-9);
    EXPECT_NEAR(f.cell_moments(f.lo(), -8 * 0.125).mass / 6.22096057427e-16, 1.0, 1e-9);
    for (auto [a, b] : {std::pair{-0.3, -0.1}, std::pair{-0.05, 0.2}, std::pair{0.1, 1.5}}) {
        const auto m = f.cell_moments(a, b);
        EXPECT_NEAR(m.mass, simpson(a, b, 4000, [&](double x) { return f.pdf(x); }), 1e-12);
        EXPECT_NEAR(m.first, simpson(a, b, 4000, [&](double x) { return x * f.pdf(x); }), 1e-12);
    }
    // The support loses nothing at double precision.
    EXPECT_LT(std::erfc(GaussianDensity::half_width / std::numbers::sqrt2), 1e-30);
}

TEST(Densities, LaplaceIsTruncatedAtEightScalesAndRenormalised) {
    const double s = 0.3;
    const LaplaceDensity f(s);
    const double kept = 1.0 - std::exp(-8.0);
    EXPECT_NEAR(f.pdf(0.0), 1.0 / (2.0 * s * kept), 1e-12);
    EXPECT_EQ(f.pdf(8.01 * s), 0.0);
    EXPECT_NEAR(f.lo(), -8 * s, 1e-15);
    EXPECT_NEAR(f.hi(), 8 * s, 1e-15);
    EXPECT_NEAR(f.cell_moments(f.lo(), f.hi()).mass, 1.0, 1e-15);
    // E|x| and E x² of the truncated law: s(1 − 9e^{-8})/(1 − e^{-8}) and s²(2 − 82e^{-8})/(1 − e^{-8}).
    const double e8 = std::exp(-8.0);
    EXPECT_NEAR(f.cell_moments(0.0, f.hi()).first * 2.0, s * (1.0 - 9.0 * e8) / kept, 1e-14);
    EXPECT_NEAR(f.integrate(f.lo(), f.hi(), [](double x) { return x * x; }), s * s * (2.0 - 82.0 * e8) / kept, 1e-14);
    for (auto [a_, b_] : {std::pair{-1.0, -0.2}, std::pair{-0.1, 0.25}, std::pair{0.5, 2.0}}) {
        const double a = a_, b = b_;  // clang < 16 cannot capture structured bindings in lambdas
        const auto m = f.cell_moments(a, b);
        // Split at the kink for the reference too.
        auto ref = [&](auto g) {
            if (a < 0 && b > 0) return simpson(a, 0.0, 4000, g) + simpson(0.0, b, 4000, g);
            return simpson(a, b, 4000, g);
        };
        EXPECT_NEAR(m.mass, ref([&](double x) { return f.pdf(x); }), 1e-12);
        EXPECT_NEAR(m.first, ref([&](double x) { return x * f.pdf(x); }), 1e-12);
    }
    // Cells reaching past the support are cut at ±8s.
    EXPECT_EQ(f.cell_moments(0.5, 3.0).mass, f.cell_moments(0.5, 8 * s).mass);
    EXPECT_EQ(f.cell_moments(-9.0, -0.5).first, f.cell_moments(-8 * s, -0.5).first);
}

TEST(Densities, ScaleFamiliesStandardizeToScaleOne) {
    EXPECT_EQ(GaussianDensity(0.2).standardized().sigma(), 1.0);
    EXPECT_EQ(GaussianDensity(0.2).scale(), 0.2);
    EXPECT_NEAR(GaussianDensity::for_dim(64).sigma(), 0.125, 1e-16);
    EXPECT_EQ(LaplaceDensity(3.0).standardized().s(), 1.0);
    EXPECT_EQ(SphereCoordinateDensity(77).standardized().dim(), 77u);
    EXPECT_EQ(SphereCoordinateDensity(77).shape(), 77.0);
    EXPECT_EQ(SphereCoordinateDensity(77).scale(), 1.0);
}

TEST(Densities, BadParametersThrowConfigError) {
    EXPECT_THROW((void)GaussianDensity(0.0), optiq::config_error);
    EXPECT_THROW((void)GaussianDensity(-1.0), optiq::config_error);
    EXPECT_THROW((void)GaussianDensity(std::nan("")), optiq::config_error);
    EXPECT_THROW((void)GaussianDensity(std::numeric_limits<double>::infinity()), optiq::config_error);
    EXPECT_THROW((void)GaussianDensity::for_dim(0), optiq::config_error);
    EXPECT_THROW((void)SphereCoordinateDensity(0), optiq::config_error);
    EXPECT_THROW((void)SphereCoordinateDensity(1), optiq::config_error);
    EXPECT_THROW((void)LaplaceDensity(0.0), optiq::config_error);
    EXPECT_THROW((void)LaplaceDensity(-2.0), optiq::config_error);
}

}  // namespace

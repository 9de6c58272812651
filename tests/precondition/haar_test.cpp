#include "optiq/precondition/haar.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "optiq/core/rng.hpp"
#include "optiq/precondition/concepts.hpp"

namespace {

static_assert(optiq::Preconditioner<optiq::HaarRotation>);

std::vector<float> random_vector(optiq::Rng& rng, std::size_t d) {
    std::vector<float> x(d);
    for (auto& v : x) v = static_cast<float>(rng.normal());
    return x;
}

double norm(const std::vector<float>& x) {
    double s = 0.0;
    for (const float v : x) s += static_cast<double>(v) * v;
    return std::sqrt(s);
}

// Q Qᵀ = I and Qᵀ Q = I (computed in double from the stored float matrix).
TEST(HaarRotation, MatrixIsOrthogonal) {
    for (const std::size_t d : {1u, 2u, 3u, 64u, 80u, 96u, 128u}) {
        const int seeds = d <= 3 ? 50 : 4;
        for (int seed = 0; seed < seeds; ++seed) {
            const optiq::HaarRotation h(d, static_cast<std::uint64_t>(seed));
            const auto q = h.matrix();
            ASSERT_EQ(q.size(), d * d);
            double worst = 0.0;
            for (std::size_t i = 0; i < d; ++i) {
                for (std::size_t j = 0; j < d; ++j) {
                    double rows = 0.0, cols = 0.0;
                    for (std::size_t k = 0; k < d; ++k) {
                        rows += static_cast<double>(q[i * d + k]) * q[j * d + k];
                        cols += static_cast<double>(q[k * d + i]) * q[k * d + j];
                    }
                    const double want = i == j ? 1.0 : 0.0;
                    worst = std::max({worst, std::abs(rows - want), std::abs(cols - want)});
                }
            }
            EXPECT_LT(worst, 1e-6) << "d=" << d << " seed=" << seed;
        }
    }
}

// Qᵀ G is upper triangular with a positive diagonal, where G is the N(0,1) matrix drawn row-major
// from Rng(seed): Q is the sign-fixed QR factor of exactly that matrix (the specification in haar.hpp).
TEST(HaarRotation, IsSignFixedQrOfTheSeededGaussianMatrix) {
    for (const std::size_t d : {2u, 5u, 16u, 33u}) {
        for (std::uint64_t seed : {0ull, 1ull, 42ull, 0xDEADBEEFull}) {
            const optiq::HaarRotation h(d, seed);
            const auto q = h.matrix();
            optiq::Rng rng(seed);
            std::vector<double> g(d * d);
            for (auto& v : g) v = rng.normal();
            for (std::size_t i = 0; i < d; ++i) {
                for (std::size_t j = 0; j < d; ++j) {
                    double r = 0.0;  // (Qᵀ G)_{ij}
                    for (std::size_t k = 0; k < d; ++k) r += static_cast<double>(q[k * d + i]) * g[k * d + j];
                    if (i > j) {
                        EXPECT_NEAR(r, 0.0, 1e-5) << "d=" << d << " seed=" << seed << " (" << i << "," << j << ")";
                    } else if (i == j) {
                        EXPECT_GT(r, 1e-3) << "d=" << d << " seed=" << seed << " R_" << i << i;
                    }
                }
            }
        }
    }
}

TEST(HaarRotation, PreservesNormsAndInverts) {
    optiq::Rng rng(123);
    for (const std::size_t d : {1u, 2u, 64u, 80u, 96u, 128u}) {
        for (int seed = 0; seed < 5; ++seed) {
            const optiq::HaarRotation h(d, static_cast<std::uint64_t>(seed) + 1000);
            for (int t = 0; t < 10; ++t) {
                const auto x = random_vector(rng, d);
                std::vector<float> y(d), z(d);
                h.forward(x, y);
                EXPECT_NEAR(norm(y), norm(x), 1e-5 * norm(x));
                h.inverse(y, z);
                for (std::size_t i = 0; i < d; ++i) EXPECT_NEAR(z[i], x[i], 2e-6 * norm(x)) << "d=" << d;
                // forward really is Q x with the published matrix.
                const auto q = h.matrix();
                for (std::size_t i = 0; i < d; ++i) {
                    double want = 0.0;
                    for (std::size_t k = 0; k < d; ++k) want += static_cast<double>(q[i * d + k]) * x[k];
                    EXPECT_NEAR(y[i], want, 1e-5 * norm(x));
                }
            }
        }
    }
}

TEST(HaarRotation, AliasingGivesTheSameResult) {
    optiq::Rng rng(5);
    const optiq::HaarRotation h(96, 9);
    const auto x = random_vector(rng, 96);
    std::vector<float> y(96), yi(96);
    h.forward(x, y);
    std::vector<float> a = x;
    h.forward(a, a);
    EXPECT_EQ(a, y);
    h.inverse(y, yi);
    h.inverse(a, a);
    EXPECT_EQ(a, yi);
}

TEST(HaarRotation, DeterministicPerSeedAndCheapCopies) {
    const optiq::HaarRotation a(64, 42), b(64, 42), c(64, 43);
    EXPECT_TRUE(std::equal(a.matrix().begin(), a.matrix().end(), b.matrix().begin()));
    EXPECT_FALSE(std::equal(a.matrix().begin(), a.matrix().end(), c.matrix().begin()));
    const optiq::HaarRotation copy = a;  // NOLINT(performance-unnecessary-copy-initialization)
    EXPECT_EQ(copy.matrix().data(), a.matrix().data());  // shared, not duplicated
    EXPECT_EQ(copy.seed(), 42u);
}

// Regression pins, computed with this implementation (g++ 12, x86-64) when it was written. They fix
// the draw order, the QR and the sign convention; a change here changes every stored rotation.
TEST(HaarRotation, GoldenMatrixD4Seed42) {
    const float want[16] = {-0.916968942f, 0.278178751f,  -0.0800390542f, -0.274551094f,
                            0.00902136695f, -0.115889713f, 0.904134691f,   -0.411130965f,
                            -0.363468975f, -0.875435114f, 0.0353920273f,  0.316624403f,
                            -0.16424638f,  0.377888173f,  0.418188542f,   0.809531987f};
    const optiq::HaarRotation h(4, 42);
    for (std::size_t i = 0; i < 16; ++i) EXPECT_NEAR(h.matrix()[i], want[i], 1e-6) << "entry " << i;
}

// Haar distribution (Mezzadri 2007): for Q Haar on O(d), E[tr Q] = 0 and E[(tr Q)^2] = 1
// (d >= 2), each entry satisfies E[Q_00^2] = 1/d, and y = Q x for a fixed unit x is uniform on
// the sphere, so a coordinate has mean 0, variance 1/d and fourth moment 3/(d(d+2))
// (reference-spec A, Lemma 1: (y+1)/2 ~ Beta((d-1)/2, (d-1)/2)). The QR without the sign fix
// gives E[tr Q] ≈ -2 and E[(tr Q)^2] ≈ 4.7 at d = 8, and a Gaussian coordinate would have
// fourth moment 3/d², 25% above the sphere's at d = 8. Tolerances are about 5 standard errors.
TEST(HaarRotation, IsHaarDistributed) {
    for (const std::size_t d : {8u, 32u}) {
        const int n = d == 8 ? 4000 : 2000;
        optiq::Rng xr(d);
        auto x = random_vector(xr, d);
        const double xn = norm(x);
        for (auto& v : x) v = static_cast<float>(v / xn);
        double tr1 = 0, tr2 = 0, q00 = 0, m1 = 0, m2 = 0, m4 = 0;
        std::vector<float> y(d);
        for (int s = 0; s < n; ++s) {
            const optiq::HaarRotation h(d, static_cast<std::uint64_t>(s) * 7919 + 1);
            const auto q = h.matrix();
            double tr = 0.0;
            for (std::size_t i = 0; i < d; ++i) tr += q[i * d + i];
            tr1 += tr;
            tr2 += tr * tr;
            q00 += static_cast<double>(q[0]) * q[0];
            h.forward(x, y);
            m1 += y[0];
            m2 += static_cast<double>(y[0]) * y[0];
            for (std::size_t i = 0; i < d; ++i) m4 += std::pow(static_cast<double>(y[i]), 4);
        }
        const double dd = static_cast<double>(d);
        EXPECT_NEAR(tr1 / n, 0.0, 5.0 / std::sqrt(n)) << "d=" << d;
        EXPECT_NEAR(tr2 / n, 1.0, 5.0 * std::sqrt(2.0 / n)) << "d=" << d;
        EXPECT_NEAR(q00 / n * dd, 1.0, 5.0 * std::sqrt(2.0 / n)) << "d=" << d;
        EXPECT_NEAR(m1 / n * std::sqrt(dd), 0.0, 5.0 / std::sqrt(n)) << "d=" << d;
        EXPECT_NEAR(m2 / n * dd, 1.0, 5.0 * std::sqrt(2.0 / n)) << "d=" << d;
        if (d == 8) {
            EXPECT_NEAR(m4 / (n * dd) * dd * (dd + 2) / 3.0, 1.0, 0.08);
        }
    }
}

TEST(HaarRotation, RejectsBadShapes) {
    EXPECT_THROW(optiq::HaarRotation(0, 1), optiq::shape_error);
    EXPECT_THROW(optiq::HaarRotation(optiq::HaarRotation::max_dim + 1, 1), optiq::shape_error);
    const optiq::HaarRotation h(8, 1);
    std::vector<float> a(8), b(7), c(9);
    EXPECT_THROW(h.forward(a, b), optiq::shape_error);
    EXPECT_THROW(h.forward(c, a), optiq::shape_error);
    EXPECT_THROW(h.inverse(a, c), optiq::shape_error);
    EXPECT_THROW(h.inverse(b, a), optiq::shape_error);
}

}  // namespace

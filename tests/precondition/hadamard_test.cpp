#include "optiq/precondition/hadamard.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "optiq/core/rng.hpp"
#include "optiq/precondition/concepts.hpp"

namespace {

static_assert(optiq::Preconditioner<optiq::RandomizedHadamard>);

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

// Column j of the dense transform: forward(e_j).
std::vector<double> dense(const optiq::RandomizedHadamard& h) {
    const std::size_t d = h.dim();
    std::vector<double> m(d * d);
    std::vector<float> e(d), y(d);
    for (std::size_t j = 0; j < d; ++j) {
        std::fill(e.begin(), e.end(), 0.0f);
        e[j] = 1.0f;
        h.forward(e, y);
        for (std::size_t i = 0; i < d; ++i) m[i * d + j] = y[i];
    }
    return m;
}

TEST(RandomizedHadamard, SignsAreTheRngSignStream) {
    for (std::uint64_t seed : {0ull, 42ull, 977ull}) {
        const optiq::RandomizedHadamard h(100, seed);
        optiq::Rng rng(seed);
        for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(h.signs()[i], rng.sign()) << i;
    }
}

// For a power of two n, Π[i][j] = (-1)^popcount(i & j) · s_j / √n (Sylvester ordering).
TEST(RandomizedHadamard, MatchesExplicitSylvesterMatrix) {
    for (const std::size_t n : {1u, 2u, 4u, 8u, 64u, 128u}) {
        const optiq::RandomizedHadamard h(n, 3 + n);
        ASSERT_EQ(h.blocks().size(), 1u);
        const auto m = dense(h);
        const double inv = 1.0 / std::sqrt(static_cast<double>(n));
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                const double sign = (std::popcount(i & j) % 2 == 0) ? 1.0 : -1.0;
                EXPECT_NEAR(m[i * n + j], sign * h.signs()[j] * inv, 1e-7) << "n=" << n << " (" << i << "," << j << ")";
            }
        }
    }
}

// Non-powers of two: descending power-of-two blocks, each its own Sylvester transform.
TEST(RandomizedHadamard, BlockDiagonalForOtherDims) {
    struct Case {
        std::size_t d;
        std::vector<std::size_t> blocks;
    };
    const std::vector<Case> cases = {{96, {64, 32}}, {80, {64, 16}}, {7, {4, 2, 1}}, {3, {2, 1}}, {100, {64, 32, 4}}};
    for (const auto& c : cases) {
        const optiq::RandomizedHadamard h(c.d, 11);
        ASSERT_EQ(std::vector<std::size_t>(h.blocks().begin(), h.blocks().end()), c.blocks) << "d=" << c.d;
        const auto m = dense(h);
        std::size_t off = 0;
        for (const std::size_t n : c.blocks) {
            for (std::size_t i = 0; i < c.d; ++i) {
                for (std::size_t j = off; j < off + n; ++j) {
                    const bool inside = i >= off && i < off + n;
                    double want = 0.0;
                    if (inside) {
                        const double sign = (std::popcount((i - off) & (j - off)) % 2 == 0) ? 1.0 : -1.0;
                        want = sign * h.signs()[j] / std::sqrt(static_cast<double>(n));
                    }
                    EXPECT_NEAR(m[i * c.d + j], want, 1e-7) << "d=" << c.d << " (" << i << "," << j << ")";
                }
            }
            off += n;
        }
    }
}

TEST(RandomizedHadamard, PreservesNormsAndInverts) {
    optiq::Rng rng(99);
    for (const std::size_t d : {1u, 2u, 3u, 64u, 80u, 96u, 128u, 4096u}) {
        for (int seed = 0; seed < 10; ++seed) {
            const optiq::RandomizedHadamard h(d, static_cast<std::uint64_t>(seed));
            const auto x = random_vector(rng, d);
            std::vector<float> y(d), z(d);
            h.forward(x, y);
            EXPECT_NEAR(norm(y), norm(x), 1e-6 * norm(x)) << "d=" << d;
            h.inverse(y, z);
            for (std::size_t i = 0; i < d; ++i) EXPECT_NEAR(z[i], x[i], 1e-6 * norm(x)) << "d=" << d;
            // inverse is the transpose: <forward(x), w> == <x, inverse(w)>.
            const auto w = random_vector(rng, d);
            std::vector<float> iw(d);
            h.inverse(w, iw);
            double a = 0.0, b = 0.0;
            for (std::size_t i = 0; i < d; ++i) {
                a += static_cast<double>(y[i]) * w[i];
                b += static_cast<double>(x[i]) * iw[i];
            }
            EXPECT_NEAR(a, b, 1e-5 * norm(x) * norm(w)) << "d=" << d;
        }
    }
}

TEST(RandomizedHadamard, AliasingGivesTheSameResult) {
    optiq::Rng rng(8);
    for (const std::size_t d : {96u, 128u}) {
        const optiq::RandomizedHadamard h(d, 4);
        const auto x = random_vector(rng, d);
        std::vector<float> y(d), yi(d);
        h.forward(x, y);
        std::vector<float> a = x;
        h.forward(a, a);
        EXPECT_EQ(a, y);
        h.inverse(y, yi);
        h.inverse(a, a);
        EXPECT_EQ(a, yi);
    }
}

TEST(RandomizedHadamard, DeterministicPerSeed) {
    const optiq::RandomizedHadamard a(128, 42), b(128, 42), c(128, 43);
    EXPECT_TRUE(std::equal(a.signs().begin(), a.signs().end(), b.signs().begin()));
    EXPECT_FALSE(std::equal(a.signs().begin(), a.signs().end(), c.signs().begin()));
}

// Regression pins, computed when this was written. The transform only adds, subtracts and
// multiplies by ±1 and one correctly rounded 1/√8, so the output is pinned bit for bit.
TEST(RandomizedHadamard, GoldenD8Seed42) {
    const optiq::RandomizedHadamard h(8, 42);
    const float signs[8] = {1, 1, -1, -1, -1, -1, -1, -1};
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(h.signs()[i], signs[i]) << i;
    const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
    std::vector<float> y(8);
    h.forward(x, y);
    const std::vector<float> want = {-10.6066017f, 0.707106769f, 4.94974756f, -0.707106769f,
                                     7.7781744f,   -0.707106769f, 2.12132025f, -0.707106769f};
    EXPECT_EQ(y, want);
}

TEST(RandomizedHadamard, RejectsBadShapes) {
    EXPECT_THROW(optiq::RandomizedHadamard(0, 1), optiq::shape_error);
    const optiq::RandomizedHadamard h(8, 1);
    std::vector<float> a(8), b(7), c(9);
    EXPECT_THROW(h.forward(a, b), optiq::shape_error);
    EXPECT_THROW(h.forward(c, a), optiq::shape_error);
    EXPECT_THROW(h.inverse(a, c), optiq::shape_error);
    EXPECT_THROW(h.inverse(b, a), optiq::shape_error);
}

}  // namespace

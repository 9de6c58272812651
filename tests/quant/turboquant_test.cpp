#include "optiq/quant/evaluate.hpp"
#include "optiq/quant/methods/turboquant.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <tuple>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/haar.hpp"
#include "optiq/precondition/hadamard.hpp"

namespace {

using optiq::HaarRotation;
using optiq::TurboQuantMSE;
using optiq::TurboQuantProd;

constexpr std::size_t kDim = 128;
// reference-spec "Numbers to reproduce" 2: exact-Beta D_mse at d = 128, b = 1..4.
constexpr double kDmse128[5] = {1.0, 0.36089, 0.11600, 0.033966, 0.009315};  // [0]: no bits, D = ‖x‖² = 1

std::vector<float> unit_vectors(std::size_t n, std::size_t d, std::uint64_t seed) {
    return optiq::random_unit_vectors(n, d, seed);
}

const std::vector<float>& shared_unit_vectors() {
    static const std::vector<float> x = unit_vectors(20000, kDim, 2024);
    return x;
}

template <class Q>
double mean_squared_error(const Q& q, std::span<const float> x) {
    const auto enc = q.encode(x);
    std::vector<float> y(x.size());
    q.decode(enc, y);
    double s = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) s += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    return s / static_cast<double>(x.size() / q.dim());
}

double dot(std::span<const float> a, std::span<const float> b) {
    double s = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
    return s;
}

// <q, decode(x_i)> against the estimator, for random non-unit vectors and a random query.
template <class Q>
void expect_inner_products_match_decode(const Q& q, std::uint64_t seed) {
    const std::size_t d = q.dim(), n = 50;
    optiq::Rng rng(seed);
    std::vector<float> x(n * d), query(d);
    for (auto& v : x) v = static_cast<float>(3.0 * rng.normal());
    for (auto& v : query) v = static_cast<float>(rng.normal());
    const auto enc = q.encode(x);
    std::vector<float> y(n * d), ip(n);
    q.decode(enc, y);
    q.inner_products(q.prepare_query(query), enc, ip);
    const double qn = std::sqrt(dot(query, query));
    for (std::size_t i = 0; i < n; ++i) {
        const auto yi = std::span<const float>(y).subspan(i * d, d);
        const double want = dot(query, yi);
        // Float accumulation over d terms: a few 1e-6 of ‖q‖‖x̃‖.
        EXPECT_NEAR(ip[i], want, 1e-5 * qn * std::sqrt(dot(yi, yi))) << q.name() << " vector " << i;
    }
}

// ---- TurboQuant-MSE -------------------------------------------------------------------------

static_assert(optiq::VectorQuantizer<TurboQuantMSE<3>>);
static_assert(optiq::VectorQuantizer<TurboQuantMSE<optiq::dynamic_bits, HaarRotation>>);
static_assert(optiq::VectorQuantizer<TurboQuantMSE<2, optiq::RandomizedHadamard, optiq::GaussianDensity>>);
static_assert(std::same_as<TurboQuantMSE<4>::base_type,
                           optiq::Quantizer<optiq::LloydMax<optiq::SphereCoordinateDensity>, optiq::RandomizedHadamard,
                                            optiq::MlxStream<4>>>);

TEST(TurboQuantMSE, DmseOf20kUnitVectorsMatchesExactBetaLawWithHadamard) {
    // Uniform unit vectors stay uniform under any fixed rotation, so every rotated coordinate
    // follows Lemma 1's law exactly and E‖x − x̃‖² = d·C(f_d, b). Per-vector errors have a
    // coefficient of variation of about 0.1, so 20k vectors pin the mean to ~0.1%: 2% is wide.
    const auto& x = shared_unit_vectors();
    for (int b = 1; b <= 4; ++b) {
        const auto q = optiq::make_turboquant_mse(kDim, b, 42);
        const double dm = mean_squared_error(q, x);
        EXPECT_NEAR(dm, kDmse128[b], 0.02 * kDmse128[b]) << "b = " << b;
        // And tighter than the 2% the brief asks: 5 standard errors.
        EXPECT_NEAR(dm, kDmse128[b], 0.005 * kDmse128[b]) << "b = " << b;
    }
}

TEST(TurboQuantMSE, DmseMatchesExactBetaLawWithHaarRotation) {
    // The dense d x d rotation is 10x slower than Hadamard, so 1k vectors (standard error ~0.35%).
    const auto x = std::span<const float>(shared_unit_vectors()).subspan(0, 1000 * kDim);
    for (int b = 1; b <= 4; ++b) {
        const TurboQuantMSE<optiq::dynamic_bits, HaarRotation> q(kDim, b, 7);
        EXPECT_NEAR(mean_squared_error(q, x), kDmse128[b], 0.02 * kDmse128[b]) << "b = " << b;
    }
}

// d ∫ f_d(y) (y − ŷ(y))² dy for a codebook applied to Lemma 1's law, by composite Simpson.
template <class C>
double sphere_law_dmse(const C& cb, std::size_t d) {
    const optiq::SphereCoordinateDensity f(d);
    const int n = 100000;
    const double h = 2.0 / n;
    double s = 0;
    for (int k = 0; k <= n; ++k) {
        const double y = -1.0 + k * h;
        const double w = (k == 0 || k == n) ? 1.0 : (k % 2 == 1 ? 4.0 : 2.0);
        const double e = y - cb.centroids()[cb.encode(static_cast<float>(y))];
        s += w * f.pdf(y) * e * e;
    }
    return static_cast<double>(d) * s * h / 3.0;
}

TEST(TurboQuantMSE, GaussianCodebookIsNearlyAsGoodOnUnitVectors) {
    // N(0, 1/d) centroids are within 0.2% of the exact law's at d = 128, and the error is
    // quadratic in the centroid offset, so on unit vectors the Gaussian codebook's D_mse is within
    // 1% of the optimum (not the Gaussian-source values 0.36338, 0.11748, ...: the data are unit
    // vectors) and, the exact-law codebook being optimal, never below it.
    const auto x = std::span<const float>(shared_unit_vectors()).subspan(0, 2000 * kDim);
    for (int b = 1; b <= 4; ++b) {
        const TurboQuantMSE<optiq::dynamic_bits, optiq::RandomizedHadamard, optiq::GaussianDensity> g(kDim, b, 42);
        const double pg = sphere_law_dmse(g.codebook(), kDim);
        const double ps = sphere_law_dmse(optiq::sphere_lloyd_max(kDim, b), kDim);
        EXPECT_NEAR(ps, kDmse128[b], 1e-4 * kDmse128[b]) << "b = " << b;
        EXPECT_GE(pg, ps) << "b = " << b;
        EXPECT_LT(pg, 1.01 * ps) << "b = " << b;
        EXPECT_NEAR(mean_squared_error(g, x), pg, 0.02 * pg) << "b = " << b;
    }
    EXPECT_EQ((TurboQuantMSE<4, optiq::RandomizedHadamard, optiq::GaussianDensity>(kDim, 1).name()), "tq_mse:4:gauss");
    EXPECT_EQ((TurboQuantMSE<4, HaarRotation>(kDim, 1).name()), "tq_mse:4:haar");
    EXPECT_EQ(TurboQuantMSE<4>(kDim, 1).name(), "tq_mse:4");
}

template <int B>
void expect_static_equals_dynamic(std::span<const float> x) {
    const TurboQuantMSE<B> s(kDim, 99);
    const TurboQuantMSE<> r(kDim, B, 99);
    EXPECT_EQ(s.bits(), B);
    const auto a = s.encode(x), b = r.encode(x);
    EXPECT_EQ(a.words, b.words) << "b = " << B;
    EXPECT_EQ(a.side, b.side) << "b = " << B;
    EXPECT_EQ(s.name(), r.name());
}

TEST(TurboQuantMSE, CompileTimeAndRunTimeBitsGiveIdenticalCodes) {
    const auto x = std::span<const float>(shared_unit_vectors()).subspan(0, 64 * kDim);
    [&]<int... B>(std::integer_sequence<int, B...>) { (expect_static_equals_dynamic<B + 1>(x), ...); }(
        std::make_integer_sequence<int, 8>{});
}

TEST(TurboQuantMSE, WordsAreNearestCentroidCodesOfTheRotatedUnitVectorInMlxLayout) {
    const std::size_t d = 96;  // a non-power-of-two dimension: Hadamard blocks 64 + 32
    optiq::Rng rng(5);
    std::vector<float> x(d);
    for (auto& v : x) v = static_cast<float>(2.5 * rng.normal());
    for (int b = 1; b <= 8; ++b) {
        const auto q = optiq::make_turboquant_mse(d, b, 11);
        const auto enc = q.encode(x);
        ASSERT_EQ(enc.words_per_vector, (d * static_cast<std::size_t>(b) + 31) / 32);
        ASSERT_EQ(enc.side_per_vector, 1u);
        const float norm = static_cast<float>(std::sqrt(dot(x, x)));
        EXPECT_EQ(enc.side[0], optiq::round_to_f16(norm));
        // Rotate x/‖x‖ with an independently built rotation of the same seed and code each
        // coordinate by brute-force nearest centroid.
        std::vector<float> y(d);
        for (std::size_t i = 0; i < d; ++i) y[i] = x[i] / norm;
        optiq::RandomizedHadamard(d, 11).forward(y, y);
        const auto cb = optiq::sphere_lloyd_max(d, b);
        std::vector<std::uint8_t> codes(d);
        for (std::size_t i = 0; i < d; ++i) {
            std::size_t best = 0;
            for (std::size_t c = 1; c < cb.levels(); ++c)
                if (std::fabs(double(y[i]) - cb.centroids()[c]) < std::fabs(double(y[i]) - cb.centroids()[best])) best = c;
            codes[i] = static_cast<std::uint8_t>(best);
        }
        std::vector<std::uint32_t> words(enc.words_per_vector);
        optiq::MlxStream<>(b).pack(codes, words);
        // y here and inside the quantizer may differ in the last ulp (x·(1/‖x‖) vs x/‖x‖), which
        // can only move a coordinate that sits on a cell boundary: allow none at this seed.
        EXPECT_EQ(enc.words, words) << "b = " << b;
        EXPECT_DOUBLE_EQ(enc.bits_per_coord(), b + 16.0 / d);
    }
}

TEST(TurboQuantMSE, InnerProductsEqualDotWithDecodedVectors) {
    for (int b = 1; b <= 8; ++b) {
        expect_inner_products_match_decode(optiq::make_turboquant_mse(kDim, b, 3), 100 + b);
        expect_inner_products_match_decode(TurboQuantMSE<optiq::dynamic_bits, HaarRotation>(kDim, b, 3), 200 + b);
    }
}

TEST(TurboQuantMSE, BadInputThrowsTheRightError) {
    const auto q = optiq::make_turboquant_mse(64, 3, 1);
    std::vector<float> x(64, 0.5f);
    EXPECT_THROW((void)q.encode(std::span<const float>(x).subspan(0, 63)), optiq::shape_error);
    EXPECT_THROW((void)q.encode(std::span<const float>()), optiq::value_error);
    x[10] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_THROW((void)q.encode(x), optiq::value_error);
    x[10] = std::numeric_limits<float>::infinity();
    EXPECT_THROW((void)q.encode(x), optiq::value_error);
    x[10] = 0.5f;
    const auto enc = q.encode(x);
    std::vector<float> out(63);
    EXPECT_THROW(q.decode(enc, out), optiq::shape_error);
    const auto other = optiq::make_turboquant_mse(64, 4, 1).encode(x);
    out.resize(64);
    EXPECT_THROW(q.decode(other, out), optiq::shape_error);  // 4-bit words in a 3-bit quantizer
    std::vector<float> two(128, 1.0f);
    EXPECT_THROW((void)q.prepare_query(two), optiq::shape_error);
    for (int b : {0, 9, -3}) EXPECT_THROW((void)optiq::make_turboquant_mse(64, b, 1), optiq::config_error) << b;
    EXPECT_THROW((void)(TurboQuantMSE<4>(optiq::RandomizedHadamard(64, 1), 3)), optiq::config_error);
    EXPECT_THROW((void)optiq::make_turboquant_mse(0, 4, 1), optiq::shape_error);
}

// ---- TurboQuant-Prod ------------------------------------------------------------------------

static_assert(optiq::VectorQuantizer<TurboQuantProd<>>);
static_assert(optiq::VectorQuantizer<TurboQuantProd<HaarRotation, optiq::GaussianDensity>>);

struct ProdStats {
    double bias = 0, bias_se = 0;       ///< mean error over (x, q) pairs, its standard error
    double d_var = 0;                   ///< d · Var(error) over those pairs
    double d_var_avg = 0;               ///< the same averaged exactly over q: mean ‖x̃ − x‖²
    double gamma2 = 0;                  ///< mean γ² = ‖r‖² (the realised D_mse(b − 1))
    double self_bias = 0, self_se = 0;  ///< mean ⟨x, x̃⟩ − ‖x‖² (queries equal to the keys)
};

const std::vector<float>& shared_queries() {
    static const std::vector<float> q = unit_vectors(4800, kDim, 77);  // the most any test below pairs
    return q;
}

// Mean of per-sketch means and its standard error from their spread: a fixed sketch S adds a
// shared offset to every vector it codes (e.g. ⟨x, x̃⟩ depends on S's row norms), so only the
// between-sketch spread measures the estimator's real uncertainty.
std::pair<double, double> mean_and_se(const std::vector<double>& per_sketch) {
    const double k = static_cast<double>(per_sketch.size());
    double m = 0, v = 0;
    for (double x : per_sketch) m += x;
    m /= k;
    for (double x : per_sketch) v += (x - m) * (x - m);
    return {m, std::sqrt(v / (k - 1) / k)};
}

// Statistics of TurboQuant-Prod's inner-product error on unit vectors, pooled over `sketches`
// independent quantizers (seeds) of n vectors each, one random unit query per vector. The error
// ⟨q, x̃⟩ − ⟨q, x⟩ is computed from decode(), which equals the estimator to float rounding
// (InnerProductsEqualDotWithDecodedVectors) and is cheaper than a query preparation per pair.
// For q uniform on the sphere E_q⟨q, w⟩² = ‖w‖²/d exactly, so mean ‖x̃ − x‖² is d·Var with the
// query's sampling noise integrated out: d_var_avg.
ProdStats prod_stats(int bits, std::size_t sketches, std::size_t n, std::size_t rows = 0) {
    const std::size_t d = kDim;
    const auto& pool = shared_unit_vectors();
    const auto& queries = shared_queries();
    double s2 = 0, w2 = 0, g2 = 0;
    std::vector<double> bias(sketches, 0.0), self(sketches, 0.0);
    std::vector<float> y(n * d);
    for (std::size_t k = 0; k < sketches; ++k) {
        const TurboQuantProd<> p(d, bits, 1000 + k, rows);
        const auto x = std::span<const float>(pool).subspan(k * n * d, n * d);
        const auto enc = p.encode(x);
        p.decode(enc, y);
        for (std::size_t i = 0; i < n; ++i) {
            const auto xi = x.subspan(i * d, d);
            const auto yi = std::span<const float>(y).subspan(i * d, d);
            const auto qi = std::span<const float>(queries).subspan((k * n + i) * d, d);
            g2 += double(enc.side_of(i)[1]) * enc.side_of(i)[1];
            double e = 0, w = 0, c = 0;
            for (std::size_t t = 0; t < d; ++t) {
                const double diff = double(yi[t]) - xi[t];
                e += qi[t] * diff;
                w += diff * diff;
                c += xi[t] * diff;
            }
            bias[k] += e / static_cast<double>(n);
            self[k] += c / static_cast<double>(n);
            s2 += e * e;
            w2 += w;
        }
    }
    const double m = static_cast<double>(sketches * n);
    ProdStats st;
    std::tie(st.bias, st.bias_se) = mean_and_se(bias);
    std::tie(st.self_bias, st.self_se) = mean_and_se(self);
    st.d_var = static_cast<double>(d) * (s2 / m - st.bias * st.bias);
    st.d_var_avg = w2 / m;
    st.gamma2 = g2 / m;
    return st;
}

// The 16 x 300 statistics per bit width, computed once and shared by the tests below.
const ProdStats& default_prod_stats(int bits) {
    static ProdStats cache[5];
    static bool done[5] = {};
    if (!done[bits]) {
        cache[bits] = prod_stats(bits, 16, 300);
        done[bits] = true;
    }
    return cache[bits];
}

TEST(TurboQuantProd, InnerProductsAreUnbiasedWithTheorem2Variance) {
    // Reference-spec numbers 4: d·D_prod ≈ (π/2)·D_mse(b − 1) = 1.571, 0.571, 0.185, 0.0543 for
    // b = 1..4 (0.571 and 0.0543 from the Gaussian D_mse values). Exactly, for S Gaussian and q
    // uniform on the sphere, d·Var = (d/m)(π/2 − 1/d)·E‖r‖²; with the exact-law D_mse(b − 1) that
    // is 1.5630, 0.5641, 0.1813, 0.0531, which the spec's rounded values exceed by up to 2.3%.
    // Sampling (4800 vectors over 16 sketches, one query each; the m x d sketch products make
    // these the slowest vectors here, so fewer than for TurboQuant-MSE): the pairwise d·Var has a
    // relative standard error of sqrt(2/4800) = 2%; d_var_avg has no query noise and varies ~0.2%
    // with the vectors; one sketch's own fluctuation (~1.1%, measured over seeds) averages to 0.3%
    // over 16. Tolerances: about 4 sigma — 8% for the pairwise value, 2% for d_var_avg, and
    // d_var_avg within 2% + 2.3% of the spec's rounded numbers.
    const double spec[5] = {0, 1.571, 0.571, 0.185, 0.0543};
    const double half_pi = std::numbers::pi / 2.0, d = static_cast<double>(kDim);
    for (int b = 1; b <= 4; ++b) {
        const ProdStats& st = default_prod_stats(b);
        EXPECT_LT(std::fabs(st.bias), 3.0 * st.bias_se) << "b = " << b << ": bias " << st.bias;
        // The realised residual energy is the (b−1)-bit D_mse (b = 1: the whole unit vector).
        EXPECT_NEAR(st.gamma2, kDmse128[b - 1], 0.01 * kDmse128[b - 1]) << "b = " << b;
        const double exact = (half_pi - 1.0 / d) * st.gamma2;
        EXPECT_NEAR(st.d_var_avg, exact, 0.02 * exact) << "b = " << b;
        EXPECT_NEAR(st.d_var, exact, 0.08 * exact) << "b = " << b;
        EXPECT_NEAR(st.d_var_avg, spec[b], 0.043 * spec[b]) << "b = " << b;
        // Theorem 2's bound: D_prod ≤ (√3 π²/d) 4^{−b} for unit q.
        EXPECT_LE(st.d_var_avg, std::sqrt(3.0) * std::numbers::pi * std::numbers::pi * std::pow(4.0, -b)) << "b = " << b;
    }
}

TEST(TurboQuantProd, UnbiasedWhereTurboQuantMseShrinks) {
    // With queries equal to the keys, E⟨x, x̃_mse⟩ = E‖x̃_mse‖² = 1 − D_mse(b): TurboQuant-MSE is
    // biased by −D_mse (reference-spec A, "MSE bias"), TurboQuant-Prod is not.
    for (int b = 1; b <= 4; ++b) {
        const ProdStats& st = default_prod_stats(b);
        EXPECT_LT(std::fabs(st.self_bias), 3.0 * st.self_se) << "b = " << b << ": " << st.self_bias;
        const auto x = std::span<const float>(shared_unit_vectors()).subspan(0, 2000 * kDim);
        const auto m = optiq::make_turboquant_mse(kDim, b, 5);
        std::vector<float> y(x.size());
        m.decode(m.encode(x), y);
        double bias = 0;
        for (std::size_t i = 0; i < 2000; ++i)
            bias += dot(x.subspan(i * kDim, kDim), std::span<const float>(y).subspan(i * kDim, kDim)) - 1.0;
        bias /= 2000;
        EXPECT_NEAR(bias, -kDmse128[b], 0.03 * kDmse128[b]) << "b = " << b;
        EXPECT_GT(std::fabs(bias), 10.0 * st.self_se) << "b = " << b;  // the same test would catch it
    }
}

TEST(TurboQuantProd, FewerSketchRowsScaleTheVarianceByDOverM) {
    // m = 64 rows: d·Var = (d/m)(π/2 − 1/d)·E‖r‖², twice the m = d value. 8 sketches x 500
    // vectors: a 64-row sketch fluctuates ~1.5% on its own, 0.55% over 8; 3% is about 5 sigma.
    const ProdStats st = prod_stats(3, 8, 500, 64);  // 4000 vectors, within shared_queries()
    const double exact = 2.0 * (std::numbers::pi / 2.0 - 1.0 / kDim) * st.gamma2;
    EXPECT_NEAR(st.d_var_avg, exact, 0.03 * exact);
    EXPECT_LT(std::fabs(st.bias), 3.0 * st.bias_se);
}

TEST(TurboQuantProd, LayoutIsMseCodesThenSketchSignsWithNormAndGamma) {
    const std::size_t d = kDim;
    optiq::Rng rng(8);
    std::vector<float> x(d);
    for (auto& v : x) v = static_cast<float>(0.7 * rng.normal());
    const float norm = static_cast<float>(std::sqrt(dot(x, x)));
    for (int b = 1; b <= 8; ++b) {
        const TurboQuantProd<> p(d, b, 21);
        const auto enc = p.encode(x);
        const std::size_t mse_words = b == 1 ? 0 : (d * static_cast<std::size_t>(b - 1) + 31) / 32;
        ASSERT_EQ(p.mse_words_per_vector(), mse_words);
        ASSERT_EQ(enc.words_per_vector, mse_words + d / 32);
        ASSERT_EQ(enc.side_per_vector, 2u);
        EXPECT_DOUBLE_EQ(enc.bits_per_coord(), (b - 1) + 1.0 + 32.0 / d);
        EXPECT_EQ(enc.side[0], optiq::round_to_f16(norm));
        // The MSE words are TurboQuant-MSE's at b − 1 bits with the same seed (same rotation).
        std::vector<float> x_mse(d, 0.0f);
        if (b > 1) {
            const auto m = optiq::make_turboquant_mse(d, b - 1, 21, optiq::SideType::f32);
            const auto me = m.encode(x);
            EXPECT_TRUE(std::equal(me.words.begin(), me.words.end(), enc.words.begin())) << "b = " << b;
            m.decode(me, x_mse);
        }
        // γ = ‖x/‖x‖ − x̃_mse/‖x‖‖, stored at fp16.
        double r2 = 0;
        for (std::size_t i = 0; i < d; ++i) r2 += std::pow((double(x[i]) - x_mse[i]) / norm, 2);
        EXPECT_NEAR(enc.side[1], std::sqrt(r2), 1e-3 * std::sqrt(r2) + 1e-6) << "b = " << b;
        // The sign words: z = sign(S r) for the residual r in the rotated space, r = Π(x/‖x‖) − ŷ.
        std::vector<float> y(d);
        const float inv = 1.0f / norm;
        for (std::size_t i = 0; i < d; ++i) y[i] = x[i] * inv;
        p.preconditioner().forward(y, y);
        if (b > 1)
            for (auto& v : y) v -= p.codebook()->centroids()[p.codebook()->encode(v)];
        const auto s = p.sketch().matrix();
        for (std::size_t row = 0; row < d; ++row) {
            double sr = 0;
            for (std::size_t j = 0; j < d; ++j) sr += double(s[row * d + j]) * y[j];
            if (std::fabs(sr) < 1e-6) continue;  // float vs double could disagree on the sign of ~0
            const bool bit = (enc.words[mse_words + row / 32] >> (row % 32)) & 1u;
            EXPECT_EQ(bit, sr >= 0) << "b = " << b << ", row " << row;
        }
    }
    // The sketch is specified: S = Rng(Rng::derive(seed, 1)).normal() row-major.
    optiq::Rng r(optiq::Rng::derive(21, 1));
    const TurboQuantProd<> p3(d, 3, 21);
    const auto s = p3.sketch().matrix();
    for (std::size_t i = 0; i < 300; ++i) EXPECT_EQ(s[i], static_cast<float>(r.normal())) << i;
    EXPECT_EQ(TurboQuantProd<>(d, 3, 21).name(), "tq_prod:3");
    EXPECT_EQ((TurboQuantProd<HaarRotation>(d, 2, 21, 64).name()), "tq_prod:2:haar:m64");
}

TEST(TurboQuantProd, InnerProductsEqualDotWithDecodedVectors) {
    for (int b = 1; b <= 8; ++b) {
        expect_inner_products_match_decode(TurboQuantProd<>(kDim, b, 4), 300 + b);
        expect_inner_products_match_decode(TurboQuantProd<HaarRotation>(kDim, b, 4, 96), 400 + b);
    }
}

TEST(TurboQuantProd, BadInputThrowsTheRightError) {
    const TurboQuantProd<> p(64, 3, 1);
    std::vector<float> x(128, 0.25f);
    EXPECT_THROW((void)p.encode(std::span<const float>(x).subspan(0, 100)), optiq::shape_error);
    EXPECT_THROW((void)p.encode(std::span<const float>()), optiq::value_error);
    x[70] = -std::numeric_limits<float>::infinity();
    EXPECT_THROW((void)p.encode(x), optiq::value_error);
    x[70] = 0.25f;
    const auto enc = p.encode(x);
    std::vector<float> out(127), ip(3);
    EXPECT_THROW(p.decode(enc, out), optiq::shape_error);
    EXPECT_THROW((void)p.prepare_query(x), optiq::shape_error);  // two vectors, not one
    const auto q = p.prepare_query(std::span<const float>(x).subspan(0, 64));
    EXPECT_THROW(p.inner_products(q, enc, ip), optiq::shape_error);  // 3 outputs for 2 vectors
    const auto other = TurboQuantProd<>(64, 4, 1).encode(x);
    ip.resize(2);
    EXPECT_THROW(p.inner_products(q, other, ip), optiq::shape_error);
    std::vector<float> big(64, 1e4f);  // norm 8e4 > 65504, fp16's largest
    EXPECT_THROW((void)p.encode(big), optiq::value_error);
    EXPECT_NO_THROW((void)TurboQuantProd<>(64, 3, 1, 0, optiq::SideType::f32).encode(big));
    for (int b : {0, 9}) EXPECT_THROW((void)TurboQuantProd<>(64, b, 1), optiq::config_error) << b;
    EXPECT_THROW((void)TurboQuantProd<>(0, 2, 1), optiq::shape_error);
}

}  // namespace

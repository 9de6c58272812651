#include "optiq/quant/methods/qjl.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/pack/mlx_stream.hpp"

namespace {

using optiq::QJL;

static_assert(optiq::VectorQuantizer<QJL>);

double dot(std::span<const float> a, std::span<const float> b) {
    double s = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
    return s;
}

TEST(QJL, SketchIsSpecifiedAndCodesAreItsSignsInMlxOneBitLayout) {
    const std::size_t d = 48, m = 80;  // m not a multiple of 32: the last word is partial
    const QJL q(d, 123, m);
    ASSERT_EQ(q.sketch_rows(), m);
    ASSERT_EQ(q.words_per_vector(), 3u);
    // S[i][j] = Rng(seed).normal(), row-major.
    optiq::Rng rng(123);
    const auto s = q.sketch().matrix();
    ASSERT_EQ(s.size(), m * d);
    for (std::size_t i = 0; i < s.size(); ++i) ASSERT_EQ(s[i], static_cast<float>(rng.normal())) << i;

    optiq::Rng data(9);
    std::vector<float> k(2 * d);
    for (auto& v : k) v = static_cast<float>(data.normal());
    const auto enc = q.encode(k);
    ASSERT_EQ(enc.count, 2u);
    for (std::size_t v = 0; v < 2; ++v) {
        const auto kv = std::span<const float>(k).subspan(v * d, d);
        // Codes (z + 1)/2 with z = sign(S k), packed as MLX's 1-bit stream.
        std::vector<std::uint8_t> codes(m);
        for (std::size_t i = 0; i < m; ++i) codes[i] = dot(s.subspan(i * d, d), kv) >= 0.0 ? 1 : 0;
        std::vector<std::uint32_t> words(3);
        optiq::MlxStream<1>().pack(codes, words);
        const auto got = enc.words_of(v);
        EXPECT_EQ(std::vector<std::uint32_t>(got.begin(), got.end()), words) << "vector " << v;
        EXPECT_EQ(enc.side_of(v)[0], optiq::round_to_f16(static_cast<float>(std::sqrt(dot(kv, kv)))));
    }
    EXPECT_DOUBLE_EQ(enc.bits_per_coord(), (3.0 * 32.0 + 16.0) / d);
    EXPECT_EQ(q.name(), "qjl:m80");
    EXPECT_EQ(QJL(d, 1).name(), "qjl");
    EXPECT_EQ(QJL(d, 1).words_per_vector(), 2u);  // m = d = 48 signs
}

TEST(QJL, DecodeIsTheScaledTransposeOfTheSigns) {
    const std::size_t d = 40, m = 70;
    const QJL q(d, 5, m, optiq::SideType::f32);
    optiq::Rng rng(6);
    std::vector<float> k(d);
    for (auto& v : k) v = static_cast<float>(rng.normal());
    const auto enc = q.encode(k);
    std::vector<float> y(d);
    q.decode(enc, y);
    const auto s = q.sketch().matrix();
    const double scale = std::sqrt(std::numbers::pi / 2.0) / m * std::sqrt(dot(k, k));
    for (std::size_t j = 0; j < d; ++j) {
        double want = 0;
        for (std::size_t i = 0; i < m; ++i) {
            const double z = dot(s.subspan(i * d, d), k) >= 0.0 ? 1.0 : -1.0;
            want += s[i * d + j] * z;
        }
        EXPECT_NEAR(y[j], scale * want, 1e-5 * scale * std::sqrt(double(m) * d)) << j;
    }
}

TEST(QJL, EstimatorIsUnbiasedWithThePublishedVariance) {
    // Over independent sketches (one seed per trial), for fixed k and q:
    //   E[est] = ⟨q, k⟩,  Var[est] = [(π/2)‖q‖²‖k‖² − ⟨q, k⟩²]/m   (reference-spec B, numbers 5).
    // Three queries at cosines 0, 0.6 and −0.9 with the key; at −0.9 the ⟨q,k⟩² term is half the
    // variance, so dropping it would be caught. Trials T = 4000: the mean is checked to 3.5
    // standard errors, the variance to 10% (its relative standard error is sqrt(2/T) = 2.2%; the
    // estimate is a sum of m = 64 independent terms, so close to normal).
    const std::size_t d = 32, m = 64, trials = 4000;
    optiq::Rng rng(31);
    // k with ‖k‖ = 2; unit u ⟂ k; q_c = 1.5 (c k̂ + sqrt(1 − c²) u).
    std::vector<double> kh(d), u(d);
    for (auto& v : kh) v = rng.normal();
    for (auto& v : u) v = rng.normal();
    double kn = 0;
    for (double v : kh) kn += v * v;
    for (auto& v : kh) v /= std::sqrt(kn);
    double uk = 0;
    for (std::size_t i = 0; i < d; ++i) uk += u[i] * kh[i];
    double un = 0;
    for (std::size_t i = 0; i < d; ++i) {
        u[i] -= uk * kh[i];
        un += u[i] * u[i];
    }
    for (auto& v : u) v /= std::sqrt(un);
    std::vector<float> k(d);
    for (std::size_t i = 0; i < d; ++i) k[i] = static_cast<float>(2.0 * kh[i]);
    const double cosines[3] = {0.0, 0.6, -0.9};
    std::vector<std::vector<float>> qs;
    for (double c : cosines) {
        std::vector<float> q(d);
        for (std::size_t i = 0; i < d; ++i) q[i] = static_cast<float>(1.5 * (c * kh[i] + std::sqrt(1 - c * c) * u[i]));
        qs.push_back(q);
    }
    double sum[3] = {}, sum2[3] = {};
    std::vector<float> est(1);
    for (std::size_t t = 0; t < trials; ++t) {
        const QJL qjl(d, 5000 + t, m, optiq::SideType::f32);
        const auto enc = qjl.encode(k);
        for (int j = 0; j < 3; ++j) {
            qjl.inner_products(qjl.prepare_query(qs[j]), enc, est);
            sum[j] += est[0];
            sum2[j] += double(est[0]) * est[0];
        }
    }
    for (int j = 0; j < 3; ++j) {
        const double truth = dot(qs[j], k);
        const double qq = dot(qs[j], qs[j]), kk = dot(k, k);
        const double var_expected = ((std::numbers::pi / 2.0) * qq * kk - truth * truth) / m;
        const double mean = sum[j] / trials, var = sum2[j] / trials - mean * mean;
        EXPECT_NEAR(truth, 3.0 * cosines[j], 1e-5);
        EXPECT_NEAR(mean, truth, 3.5 * std::sqrt(var / trials)) << "cos " << cosines[j];
        EXPECT_NEAR(var, var_expected, 0.10 * var_expected) << "cos " << cosines[j];
    }
}

TEST(QJL, InnerProductsEqualDotWithDecodedVectors) {
    for (std::size_t m : {0u, 33u, 256u}) {
        const std::size_t d = 64, n = 40;
        const QJL q(d, 77 + m, m);
        optiq::Rng rng(m + 1);
        std::vector<float> x(n * d), query(d);
        for (auto& v : x) v = static_cast<float>(rng.normal());
        for (auto& v : query) v = static_cast<float>(rng.normal());
        const auto enc = q.encode(x);
        std::vector<float> y(n * d), ip(n);
        q.decode(enc, y);
        q.inner_products(q.prepare_query(query), enc, ip);
        for (std::size_t i = 0; i < n; ++i) {
            const auto yi = std::span<const float>(y).subspan(i * d, d);
            EXPECT_NEAR(ip[i], dot(query, yi), 1e-5 * std::sqrt(dot(query, query) * dot(yi, yi))) << "m " << m;
        }
    }
}

TEST(QJL, ZeroKeyDecodesToZero) {
    const QJL q(16, 1);
    std::vector<float> k(16, 0.0f), y(16, 1.0f);
    const auto enc = q.encode(k);
    EXPECT_EQ(enc.side[0], 0.0f);
    q.decode(enc, y);
    for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST(QJL, BadInputThrowsTheRightError) {
    EXPECT_THROW((void)QJL(0, 1), optiq::shape_error);
    const QJL q(32, 1);
    std::vector<float> x(64, 0.1f);
    EXPECT_THROW((void)q.encode(std::span<const float>(x).subspan(0, 33)), optiq::shape_error);
    EXPECT_THROW((void)q.encode(std::span<const float>()), optiq::value_error);
    x[3] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_THROW((void)q.encode(x), optiq::value_error);
    EXPECT_THROW((void)q.prepare_query(std::span<const float>(x).subspan(0, 32)), optiq::value_error);
    x[3] = 0.1f;
    EXPECT_THROW((void)q.prepare_query(x), optiq::shape_error);
    const auto enc = q.encode(x);
    std::vector<float> out(63), ip(1);
    EXPECT_THROW(q.decode(enc, out), optiq::shape_error);
    EXPECT_THROW(q.inner_products(q.prepare_query(std::span<const float>(x).subspan(0, 32)), enc, ip),
                 optiq::shape_error);
    const QJL wide(32, 1, 64);
    out.resize(64);
    EXPECT_THROW(wide.decode(enc, out), optiq::shape_error);  // 1-word codes in a 2-word quantizer
    // A norm beyond fp16's 65504 would be stored as inf: refused, and fine at f32.
    std::vector<float> big(32, 2e4f);
    EXPECT_THROW((void)q.encode(big), optiq::value_error);
    EXPECT_NO_THROW((void)QJL(32, 1, 0, optiq::SideType::f32).encode(big));
}

}  // namespace

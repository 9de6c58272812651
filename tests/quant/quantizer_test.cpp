#include "optiq/quant/quantizer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "optiq/codebook/sign.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/hadamard.hpp"
#include "optiq/precondition/identity.hpp"
#include "optiq/quant/any_quantizer.hpp"
#include "optiq/quant/evaluate.hpp"

namespace {

using SignQ = optiq::Quantizer<optiq::Sign, optiq::Identity, optiq::MlxStream<1>>;

SignQ sign_quantizer(std::size_t d) { return SignQ(optiq::Sign(1.0f / std::sqrt(static_cast<float>(d))), optiq::Identity(d), optiq::MlxStream<1>()); }

TEST(Quantizer, SignCodesLandLsbFirstAndNormIsSideData) {
    const std::size_t d = 32;
    auto q = sign_quantizer(d);
    std::vector<float> x(d);
    for (std::size_t i = 0; i < d; ++i) x[i] = (i % 2 == 0) ? 2.0f : -2.0f;  // ||x|| = 2*sqrt(32)
    const auto enc = q.encode(x);
    ASSERT_EQ(enc.count, 1u);
    ASSERT_EQ(enc.words.size(), 1u);
    EXPECT_EQ(enc.words[0], 0x55555555u);  // code 1 (x >= 0) at even positions, bit i = element i
    ASSERT_EQ(enc.side.size(), 1u);
    EXPECT_FLOAT_EQ(enc.side[0], optiq::round_to_f16(2.0f * std::sqrt(32.0f)));
    EXPECT_EQ(enc.storage_bits(), 32u + 16u);
    EXPECT_DOUBLE_EQ(enc.bits_per_coord(), 1.5);
    std::vector<float> y(d);
    q.decode(enc, y);
    for (std::size_t i = 0; i < d; ++i) EXPECT_NEAR(y[i], x[i], 2e-3f) << i;  // sign codebook is exact on ±c vectors
}

TEST(Quantizer, InnerProductsEqualDotWithDecodedVectors) {
    const std::size_t d = 64;
    optiq::Quantizer q(optiq::Sign(1.0f / 8.0f), optiq::RandomizedHadamard(d, 3), optiq::MlxStream<1>(),
                       optiq::SideType::f32);
    const auto x = optiq::random_unit_vectors(200, d, 1);
    const auto query = optiq::random_unit_vectors(1, d, 2);
    const auto enc = q.encode(x);
    std::vector<float> y(x.size()), ip(200);
    q.decode(enc, y);
    q.inner_products(q.prepare_query(query), enc, ip);
    for (std::size_t i = 0; i < 200; ++i) {
        double dot = 0;
        for (std::size_t j = 0; j < d; ++j) dot += static_cast<double>(query[j]) * y[i * d + j];
        EXPECT_NEAR(ip[i], dot, 1e-5) << i;
    }
}

TEST(Quantizer, RejectsBadInputWithTheRightError) {
    auto q = sign_quantizer(32);
    std::vector<float> x(31, 1.0f);
    EXPECT_THROW((void)q.encode(x), optiq::shape_error);
    EXPECT_THROW((void)q.encode(std::vector<float>{}), optiq::value_error);
    std::vector<float> nan(32, 1.0f);
    nan[5] = std::numeric_limits<float>::quiet_NaN();
    try {
        (void)q.encode(nan);
        FAIL() << "no exception";
    } catch (const optiq::value_error& e) {
        EXPECT_NE(std::string(e.what()).find("coordinate 5"), std::string::npos) << e.what();
    }
    // A norm beyond f16's range is refused rather than stored as inf.
    EXPECT_THROW((void)q.encode(std::vector<float>(32, 20000.0f)), optiq::value_error);
    // A batch from a different quantizer does not decode here.
    auto other = sign_quantizer(64);
    const auto enc = other.encode(std::vector<float>(64, 1.0f));
    std::vector<float> out(64);
    EXPECT_THROW(q.decode(enc, out), optiq::shape_error);
    // Codebook and packer must agree on bits.
    using Bad = optiq::Quantizer<optiq::Sign, optiq::Identity, optiq::MlxStream<>>;
    EXPECT_THROW(Bad(optiq::Sign(1.0f), optiq::Identity(32), optiq::MlxStream<>(4)), optiq::config_error);
}

TEST(AnyQuantizer, ForwardsToTheMethodAndFailsWhenEmpty) {
    const std::size_t d = 32;
    optiq::AnyQuantizer any(sign_quantizer(d), "sign");
    EXPECT_EQ(any.dim(), d);
    EXPECT_EQ(any.bits(), 1);
    EXPECT_EQ(any.spec(), "sign");
    ASSERT_NE(any.target<SignQ>(), nullptr);
    const auto x = optiq::random_unit_vectors(10, d, 5);
    const auto a = any.encode(x);
    const auto b = any.target<SignQ>()->encode(x);
    EXPECT_EQ(a.words, b.words);
    EXPECT_EQ(a.side, b.side);
    optiq::AnyQuantizer empty;
    EXPECT_FALSE(static_cast<bool>(empty));
    EXPECT_THROW((void)empty.dim(), optiq::config_error);
}

TEST(Evaluate, SignQuantizerMatchesTheOneBitLawOnUnitVectors) {
    // 1-bit sign codes with magnitude sqrt(2/pi)/sqrt(d): D_mse = 1 - 2/pi for large d (TurboQuant b=1
    // without rotation is still exact here because random unit vectors are already rotation invariant).
    const std::size_t d = 128;
    optiq::AnyQuantizer q(optiq::Quantizer(optiq::Sign(std::sqrt(2.0f / 3.14159265f) / std::sqrt(128.0f)),
                                           optiq::Identity(d), optiq::MlxStream<1>(), optiq::SideType::f32));
    const auto x = optiq::random_unit_vectors(4000, d, 9);
    const auto queries = optiq::random_unit_vectors(4, d, 10);
    const auto s = optiq::evaluate(q, x, queries);
    EXPECT_NEAR(s.mse, 0.36089, 0.01);  // exact sphere law at d=128, b=1
    EXPECT_NEAR(s.cosine, std::sqrt(2.0 / 3.14159265), 0.01);
    EXPECT_DOUBLE_EQ(s.bits_per_coord, 1.0 + 32.0 / 128.0);
}

}  // namespace

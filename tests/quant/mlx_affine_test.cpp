#include "optiq/quant/methods/mlx_affine.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/quant/concepts.hpp"

namespace {

namespace mlx = optiq::mlx;
using optiq::SideType;

static_assert(optiq::VectorQuantizer<optiq::MlxAffine>);

std::vector<float> gaussian(std::size_t n, std::uint64_t seed, double sigma = 1.0) {
    optiq::Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(rng.normal() * sigma);
    return v;
}

// reference-spec "Numbers to reproduce" 6; words as mx.quantize (mlx 0.32, CPU) returns them.
TEST(MlxQuantize, SpecCases) {
    std::vector<float> w(32, 0.0f);
    w[0] = -0.5f, w[1] = 1.0f, w[2] = 0.3f, w[3] = 0.25f;
    auto q = mlx::quantize(w, {1, 32}, 32, 4);
    ASSERT_EQ(q.scales.size(), 1u);
    EXPECT_EQ(std::bit_cast<std::uint32_t>(q.scales[0]), 0xBDCCCCCDu);  // -0.1f
    EXPECT_EQ(q.biases[0], 1.0f);
    // codes 15, 0, 7, 8, then 10 (w = 0) everywhere else.
    EXPECT_EQ(q.words, (std::vector<std::uint32_t>{0xAAAA870Fu, 0xAAAAAAAAu, 0xAAAAAAAAu, 0xAAAAAAAAu}));
    auto d = mlx::dequantize(q);
    EXPECT_EQ(d[0], -0.5f);
    EXPECT_EQ(d[1], 1.0f);
    EXPECT_EQ(d[4], 0.0f);

    std::vector<float> w2(32, 0.0f);
    w2[0] = -1.0f, w2[1] = 0.3f;
    q = mlx::quantize(w2, {1, 32}, 32, 4);
    EXPECT_EQ(q.scales[0], 1.0f / 12.0f);
    EXPECT_EQ(q.biases[0], -1.0f);
    EXPECT_EQ(q.words, (std::vector<std::uint32_t>{0xCCCCCCF0u, 0xCCCCCCCCu, 0xCCCCCCCCu, 0xCCCCCCCCu}));
    d = mlx::dequantize(q);
    EXPECT_EQ(d[0], -1.0f);
    EXPECT_FLOAT_EQ(d[1], 0.25f);  // 0.3 clipped to code 15
    EXPECT_EQ(d[2], 0.0f);
}

// 1 bit (mlx 0.32.4 output): scale = max - min, bias = min, rint ties to even.
TEST(MlxQuantize, OneBitGolden) {
    std::vector<float> w(32, 0.5f);
    w[0] = 0.0f, w[1] = 1.0f, w[3] = 0.25f, w[4] = 0.75f;
    const auto q = mlx::quantize(w, {1, 32}, 32, 1);
    EXPECT_EQ(q.scales[0], 1.0f);
    EXPECT_EQ(q.biases[0], 0.0f);
    EXPECT_EQ(q.words, std::vector<std::uint32_t>{0x12u});  // codes 0,1,0,0,1 then 0.5 -> 0 (tie)
    const auto d = mlx::dequantize(q);
    EXPECT_EQ(d[1], 1.0f);
    EXPECT_EQ(d[4], 1.0f);
    EXPECT_EQ(d[5], 0.0f);
}

TEST(MlxQuantize, ShapesFor4096Square) {
    for (int bits : {1, 2, 3, 4, 5, 6, 8})
        for (std::size_t g : {32u, 64u, 128u}) {
            const auto s = mlx::quantized_shapes({4096, 4096}, g, bits);
            EXPECT_EQ(s.words, (std::vector<std::size_t>{4096, 128u * static_cast<std::size_t>(bits)}));
            EXPECT_EQ(s.scales, (std::vector<std::size_t>{4096, 4096 / g}));
        }
    // Leading dimensions are kept (mx.quantize works on the last axis of an N-d array).
    const auto s3 = mlx::quantized_shapes({2, 3, 256}, 64, 3);
    EXPECT_EQ(s3.words, (std::vector<std::size_t>{2, 3, 24}));
    EXPECT_EQ(s3.scales, (std::vector<std::size_t>{2, 3, 4}));
}

TEST(MlxQuantize, Actual4096SquareAt4Bits) {
    const std::size_t n = 4096;
    std::vector<float> w(n * n);
    optiq::Rng rng(1);
    for (auto& v : w) v = static_cast<float>(rng.uniform() * 0.04 - 0.02);
    const auto q = mlx::quantize(w, {n, n}, 64, 4);
    EXPECT_EQ(q.words.size(), n * 512);
    EXPECT_EQ(q.words_shape(), (std::vector<std::size_t>{4096, 512}));
    EXPECT_EQ(q.scales_shape(), (std::vector<std::size_t>{4096, 64}));
    EXPECT_EQ(q.scales.size(), n * 64);
    EXPECT_EQ(q.biases.size(), n * 64);
    // Error bound of the zero-exact rule: inside the grid at most half a step; at the far end the
    // grid falls short by n*(s0 - |s|) <= s0 <= |s|*(1 + 1/n) (s0 = (max-min)/n, |s| = |edge|/|q0|,
    // |q0| <= |edge|/s0 + 1/2, |edge| >= n*s0/2), so no value is off by more than (1 + 1/15) steps.
    const auto d = mlx::dequantize(q);
    for (std::size_t i = 0; i < w.size(); i += 3) {
        const float step = std::abs(q.scales[i / 64]);
        ASSERT_LE(std::abs(w[i] - d[i]), (1.0f + 1.0f / 15.0f) * step * 1.0001f) << i;
    }
}

// Golden outputs of mlx 0.32 (CPU) for one 32-value group given as f16 / bf16: words, scale,
// bias and dequantized values as raw bits. The f16 scale (0xAF9D at 5 bits) is the rounded fp32
// scale; the codes come from the fp32 scale.
const std::uint16_t kF16In[32] = {0xBF98, 0x3827, 0xBC27, 0x3D89, 0xB189, 0xBEE7, 0x3989, 0xBAEC, 0x3E3A, 0x0000, 0xBE36,
                                  0x3AEC, 0xB989, 0x3EEC, 0x3189, 0xBD85, 0x3C27, 0xB827, 0x3F9D, 0x3589, 0xBCD4, 0x3CD8,
                                  0xB589, 0xBF9D, 0x3827, 0xBC23, 0x3D89, 0xB189, 0xBEEC, 0x3989, 0xBAE3, 0x3E3A};
const std::uint16_t kBf16In[32] = {0xBFF3, 0x3F05, 0xBF85, 0x3FB1, 0xBE31, 0xBFDD, 0x3F31, 0xBF5D, 0x3FC7, 0x0000, 0xBFC7,
                                   0x3F5D, 0xBF31, 0x3FDD, 0x3E31, 0xBFB1, 0x3F85, 0xBF05, 0x3FF4, 0x3EB1, 0xBF9A, 0x3F9B,
                                   0xBEB1, 0xBFF4, 0x3F05, 0xBF84, 0x3FB1, 0xBE31, 0xBFDD, 0x3F31, 0xBF5C, 0x3FC7};

std::vector<std::uint16_t> bits_of(const std::vector<float>& v, SideType t) { return mlx::to_bits16(v, t); }

TEST(MlxQuantize, F16MatchesMlxGolden) {
    const std::vector<std::uint16_t> in(std::begin(kF16In), std::end(kF16In));
    auto q = mlx::quantize(in, SideType::f16, {1, 32}, 32, 3);
    EXPECT_EQ(q.words, (std::vector<std::uint32_t>{0xE1CFC39Fu, 0xF62AF055u, 0x39F873F4u}));
    EXPECT_EQ(bits_of(q.scales, SideType::f16), std::vector<std::uint16_t>{0xB79D});
    EXPECT_EQ(bits_of(q.biases, SideType::f16), std::vector<std::uint16_t>{0x3F9D});

    q = mlx::quantize(in, SideType::f16, {1, 32}, 32, 5);
    EXPECT_EQ(q.words, (std::vector<std::uint32_t>{0xBF12659Fu, 0x64F603BAu, 0x8287E3C3u, 0x2CFCCDA6u, 0x1DD5F893u}));
    EXPECT_EQ(bits_of(q.scales, SideType::f16), std::vector<std::uint16_t>{0xAF9D});
    EXPECT_EQ(bits_of(q.biases, SideType::f16), std::vector<std::uint16_t>{0x3F9D});
    const std::vector<std::uint16_t> deq{0xBF23, 0x379C, 0xBC49, 0x3DB6, 0xAF90, 0xBF23, 0x39B6, 0xBAAA, 0x3E30, 0x0000, 0xBE2F,
                                         0x3AAA, 0xB9B6, 0x3F23, 0x2FA0, 0xBDB5, 0x3C48, 0xB79C, 0x3F9D, 0x35B4, 0xBCC3, 0x3CC2,
                                         0xB5B4, 0xBF23, 0x379C, 0xBC49, 0x3DB6, 0xAF90, 0xBF23, 0x39B6, 0xBAAA, 0x3E30};
    EXPECT_EQ(bits_of(mlx::dequantize(q), SideType::f16), deq);
}

TEST(MlxQuantize, Bf16MatchesMlxGolden) {
    const std::vector<std::uint16_t> in(std::begin(kBf16In), std::end(kBf16In));
    auto q = mlx::quantize(in, SideType::bf16, {1, 32}, 32, 3);
    EXPECT_EQ(q.words, (std::vector<std::uint32_t>{0xE1CFC39Fu, 0xF62AF055u, 0x39F873F4u}));
    EXPECT_EQ(bits_of(q.scales, SideType::bf16), std::vector<std::uint16_t>{0xBEF4});
    EXPECT_EQ(bits_of(q.biases, SideType::bf16), std::vector<std::uint16_t>{0x3FF4});

    q = mlx::quantize(in, SideType::bf16, {1, 32}, 32, 5);
    EXPECT_EQ(q.words, (std::vector<std::uint32_t>{0xBD12659Fu, 0x64F603BAu, 0x8287E3C5u, 0x2CFCCDA6u, 0x1DD5E893u}));
    EXPECT_EQ(bits_of(q.scales, SideType::bf16), std::vector<std::uint16_t>{0xBDF4});
    EXPECT_EQ(bits_of(q.biases, SideType::bf16), std::vector<std::uint16_t>{0x3FF4});
    const std::vector<std::uint16_t> deq{0xBFE4, 0x3EF4, 0xBF8A, 0x3FB7, 0xBE00, 0xBFD6, 0x3F38, 0xBF54, 0x3FC6, 0x0000, 0xBFC6,
                                         0x3F56, 0xBF38, 0x3FD6, 0x3DF0, 0xBFB8, 0x3F89, 0xBEF0, 0x3FF4, 0x3EB8, 0xBF98, 0x3F98,
                                         0xBEB8, 0xBFE4, 0x3EF4, 0xBF8A, 0x3FB7, 0xBE00, 0xBFD6, 0x3F38, 0xBF54, 0x3FC6};
    EXPECT_EQ(bits_of(mlx::dequantize(q), SideType::bf16), deq);
}

// For 16-bit inputs MLX codes with the fp32 scale and stores the rounded one. Find groups where
// the two choices give different codes and check which one optiq used.
TEST(MlxQuantize, HalfInputsAreCodedWithTheFp32Scale) {
    optiq::Rng rng(17);
    const optiq::Affine a(4, 32);
    int differing = 0;
    for (int rep = 0; rep < 400; ++rep) {
        std::vector<std::uint16_t> in(32);
        std::vector<float> wide(32);
        for (std::size_t i = 0; i < 32; ++i) {
            in[i] = optiq::float_to_f16_bits(static_cast<float>(rng.normal()));
            wide[i] = optiq::f16_bits_to_float(in[i]);
        }
        const auto q = mlx::quantize(in, SideType::f16, {1, 32}, 32, 4);
        const auto side = a.fit(wide);
        const decltype(side) rounded{optiq::round_to_f16(side[0]), optiq::round_to_f16(side[1])};
        EXPECT_EQ(q.scales[0], rounded[0]);
        EXPECT_EQ(q.biases[0], rounded[1]);
        std::vector<std::uint8_t> codes(32);
        optiq::MlxStream<4>{}.unpack(q.words, codes);
        for (std::size_t i = 0; i < 32; ++i) {
            ASSERT_EQ(codes[i], a.encode(wide[i], side));
            if (a.encode(wide[i], side) != a.encode(wide[i], rounded)) ++differing;
        }
    }
    EXPECT_GT(differing, 0);
}

TEST(MlxQuantize, DequantizeErrorShrinksWithBits) {
    const auto w = gaussian(64 * 512, 9);
    double prev = 1e30;
    for (int bits : {1, 2, 3, 4, 5, 6, 8}) {
        const auto q = mlx::quantize(w, {64, 512}, 64, bits);
        const auto d = mlx::dequantize(q);
        double mse = 0.0;
        for (std::size_t i = 0; i < w.size(); ++i) mse += (w[i] - d[i]) * static_cast<double>(w[i] - d[i]);
        mse /= static_cast<double>(w.size());
        EXPECT_LT(mse, prev * (bits == 8 ? 0.1 : 0.5)) << "bits " << bits;  // at least 4x per bit, roughly
        prev = mse;
    }
    EXPECT_LT(prev, 1e-4);
}

TEST(MlxQuantize, Errors) {
    const std::vector<float> w(2 * 64, 0.5f);
    EXPECT_THROW((void)mlx::quantize(w, {2, 64}, 64, 7), optiq::config_error);
    EXPECT_THROW((void)mlx::quantize(w, {2, 64}, 64, 0), optiq::config_error);
    EXPECT_THROW((void)mlx::quantize(w, {2, 64}, 64, 9), optiq::config_error);
    EXPECT_THROW((void)mlx::quantize(w, {2, 64}, 16, 4), optiq::config_error);
    EXPECT_THROW((void)mlx::quantize(w, {4, 32}, 64, 4), optiq::shape_error);   // 32 % 64 != 0
    EXPECT_THROW((void)mlx::quantize(w, {128}, 64, 4), optiq::shape_error);     // ndim 1
    EXPECT_THROW((void)mlx::quantize(w, {3, 64}, 64, 4), optiq::shape_error);   // size mismatch
    EXPECT_THROW((void)mlx::quantize(std::vector<float>{}, {0, 64}, 64, 4), optiq::value_error);
    auto bad = w;
    bad[70] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_THROW((void)mlx::quantize(bad, {2, 64}, 64, 4), optiq::value_error);
    const std::vector<std::uint16_t> h(128, 0x3C00);
    EXPECT_THROW((void)mlx::quantize(h, SideType::f32, {2, 64}, 64, 4), optiq::config_error);
    EXPECT_NO_THROW((void)mlx::quantize(w, {2, 1, 64}, 64, 4));

    auto q = mlx::quantize(w, {2, 64}, 64, 4);
    std::vector<float> out(127);
    EXPECT_THROW(mlx::dequantize(q, out), optiq::shape_error);
    q.words.pop_back();
    EXPECT_THROW((void)mlx::dequantize(q), optiq::shape_error);
}

// The vector form: a d-vector quantizes exactly like a 1 x d matrix row.
TEST(MlxAffine, VectorQuantizerMatchesMatrixRows) {
    const std::size_t d = 256, n = 5;
    for (int bits : {2, 3, 4, 5, 6, 8}) {
        const auto x = gaussian(n * d, 100 + static_cast<std::uint64_t>(bits));
        const auto mq = mlx::quantize(x, {n, d}, 64, bits);
        const auto f32 = optiq::make_mlx_affine(d, bits, 64, SideType::f32);
        const auto enc = f32.encode(x);
        ASSERT_EQ(enc.words, mq.words) << "bits " << bits;
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t g = 0; g < d / 64; ++g) {
                ASSERT_EQ(enc.side_of(i)[2 * g], mq.scales[i * 4 + g]);
                ASSERT_EQ(enc.side_of(i)[2 * g + 1], mq.biases[i * 4 + g]);
            }
        std::vector<float> dec(n * d);
        f32.decode(enc, dec);
        EXPECT_EQ(dec, mlx::dequantize(mq));

        // f16 side data: same codes (fp32 scale), scales stored rounded.
        const auto f16 = optiq::make_mlx_affine(d, bits, 64);
        const auto e16 = f16.encode(x);
        EXPECT_EQ(e16.words, mq.words);
        EXPECT_EQ(e16.side_of(0)[0], optiq::round_to_f16(mq.scales[0]));
        EXPECT_DOUBLE_EQ(e16.bits_per_coord(), bits + 32.0 / 64.0);
    }
}

TEST(MlxAffine, InnerProductsEqualDotWithDecoded) {
    const std::size_t d = 128, n = 40;
    const auto q = optiq::make_mlx_affine(d, 4, 32);
    const auto x = gaussian(n * d, 7);
    const auto query = gaussian(d, 8);
    const auto enc = q.encode(x);
    std::vector<float> dec(n * d), ip(n);
    q.decode(enc, dec);
    q.inner_products(q.prepare_query(query), enc, ip);
    for (std::size_t i = 0; i < n; ++i) {
        double ref = 0.0, mag = 0.0;
        for (std::size_t j = 0; j < d; ++j) {
            ref += static_cast<double>(query[j]) * dec[i * d + j];
            mag += std::abs(static_cast<double>(query[j]) * dec[i * d + j]);
        }
        EXPECT_NEAR(ip[i], ref, 1e-5 * mag + 1e-6);
    }
}

TEST(MlxAffine, FactoryErrors) {
    EXPECT_THROW((void)optiq::make_mlx_affine(100, 4, 64), optiq::shape_error);  // 100 % 64
    EXPECT_THROW((void)optiq::make_mlx_affine(128, 9, 64), optiq::config_error);
    EXPECT_THROW((void)optiq::make_mlx_affine(0, 4, 64), optiq::shape_error);
}

}  // namespace

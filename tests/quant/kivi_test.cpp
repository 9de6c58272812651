#include "optiq/quant/methods/kivi.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/rng.hpp"

namespace {

using optiq::KiviKeys;
using optiq::KiviValues;
using optiq::SideType;

// Keys, d = 2, 2 bits, groups of 4 tokens, six tokens (a full group and a partial one).
TEST(Kivi, KeysHandCaseIsExact) {
    const KiviKeys k(2, 2, 4, 0, SideType::f32);
    // channel 0: 0,1,2,3 | 2,5      channel 1: -1,-1,-1,-1 | 0.5,-0.25
    const std::vector<float> x{0, -1, 1, -1, 2, -1, 3, -1, 2, 0.5f, 5, -0.25f};
    const auto b = k.encode(x);
    EXPECT_EQ(b.count, 6u);
    // codes per token (ch0 | ch1 << 2): 0, 1, 2, 3 (channel 1 constant -> code 0), then 0|3<<2, 3|0<<2.
    EXPECT_EQ(b.words, (std::vector<std::uint32_t>{0u, 1u, 2u, 3u, 12u, 3u}));
    // {scale, zero} per (token group, channel): (3-0)/3, 0 | 0, -1 | (5-2)/3, 2 | 0.75/3, -0.25.
    EXPECT_EQ(b.shared, (std::vector<float>{1, 0, 0, -1, 1, 2, 0.25f, -0.25f}));
    EXPECT_TRUE(b.side.empty());
    std::vector<float> out(x.size());
    k.decode(b, out);
    EXPECT_EQ(out, x);
}

// Values, d = 4, 2 bits, groups of 2 channels.
TEST(Kivi, ValuesHandCaseIsExact) {
    const KiviValues v(4, 2, 2, 0, SideType::f32);
    const std::vector<float> x{0, 3, -1, -1, 1.5f, 0, 4, 2.5f};
    const auto b = v.encode(x);
    // token 0: group {0,3}: s 1, z 0, codes 0,3; group {-1,-1}: s 0, z -1, codes 0,0.
    // token 1: group {1.5,0}: s 0.5, z 0, codes 3,0; group {4,2.5}: s 0.5, z 2.5, codes 3,0.
    EXPECT_EQ(b.words, (std::vector<std::uint32_t>{0b00'00'11'00u, 0b00'11'00'11u}));
    EXPECT_EQ(b.side, (std::vector<float>{1, 0, 0, -1, 0.5f, 0, 0.5f, 2.5f}));
    EXPECT_TRUE(b.shared.empty());
    std::vector<float> out(x.size());
    v.decode(b, out);
    EXPECT_EQ(out, x);
}

TEST(Kivi, RoundsToNearestEvenLevel) {
    // One channel group {0, 3} at 2 bits gives s = 1; 1.5 and 2.5 are ties.
    const KiviValues v(4, 2, 4, 0, SideType::f32);
    const auto b = v.encode(std::vector<float>{0, 3, 1.5f, 2.5f});
    EXPECT_EQ(b.words[0], 0u | 3u << 2 | 2u << 4 | 2u << 6);
}

TEST(Kivi, ResidualTokensStayAtSideTypeAndAreCounted) {
    const std::size_t d = 64, n = 10, r = 4;
    optiq::Rng rng(1);
    std::vector<float> x(n * d);
    for (auto& v : x) v = static_cast<float>(rng.normal());
    for (const bool keys : {true, false}) {
        optiq::EncodedBatch b;
        std::vector<float> out(n * d);
        if (keys) {
            const KiviKeys k(d, 2, 4, r);
            b = k.encode(x);
            k.decode(b, out);
            // 6 quantized tokens: 2 token groups (4 + 2) x 64 channels x {scale, zero}, then 4 x 64.
            EXPECT_EQ(b.shared.size(), 2 * d * 2 + r * d);
        } else {
            const KiviValues v(d, 2, 32, r);
            b = v.encode(x);
            v.decode(b, out);
            EXPECT_EQ(b.side.size(), 6 * 2 * (d / 32));
            EXPECT_EQ(b.shared.size(), r * d);
        }
        EXPECT_EQ(b.words.size(), 6 * d * 2 / 32);
        for (std::size_t i = (n - r) * d; i < n * d; ++i) ASSERT_EQ(out[i], optiq::round_to_f16(x[i]));
        EXPECT_EQ(b.storage_bits(), b.words.size() * 32 + (b.side.size() + b.shared.size()) * 16);
    }
    // Fewer tokens than the window: nothing is quantized.
    const KiviKeys k(d, 2, 4, 128);
    const auto b = k.encode(x);
    EXPECT_TRUE(b.words.empty());
    EXPECT_EQ(b.shared.size(), n * d);
    EXPECT_DOUBLE_EQ(b.bits_per_coord(), 16.0);
}

TEST(Kivi, StorageBits) {
    std::vector<float> x(64 * 128, 0.5f);
    x[3] = -1.0f;
    // Keys, 2 bits, G = 32: 64 tokens x 8 words + 2 groups x 128 channels x 2 fp16 = 16384 + 8192.
    const auto kb = KiviKeys(128, 2, 32).encode(x);
    EXPECT_EQ(kb.storage_bits(), 16384u + 8192u);
    EXPECT_DOUBLE_EQ(kb.bits_per_coord(), 3.0);
    // Values, 2 bits, G = 32: per token 8 words + 4 groups x 2 fp16 = 256 + 128 bits.
    const auto vb = KiviValues(128, 2, 32).encode(x);
    EXPECT_EQ(vb.storage_bits(), 64u * 384u);
    EXPECT_DOUBLE_EQ(vb.bits_per_coord(), 3.0);
    // With R = 16: 48 quantized key tokens (2 groups) + 16 x 128 fp16.
    const auto rb = KiviKeys(128, 2, 32, 16).encode(x);
    EXPECT_EQ(rb.storage_bits(), 48u * 8 * 32 + 2u * 128 * 2 * 16 + 16u * 128 * 16);
}

// Gaussian tokens with a few outlier channels (the structure KIVI's per-channel keys exploit).
std::vector<float> keys_like(std::size_t n, std::size_t d, std::uint64_t seed) {
    optiq::Rng rng(seed);
    std::vector<float> x(n * d);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t c = 0; c < d; ++c)
            x[t * d + c] = static_cast<float>(rng.normal() * (c % 16 == 3 ? 12.0 : 1.0) + (c % 16 == 3 ? 5.0 : 0.0));
    return x;
}

template <class Q>
double mse_of(const Q& q, const std::vector<float>& x) {
    const auto b = q.encode(x);
    std::vector<float> out(x.size());
    q.decode(b, out);
    double e = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) e += (x[i] - out[i]) * static_cast<double>(x[i] - out[i]);
    return e / static_cast<double>(x.size());
}

TEST(Kivi, ErrorFallsWithBitsInBothModes) {
    for (std::uint64_t seed = 0; seed < 4; ++seed) {
        const auto x = keys_like(96, 64, seed);
        double prev_k = 1e30, prev_v = 1e30;
        for (int bits = 1; bits <= 8; ++bits) {
            const double ek = mse_of(KiviKeys(64, bits, 32, 0, SideType::f32), x);
            const double ev = mse_of(KiviValues(64, bits, 32, 0, SideType::f32), x);
            EXPECT_LT(ek, prev_k * 0.5) << "keys bits " << bits;
            EXPECT_LT(ev, prev_v * 0.5) << "values bits " << bits;
            prev_k = ek, prev_v = ev;
        }
    }
}

TEST(Kivi, PerChannelBeatsPerTokenOnOutlierChannels) {
    for (std::uint64_t seed = 10; seed < 14; ++seed) {
        const auto x = keys_like(128, 64, seed);
        for (int bits : {2, 4}) {
            const double per_channel = mse_of(KiviKeys(64, bits, 32), x);
            const double per_token = mse_of(KiviValues(64, bits, 32), x);
            EXPECT_LT(per_channel, 0.5 * per_token) << "bits " << bits;
        }
    }
}

TEST(Kivi, DecodeErrorWithinHalfAStep) {
    const auto x = keys_like(70, 32, 99);
    const KiviValues v(32, 3, 8);
    const auto b = v.encode(x);
    std::vector<float> out(x.size());
    v.decode(b, out);
    for (std::size_t t = 0; t < 70; ++t)
        for (std::size_t c = 0; c < 32; ++c) {
            const float s = b.side_of(t)[2 * (c / 8)];
            // f16 zero and scale: half a step plus the rounding of the zero.
            ASSERT_LE(std::abs(out[t * 32 + c] - x[t * 32 + c]), 0.5f * s + 1e-3f * std::abs(x[t * 32 + c]) + 1e-3f);
        }
}

template <class Q>
void check_inner_products(const Q& q, std::size_t n, std::uint64_t seed) {
    const std::size_t d = q.dim();
    const auto x = keys_like(n, d, seed);
    optiq::Rng rng(seed + 1000);
    std::vector<float> query(d);
    for (auto& v : query) v = static_cast<float>(rng.normal());
    const auto b = q.encode(x);
    std::vector<float> dec(n * d), ip(n);
    q.decode(b, dec);
    q.inner_products(q.prepare_query(query), b, ip);
    for (std::size_t i = 0; i < n; ++i) {
        double ref = 0.0, mag = 0.0;
        for (std::size_t c = 0; c < d; ++c) {
            ref += static_cast<double>(query[c]) * dec[i * d + c];
            mag += std::abs(static_cast<double>(query[c]) * dec[i * d + c]);
        }
        ASSERT_NEAR(ip[i], ref, 2e-6 * mag + 1e-6) << q.name() << " token " << i;
    }
}

TEST(Kivi, InnerProductsEqualDotWithDecoded) {
    for (std::uint64_t seed = 0; seed < 5; ++seed) {
        check_inner_products(KiviKeys(64, 2, 32), 75, seed);          // partial last group
        check_inner_products(KiviKeys(64, 4, 16, 20), 75, seed);      // with residual
        check_inner_products(KiviValues(64, 2, 32), 75, seed);
        check_inner_products(KiviValues(128, 3, 32, 10), 40, seed);   // 3-bit codes cross words
    }
}

TEST(Kivi, Errors) {
    EXPECT_THROW(KiviKeys(64, 0), optiq::config_error);
    EXPECT_THROW(KiviKeys(64, 9), optiq::config_error);
    EXPECT_THROW(KiviKeys(64, 2, 0), optiq::config_error);
    EXPECT_THROW(KiviKeys(0, 2), optiq::shape_error);
    EXPECT_THROW(KiviValues(100, 2, 32), optiq::shape_error);
    EXPECT_NO_THROW(KiviKeys(100, 2, 32));  // token groups: any dimension

    const KiviKeys k(64, 2, 32);
    EXPECT_THROW((void)k.encode(std::vector<float>(100)), optiq::shape_error);
    auto b = k.encode(std::vector<float>(64 * 40, 1.0f));
    std::vector<float> out(64 * 39);
    EXPECT_THROW(k.decode(b, out), optiq::shape_error);
    const KiviKeys other(64, 2, 16);
    std::vector<float> full(64 * 40);
    EXPECT_THROW(other.decode(b, full), optiq::shape_error);  // different group layout
    b.shared.pop_back();
    EXPECT_THROW(k.decode(b, full), optiq::shape_error);
    std::vector<float> ip(3);
    EXPECT_THROW(k.inner_products(k.prepare_query(std::vector<float>(64, 1.0f)), k.encode(std::vector<float>(64 * 4)), ip),
                 optiq::shape_error);
}

}  // namespace

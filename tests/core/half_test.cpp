#include "optiq/core/half.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>

#include "optiq/core/rng.hpp"

namespace {

// The straightforward (branching) conversions half.hpp had before its branch-free form: the
// fast form must agree with them bit for bit.
std::uint16_t reference_f16(float f) {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t abs = x & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
    if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
    if (abs < 0x38800000u) {
        const std::uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
        const int shift = 126 - static_cast<int>(abs >> 23);
        if (shift > 24) return static_cast<std::uint16_t>(sign);
        const std::uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
        return static_cast<std::uint16_t>(sign | (q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u)));
    }
    std::uint32_t r = abs - 0x38000000u;
    r = (r + 0x0FFFu + ((r >> 13) & 1u)) >> 13;
    return static_cast<std::uint16_t>(sign | r);
}

std::uint32_t reference_widen_bits(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (exp == 0) {
        const float v = static_cast<float>(mant) * 0x1.0p-24f;
        return std::bit_cast<std::uint32_t>(sign ? -v : v);
    }
    if (exp == 31) return sign | 0x7F800000u | (mant << 13);
    return sign | ((exp + 112u) << 23) | (mant << 13);
}

TEST(Half, WidenMatchesTheReferenceForEveryF16) {
    for (std::uint32_t h = 0; h < 0x10000u; ++h)
        ASSERT_EQ(std::bit_cast<std::uint32_t>(optiq::f16_bits_to_float(static_cast<std::uint16_t>(h))),
                  reference_widen_bits(static_cast<std::uint16_t>(h)))
            << "f16 0x" << std::hex << h;
}

TEST(Half, NarrowMatchesTheReferenceAtEveryRoundingEdge) {
    // Every sign/exponent/top-10-mantissa combination with the 13 dropped bits at the rounding
    // edges (0, 1, just below/at/above half, all ones), plus a million random patterns.
    const std::uint32_t low[] = {0x0000u, 0x0001u, 0x0FFFu, 0x1000u, 0x1001u, 0x1FFFu};
    for (std::uint32_t hi = 0; hi < (1u << 19); ++hi)
        for (const std::uint32_t l : low) {
            const std::uint32_t bits = (hi << 13) | l;
            const float f = std::bit_cast<float>(bits);
            ASSERT_EQ(optiq::float_to_f16_bits(f), reference_f16(f)) << "f32 0x" << std::hex << bits;
        }
    optiq::Rng rng(3);
    for (int i = 0; i < 1000000; ++i) {
        const auto bits = static_cast<std::uint32_t>(rng.next_u64());
        const float f = std::bit_cast<float>(bits);
        ASSERT_EQ(optiq::float_to_f16_bits(f), reference_f16(f)) << "f32 0x" << std::hex << bits;
    }
}

TEST(Half, EveryF16ValueRoundTripsThroughFloat) {
    for (std::uint32_t h = 0; h < 0x10000u; ++h) {
        const auto bits = static_cast<std::uint16_t>(h);
        const float f = optiq::f16_bits_to_float(bits);
        if (std::isnan(f)) continue;
        ASSERT_EQ(optiq::float_to_f16_bits(f), bits) << "f16 0x" << std::hex << h;
    }
}

TEST(Half, KnownValues) {
    EXPECT_EQ(optiq::float_to_f16_bits(1.0f), 0x3C00u);
    EXPECT_EQ(optiq::float_to_f16_bits(-2.0f), 0xC000u);
    EXPECT_EQ(optiq::float_to_f16_bits(65504.0f), 0x7BFFu);
    EXPECT_EQ(optiq::float_to_f16_bits(65520.0f), 0x7C00u);            // rounds to inf
    EXPECT_EQ(optiq::float_to_f16_bits(5.9604645e-08f), 0x0001u);      // smallest subnormal
    EXPECT_EQ(optiq::float_to_f16_bits(2.98023224e-08f), 0x0000u);     // half of it: tie to even (0)
    EXPECT_EQ(optiq::float_to_f16_bits(1.0f + 0x1.0p-11f), 0x3C00u);   // tie -> even
    EXPECT_EQ(optiq::float_to_f16_bits(1.0f + 0x1.8p-11f), 0x3C01u);   // above tie -> up
    EXPECT_FLOAT_EQ(optiq::f16_bits_to_float(0x3555u), 0.33325195f);
}

TEST(Half, Bf16RoundsToNearestEven) {
    EXPECT_EQ(optiq::float_to_bf16_bits(1.0f), 0x3F80u);
    EXPECT_EQ(optiq::float_to_bf16_bits(1.0f + 0x1.0p-8f), 0x3F80u);   // tie -> even
    EXPECT_EQ(optiq::float_to_bf16_bits(1.0f + 0x1.8p-8f), 0x3F81u);
    EXPECT_EQ(optiq::bf16_bits_to_float(0xC040u), -3.0f);
}

}  // namespace

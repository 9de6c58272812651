#include "optiq/core/half.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

namespace {

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

#include "optiq/pack/aligned.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/pack/mlx_stream.hpp"

namespace {

using optiq::Aligned;

std::vector<std::uint32_t> pack_aligned(int bits, const std::vector<std::uint8_t>& codes) {
    const Aligned<> p(bits);
    std::vector<std::uint32_t> w(p.words_for(codes.size()), 0xDEADBEEFu);
    p.pack(codes, w);
    return w;
}

std::vector<std::uint8_t> iota(int n, int mod = 256) {
    std::vector<std::uint8_t> out;
    for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(i % mod));
    return out;
}

TEST(Aligned, ThreeBitTenCodesPerWord) {
    // Codes 0..7,0,1 fill bits 0..29 of word 0 (octal 1076543210 = 0x08FAC688), the top two bits
    // stay zero; code 10 starts word 1 at bit 0 rather than straddling.
    const auto codes = iota(32, 8);
    const std::vector<std::uint32_t> expect{0x08FAC688u, 0x1A23EB1Au, 0x2C688FACu, 0x0000003Eu};
    EXPECT_EQ(pack_aligned(3, codes), expect);
    std::vector<std::uint32_t> w(4);
    Aligned<3>{}.pack(codes, w);
    EXPECT_EQ(w, expect);
}

TEST(Aligned, FiveSixSevenBitLayouts) {
    EXPECT_EQ(pack_aligned(5, iota(32)),
              (std::vector<std::uint32_t>{0x0A418820u, 0x16A4A0E6u, 0x2307B9ACu, 0x2F6AD272u, 0x3BCDEB38u, 0x3FEu}));
    EXPECT_EQ(pack_aligned(6, iota(16)), (std::vector<std::uint32_t>{0x040C2040u, 0x09207185u, 0x0E34C2CAu, 0xFu}));
    EXPECT_EQ(pack_aligned(7, {127, 1, 2, 3, 4, 5, 6, 7, 8}),
              (std::vector<std::uint32_t>{0x006080FFu, 0x00E18284u, 0x8u}));
}

TEST(Aligned, PowerOfTwoWidthsEqualTheMlxStream) {
    optiq::Rng rng(11);
    for (int b : {1, 2, 4, 8}) {
        for (std::size_t n : {1u, 7u, 32u, 33u, 100u, 256u}) {
            std::vector<std::uint8_t> codes(n);
            for (auto& c : codes) c = static_cast<std::uint8_t>(rng.next_u64() >> (64 - b));
            const optiq::MlxStream<> s(b);
            std::vector<std::uint32_t> ws(s.words_for(n));
            s.pack(codes, ws);
            EXPECT_EQ(pack_aligned(b, codes), ws) << "b=" << b << " n=" << n;
        }
    }
}

TEST(Aligned, WordsFor) {
    const std::size_t per[9] = {0, 32, 16, 10, 8, 6, 5, 4, 4};
    for (int b = 1; b <= 8; ++b) {
        const Aligned<> p(b);
        EXPECT_EQ(p.codes_per_word(), per[b]);
        for (std::size_t n = 0; n < 200; ++n) EXPECT_EQ(p.words_for(n), (n + per[b] - 1) / per[b]);
    }
    EXPECT_EQ(Aligned<3>{}.words_for(128), 13u);  // MLX's stream needs 12
}

// Reference: code i in word i / per at bit (i % per) * b.
template <int B>
void check_round_trip(optiq::Rng& rng) {
    constexpr std::size_t per = 32 / B;
    for (std::size_t n = 0; n <= 150; ++n) {
        std::vector<std::uint8_t> codes(n);
        for (auto& c : codes) c = static_cast<std::uint8_t>(rng.next_u64() >> (64 - B));
        std::vector<std::uint32_t> ref((n + per - 1) / per, 0u);
        for (std::size_t i = 0; i < n; ++i) ref[i / per] |= static_cast<std::uint32_t>(codes[i]) << ((i % per) * B);
        std::vector<std::uint32_t> w(ref.size());
        Aligned<B>{}.pack(codes, w);
        ASSERT_EQ(w, ref) << "b=" << B << " n=" << n;
        ASSERT_EQ(pack_aligned(B, codes), ref) << "b=" << B << " n=" << n;
        std::vector<std::uint8_t> back(n, 0xFF), back_dyn(n, 0xFF);
        Aligned<B>{}.unpack(w, back);
        Aligned<>(B).unpack(w, back_dyn);
        ASSERT_EQ(back, codes) << "b=" << B << " n=" << n;
        ASSERT_EQ(back_dyn, codes) << "b=" << B << " n=" << n;
    }
}

TEST(Aligned, MatchesReferenceAndRoundTrips) {
    optiq::Rng rng(99);
    for (int rep = 0; rep < 3; ++rep) {
        check_round_trip<1>(rng);
        check_round_trip<2>(rng);
        check_round_trip<3>(rng);
        check_round_trip<4>(rng);
        check_round_trip<5>(rng);
        check_round_trip<6>(rng);
        check_round_trip<7>(rng);
        check_round_trip<8>(rng);
    }
}

TEST(Aligned, RejectsBadBitsSizesAndCodes) {
    EXPECT_THROW(Aligned<>(0), optiq::config_error);
    EXPECT_THROW(Aligned<>(9), optiq::config_error);
    const Aligned<> p(5);
    std::vector<std::uint8_t> codes(7, 31);
    std::vector<std::uint32_t> one(1), two(2), three(3);
    EXPECT_THROW(p.pack(codes, one), optiq::shape_error);
    EXPECT_THROW(p.pack(codes, three), optiq::shape_error);
    EXPECT_NO_THROW(p.pack(codes, two));
    EXPECT_THROW(p.unpack(one, codes), optiq::shape_error);
    codes[3] = 32;
    EXPECT_THROW(p.pack(codes, two), optiq::value_error);
}

}  // namespace

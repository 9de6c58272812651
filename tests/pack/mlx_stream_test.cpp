#include "optiq/pack/mlx_stream.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"

namespace {

using optiq::MlxStream;

std::vector<std::uint32_t> pack_dynamic(int bits, const std::vector<std::uint8_t>& codes) {
    const MlxStream<> p(bits);
    std::vector<std::uint32_t> w(p.words_for(codes.size()), 0xDEADBEEFu);
    p.pack(codes, w);
    return w;
}

template <int B>
std::vector<std::uint32_t> pack_static(const std::vector<std::uint8_t>& codes) {
    const MlxStream<B> p;
    std::vector<std::uint32_t> w(p.words_for(codes.size()), 0xDEADBEEFu);
    p.pack(codes, w);
    return w;
}

std::vector<std::uint8_t> repeat(std::vector<std::uint8_t> pattern, int times) {
    std::vector<std::uint8_t> out;
    for (int i = 0; i < times; ++i) out.insert(out.end(), pattern.begin(), pattern.end());
    return out;
}

std::vector<std::uint8_t> iota(int n) {
    std::vector<std::uint8_t> out;
    for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(i));
    return out;
}

// Hand-worked layouts. Code i sits at stream bits [i*b, (i+1)*b), LSB first.
TEST(MlxStream, OneBitLayout) {
    // 1,0,1,1,0,0,0,1 -> bits 0,2,3,7 -> 0x8D per byte; the 33rd code starts a second word.
    auto codes = repeat({1, 0, 1, 1, 0, 0, 0, 1}, 4);
    codes.push_back(1);
    const std::vector<std::uint32_t> expect{0x8D8D8D8Du, 0x00000001u};
    EXPECT_EQ(pack_dynamic(1, codes), expect);
    EXPECT_EQ(pack_static<1>(codes), expect);
}

TEST(MlxStream, TwoBitLayout) {
    // 0,1,2,3 -> 0b11'10'01'00 = 0xE4 per byte.
    const auto codes = repeat({0, 1, 2, 3}, 4);
    EXPECT_EQ(pack_dynamic(2, codes), (std::vector<std::uint32_t>{0xE4E4E4E4u}));
    EXPECT_EQ(pack_static<2>(codes), (std::vector<std::uint32_t>{0xE4E4E4E4u}));
}

TEST(MlxStream, ThreeBitCodesCrossWords) {
    // Codes 0..7 fill 24 bits: octal 076543210 = 0xFAC688. Code 8 (=0) and code 9 (=1) follow at
    // bits 24 and 27 (0x08000000), and code 10 (=2 = 0b010) straddles: its bit 1 lands on bit 31
    // of word 0, its bit 2 on bit 0 of word 1.
    const auto codes = repeat(iota(8), 4);  // 32 codes -> exactly 3 words
    const std::vector<std::uint32_t> expect{0x88FAC688u, 0xC688FAC6u, 0xFAC688FAu};
    EXPECT_EQ(pack_dynamic(3, codes), expect);
    EXPECT_EQ(pack_static<3>(codes), expect);
    // The first 8 codes alone: one partially filled word, padding bits zero.
    EXPECT_EQ(pack_dynamic(3, iota(8)), (std::vector<std::uint32_t>{0x00FAC688u}));
}

TEST(MlxStream, FourBitLayout) {
    const std::vector<std::uint32_t> expect{0x76543210u, 0xFEDCBA98u};
    EXPECT_EQ(pack_dynamic(4, iota(16)), expect);
    EXPECT_EQ(pack_static<4>(iota(16)), expect);
}

TEST(MlxStream, FiveBitLayout) {
    // 32 codes 0..31 -> 5 words; e.g. code 6 (0b00110) occupies bits 30..34: bits 31 of word 0
    // (0x8...) and 0 of word 1 hold its low two bits "10".
    const std::vector<std::uint32_t> expect{0x8A418820u, 0xC5A92839u, 0xCA307B9Au, 0x38BDAB49u, 0xFFBBCDEBu};
    EXPECT_EQ(pack_dynamic(5, iota(32)), expect);
    EXPECT_EQ(pack_static<5>(iota(32)), expect);
}

TEST(MlxStream, SixBitLayout) {
    // 16 codes 0..15 -> 96 bits = 3 words; code 5 straddles words 0 and 1 (bits 30..35).
    const std::vector<std::uint32_t> expect{0x440C2040u, 0xA2481C61u, 0x3CE34C2Cu};
    EXPECT_EQ(pack_dynamic(6, iota(16)), expect);
    EXPECT_EQ(pack_static<6>(iota(16)), expect);
}

TEST(MlxStream, SevenBitLayout) {
    const std::vector<std::uint8_t> codes{127, 1, 2, 3, 4, 5, 6, 7, 8};
    const std::vector<std::uint32_t> expect{0x406080FFu, 0x080E1828u};
    EXPECT_EQ(pack_dynamic(7, codes), expect);
    EXPECT_EQ(pack_static<7>(codes), expect);
}

TEST(MlxStream, EightBitLayout) {
    const std::vector<std::uint8_t> codes{0, 1, 2, 3, 0xAB, 0xCD};
    const std::vector<std::uint32_t> expect{0x03020100u, 0x0000CDABu};
    EXPECT_EQ(pack_dynamic(8, codes), expect);
    EXPECT_EQ(pack_static<8>(codes), expect);
}

TEST(MlxStream, WordsForIsCeilOfBits) {
    for (int b = 1; b <= 8; ++b) {
        const MlxStream<> p(b);
        EXPECT_EQ(p.bits(), b);
        for (std::size_t n = 0; n < 300; ++n) EXPECT_EQ(p.words_for(n), (n * b + 31) / 32) << "b=" << b << " n=" << n;
    }
    EXPECT_EQ(MlxStream<3>{}.words_for(4096), 384u);  // 4096*3/32
    EXPECT_EQ(MlxStream<5>{}.words_for(1), 1u);
    EXPECT_EQ(MlxStream<6>{}.words_for(16), 3u);
}

// A bit-by-bit reference: stream bit (i*b + k) is bit k of code i.
std::vector<std::uint32_t> reference_stream(const std::vector<std::uint8_t>& codes, int b) {
    std::vector<std::uint32_t> w((codes.size() * b + 31) / 32, 0u);
    for (std::size_t i = 0; i < codes.size(); ++i)
        for (int k = 0; k < b; ++k) {
            const std::size_t pos = i * b + k;
            w[pos / 32] |= static_cast<std::uint32_t>((codes[i] >> k) & 1u) << (pos % 32);
        }
    return w;
}

template <int B>
void check_round_trip(optiq::Rng& rng) {
    for (std::size_t n = 0; n <= 200; ++n) {
        std::vector<std::uint8_t> codes(n);
        for (auto& c : codes) c = static_cast<std::uint8_t>(rng.next_u64() >> (64 - B));
        const auto ref = reference_stream(codes, B);
        ASSERT_EQ(pack_static<B>(codes), ref) << "b=" << B << " n=" << n;
        ASSERT_EQ(pack_dynamic(B, codes), ref) << "b=" << B << " n=" << n;
        std::vector<std::uint8_t> back(n, 0xFF), back_dyn(n, 0xFF);
        MlxStream<B>{}.unpack(ref, back);
        MlxStream<>(B).unpack(ref, back_dyn);
        ASSERT_EQ(back, codes) << "b=" << B << " n=" << n;
        ASSERT_EQ(back_dyn, codes) << "b=" << B << " n=" << n;
    }
}

TEST(MlxStream, MatchesBitwiseReferenceAndRoundTrips) {
    optiq::Rng rng(2024);
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

TEST(MlxStream, AllOnesWordsGiveMaxCodes) {
    // All-ones words decode to all-max codes for every width (no stray masking).
    for (int b = 1; b <= 8; ++b) {
        const MlxStream<> p(b);
        const std::size_t n = 96;
        std::vector<std::uint32_t> w(p.words_for(n), 0xFFFFFFFFu);
        std::vector<std::uint8_t> codes(n);
        p.unpack(w, codes);
        for (const auto c : codes) ASSERT_EQ(c, (1u << b) - 1u) << "b=" << b;
    }
}

TEST(MlxStream, RejectsBadBitsSizesAndCodes) {
    EXPECT_THROW(MlxStream<>(0), optiq::config_error);
    EXPECT_THROW(MlxStream<>(9), optiq::config_error);
    EXPECT_THROW(MlxStream<>(-1), optiq::config_error);
    const MlxStream<> p(3);
    std::vector<std::uint8_t> codes(10, 1);
    std::vector<std::uint32_t> small(0), big(2), right(1);
    EXPECT_THROW(p.pack(codes, small), optiq::shape_error);
    EXPECT_THROW(p.pack(codes, big), optiq::shape_error);
    EXPECT_NO_THROW(p.pack(codes, right));
    EXPECT_THROW(p.unpack(big, codes), optiq::shape_error);
    codes[7] = 8;  // needs 4 bits
    EXPECT_THROW(p.pack(codes, right), optiq::value_error);
    try {
        p.pack(codes, right);
    } catch (const optiq::value_error& e) {
        EXPECT_NE(std::string(e.what()).find("index 7"), std::string::npos) << e.what();
    }
}

}  // namespace

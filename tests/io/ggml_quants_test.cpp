#include "optiq/io/ggml_quants.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include "io_test_util.hpp"

namespace {

using namespace optiq::io;
using optiq::f16_bits_to_float;
using optiq::float_to_f16_bits;

// ---- ggml-quants.c's dequantize_row_* loops, transcribed as a second, independent reference ----

float h(const std::uint8_t* p) {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return f16_bits_to_float(v);
}

void ref_q4_0(const std::uint8_t* x, float* y) {
    const float d = h(x);
    for (int j = 0; j < 16; ++j) {
        const int x0 = (x[2 + j] & 0x0F) - 8, x1 = (x[2 + j] >> 4) - 8;
        y[j] = static_cast<float>(x0) * d;
        y[j + 16] = static_cast<float>(x1) * d;
    }
}
void ref_q4_1(const std::uint8_t* x, float* y) {
    const float d = h(x), m = h(x + 2);
    for (int j = 0; j < 16; ++j) {
        const float a = static_cast<float>(x[4 + j] & 0x0F) * d, b = static_cast<float>(x[4 + j] >> 4) * d;
        y[j] = a + m;
        y[j + 16] = b + m;
    }
}
void ref_q5_0(const std::uint8_t* x, float* y) {
    const float d = h(x);
    std::uint32_t qh;
    std::memcpy(&qh, x + 2, 4);
    for (int j = 0; j < 16; ++j) {
        const std::uint8_t xh0 = static_cast<std::uint8_t>(((qh >> (j + 0)) << 4) & 0x10);
        const std::uint8_t xh1 = static_cast<std::uint8_t>(((qh >> (j + 12))) & 0x10);
        const int x0 = ((x[6 + j] & 0x0F) | xh0) - 16, x1 = ((x[6 + j] >> 4) | xh1) - 16;
        y[j] = static_cast<float>(x0) * d;
        y[j + 16] = static_cast<float>(x1) * d;
    }
}
void ref_q8_0(const std::uint8_t* x, float* y) {
    const float d = h(x);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(x[2 + j])) * d;
}
void ref_q2_k(const std::uint8_t* x, float* y) {
    const std::uint8_t* scales = x;
    const std::uint8_t* q = x + 16;
    const float d = h(x + 80), mn = h(x + 82);
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            int sc = scales[is++];
            float dl = d * static_cast<float>(sc & 0xF), ml = mn * static_cast<float>(sc >> 4);
            for (int l = 0; l < 16; ++l) {
                const float p = dl * static_cast<float>(static_cast<std::int8_t>((q[l] >> shift) & 3));
                *y++ = p - ml;
            }
            sc = scales[is++];
            dl = d * static_cast<float>(sc & 0xF), ml = mn * static_cast<float>(sc >> 4);
            for (int l = 0; l < 16; ++l) {
                const float p = dl * static_cast<float>(static_cast<std::int8_t>((q[l + 16] >> shift) & 3));
                *y++ = p - ml;
            }
            shift += 2;
        }
        q += 32;
    }
}
void get_scale_min_k4(int j, const std::uint8_t* q, int* d, int* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}
void ref_q4_k(const std::uint8_t* x, float* y) {
    const float d = h(x), mn = h(x + 2);
    const std::uint8_t* scales = x + 4;
    const std::uint8_t* q = x + 16;
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
        int sc, m;
        get_scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * static_cast<float>(sc), m1 = mn * static_cast<float>(m);
        get_scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * static_cast<float>(sc), m2 = mn * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) {
            const float p = d1 * static_cast<float>(q[l] & 0xF);
            *y++ = p - m1;
        }
        for (int l = 0; l < 32; ++l) {
            const float p = d2 * static_cast<float>(q[l] >> 4);
            *y++ = p - m2;
        }
        q += 32;
        is += 2;
    }
}
void ref_q5_k(const std::uint8_t* x, float* y) {
    const float d = h(x), mn = h(x + 2);
    const std::uint8_t* scales = x + 4;
    const std::uint8_t* qh = x + 16;
    const std::uint8_t* ql = x + 48;
    int is = 0;
    std::uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
        int sc, m;
        get_scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * static_cast<float>(sc), m1 = mn * static_cast<float>(m);
        get_scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * static_cast<float>(sc), m2 = mn * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) {
            const float p = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0));
            *y++ = p - m1;
        }
        for (int l = 0; l < 32; ++l) {
            const float p = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0));
            *y++ = p - m2;
        }
        ql += 32;
        is += 2;
        u1 = static_cast<std::uint8_t>(u1 << 2);
        u2 = static_cast<std::uint8_t>(u2 << 2);
    }
}
void ref_q6_k(const std::uint8_t* x, float* y) {
    const std::uint8_t* ql = x;
    const std::uint8_t* qh = x + 128;
    const auto* sc = reinterpret_cast<const std::int8_t*>(x + 192);
    const float d = h(x + 208);
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = static_cast<std::int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = static_cast<std::int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = static_cast<std::int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = static_cast<std::int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
            y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
            y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
            y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

/// Random blocks with finite f16 scale fields at the given byte offsets.
std::vector<std::uint8_t> random_blocks(std::mt19937& rng, std::size_t blocks, std::size_t type_size,
                                        std::initializer_list<std::size_t> f16_fields) {
    std::vector<std::uint8_t> b(blocks * type_size);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    for (std::size_t i = 0; i < blocks; ++i)
        for (std::size_t off : f16_fields) {
            const std::uint16_t v = float_to_f16_bits(u(rng) * 0.01f);
            std::memcpy(&b[i * type_size + off], &v, 2);
        }
    return b;
}

struct Case {
    GgmlType type;
    void (*ref)(const std::uint8_t*, float*);
    std::initializer_list<std::size_t> f16_fields;
};

TEST(GgmlQuants, EveryKernelMatchesGgmlsReferenceLoopsBitForBit) {
    const Case cases[] = {
        {GgmlType::q4_0, ref_q4_0, {0}},    {GgmlType::q4_1, ref_q4_1, {0, 2}},   {GgmlType::q5_0, ref_q5_0, {0}},
        {GgmlType::q8_0, ref_q8_0, {0}},    {GgmlType::q2_k, ref_q2_k, {80, 82}}, {GgmlType::q4_k, ref_q4_k, {0, 2}},
        {GgmlType::q5_k, ref_q5_k, {0, 2}}, {GgmlType::q6_k, ref_q6_k, {208}},
    };
    std::mt19937 rng(7);
    for (const Case& c : cases) {
        const auto tr = *ggml_type_traits(static_cast<std::uint32_t>(c.type));
        const std::size_t blocks = 9;
        const auto bytes = random_blocks(rng, blocks, tr.type_size, c.f16_fields);
        std::vector<float> got(blocks * tr.block_size), want(got.size());
        dequantize(c.type, std::as_bytes(std::span(bytes)), got);
        for (std::size_t i = 0; i < blocks; ++i) c.ref(&bytes[i * tr.type_size], &want[i * tr.block_size]);
        for (std::size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(std::bit_cast<std::uint32_t>(got[i]), std::bit_cast<std::uint32_t>(want[i]))
                << tr.name << " element " << i << ": " << got[i] << " vs " << want[i];
    }
}

TEST(GgmlQuants, HandComputedBlocks) {
    // Q4_1: d = 0.5, m = -1, nibbles: byte j = (j & 0xF) | (15 - j) << 4.
    std::vector<std::uint8_t> q41(20);
    const std::uint16_t d = float_to_f16_bits(0.5f), m = float_to_f16_bits(-1.f);
    std::memcpy(&q41[0], &d, 2);
    std::memcpy(&q41[2], &m, 2);
    for (int j = 0; j < 16; ++j) q41[4 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
    std::vector<float> y(32);
    dequantize(GgmlType::q4_1, std::as_bytes(std::span(q41)), y);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], 0.5f * static_cast<float>(j) - 1.f);
        EXPECT_EQ(y[j + 16], 0.5f * static_cast<float>(15 - j) - 1.f);
    }
    // Q8_0: d = 0.25, q = -128, -1, 0, 1, 127, ...
    std::vector<std::uint8_t> q80(34, 0);
    const std::uint16_t dq = float_to_f16_bits(0.25f);
    std::memcpy(&q80[0], &dq, 2);
    q80[2] = 0x80, q80[3] = 0xFF, q80[4] = 0, q80[5] = 1, q80[6] = 127;
    dequantize(GgmlType::q8_0, std::as_bytes(std::span(q80)), y);
    EXPECT_EQ(y[0], -32.f);
    EXPECT_EQ(y[1], -0.25f);
    EXPECT_EQ(y[2], 0.f);
    EXPECT_EQ(y[3], 0.25f);
    EXPECT_EQ(y[4], 31.75f);
    // Q4_0: d = 2, byte 0 = 0x0F -> element 0 = (15-8)*2 = 14, element 16 = (0-8)*2 = -16.
    std::vector<std::uint8_t> q40(18, 0x88);
    const std::uint16_t d2 = float_to_f16_bits(2.f);
    std::memcpy(&q40[0], &d2, 2);
    q40[2] = 0x0F;
    dequantize(GgmlType::q4_0, std::as_bytes(std::span(q40)), y);
    EXPECT_EQ(y[0], 14.f);
    EXPECT_EQ(y[16], -16.f);
    EXPECT_EQ(y[1], 0.f);
    // Q6_K: all codes 32 (q = 0) except element 0: ql low nibble 1, qh bits 0-1 = 2 -> 33 - 32 = 1;
    // scale[0] = -3, d = 0.5 -> -1.5.
    std::vector<std::uint8_t> q6(210, 0);
    for (int i = 0; i < 64; ++i) q6[128 + i] = 0xAA;  // every 2-bit high part = 2 -> code 32
    q6[0] = 0x01;
    q6[192] = static_cast<std::uint8_t>(-3);
    const std::uint16_t dh = float_to_f16_bits(0.5f);
    std::memcpy(&q6[208], &dh, 2);
    std::vector<float> y6(256);
    dequantize(GgmlType::q6_k, std::as_bytes(std::span(q6)), y6);
    EXPECT_EQ(y6[0], -1.5f);
    for (int i = 1; i < 256; ++i) ASSERT_EQ(y6[i], 0.f) << i;
}

TEST(GgmlQuants, PlainTypes) {
    const float f[] = {1.5f, -0.f, 3e38f};
    std::vector<float> y(3);
    dequantize(GgmlType::f32, std::as_bytes(std::span(f)), y);
    EXPECT_EQ(y, (std::vector<float>{1.5f, -0.f, 3e38f}));
    const std::uint16_t hf[] = {0x3C00, 0x0001, 0xFC00};
    dequantize(GgmlType::f16, std::as_bytes(std::span(hf)), y);
    EXPECT_EQ(y[0], 1.f);
    EXPECT_EQ(y[1], 0x1.0p-24f);
    EXPECT_EQ(y[2], -std::numeric_limits<float>::infinity());
    const std::uint16_t bf[] = {0x3F80, 0xC040, 0x0000};
    dequantize(GgmlType::bf16, std::as_bytes(std::span(bf)), y);
    EXPECT_EQ(y, (std::vector<float>{1.f, -3.f, 0.f}));
    const std::int32_t i32[] = {-7, 0, 16777216};
    dequantize(GgmlType::i32, std::as_bytes(std::span(i32)), y);
    EXPECT_EQ(y, (std::vector<float>{-7.f, 0.f, 16777216.f}));
}

TEST(GgmlQuants, ErrorsNameTheTypeAndSizes) {
    std::vector<std::byte> b(18);
    std::vector<float> y(32);
    using optiq::io::test::expect_error;
    expect_error<optiq::shape_error>([&] { dequantize(GgmlType::q4_1, b, y); }, {"Q4_1", "20", "18"});
    std::vector<float> y31(31);
    expect_error<optiq::shape_error>([&] { dequantize(GgmlType::q4_0, b, y31); }, {"Q4_0", "31", "32"});
    expect_error<optiq::config_error>([&] { dequantize(GgmlType::iq2_xxs, b, y); }, {"IQ2_XXS"});
    expect_error<optiq::config_error>([&] { dequantize(static_cast<GgmlType>(99), b, y); }, {"99"});
    EXPECT_EQ(ggml_row_bytes(GgmlType::q4_k, 512), 288u);
    EXPECT_FALSE(ggml_row_bytes(GgmlType::q4_k, 100).has_value());
    // Byte counts past SIZE_MAX are nullopt, not wrapped (F32 x 2^62 once gave 0 bytes).
    EXPECT_FALSE(ggml_row_bytes(GgmlType::f32, std::size_t{1} << 62).has_value());
    EXPECT_FALSE(ggml_row_bytes(GgmlType::i64, std::size_t{1} << 61).has_value());
    EXPECT_EQ(ggml_row_bytes(GgmlType::f32, std::size_t{1} << 61), std::size_t{1} << 63);
    EXPECT_EQ(ggml_type_name(GgmlType::q6_k), "Q6_K");
}

}  // namespace

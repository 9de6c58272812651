#include "optiq/io/dtype.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "io_test_util.hpp"

namespace {

using namespace optiq::io;

TEST(DType, NamesAndSizesFollowSafetensors) {
    EXPECT_EQ(dtype_name(DType::bf16), "BF16");
    EXPECT_EQ(dtype_name(DType::boolean), "BOOL");
    EXPECT_EQ(dtype_name(DType::f8_e4m3), "F8_E4M3");
    EXPECT_EQ(dtype_size(DType::f64), 8u);
    EXPECT_EQ(dtype_size(DType::bf16), 2u);
    EXPECT_EQ(dtype_size(DType::boolean), 1u);
    EXPECT_EQ(dtype_size(DType::u32), 4u);
    for (DType t : kAllDTypes) {
        EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
        EXPECT_GT(dtype_size(t), 0u);
    }
    EXPECT_FALSE(dtype_from_name("f32").has_value());  // names are case-sensitive, as in the format
    EXPECT_FALSE(dtype_from_name("F4").has_value());
    EXPECT_TRUE(is_floating(DType::bf16));
    EXPECT_FALSE(is_floating(DType::u32));
}

template <class T>
std::vector<float> convert(DType t, std::vector<T> v) {
    std::vector<float> out(v.size());
    convert_to_float(t, reinterpret_cast<const std::byte*>(v.data()), v.size(), out.data());
    return out;
}

TEST(DType, ConvertsEveryTypeToFloat) {
    EXPECT_EQ(convert<std::uint8_t>(DType::boolean, {0, 1, 5}), (std::vector<float>{0, 1, 1}));
    EXPECT_EQ(convert<std::int8_t>(DType::i8, {-128, 127}), (std::vector<float>{-128, 127}));
    EXPECT_EQ(convert<std::uint16_t>(DType::u16, {65535}), (std::vector<float>{65535}));
    EXPECT_EQ(convert<std::int16_t>(DType::i16, {-32768}), (std::vector<float>{-32768}));
    EXPECT_EQ(convert<std::uint16_t>(DType::f16, {0x3C00, 0x7BFF, 0x8001}),
              (std::vector<float>{1.f, 65504.f, -0x1.0p-24f}));
    EXPECT_EQ(convert<std::uint16_t>(DType::bf16, {0x3F80, 0xC2F7}), (std::vector<float>{1.f, -123.5f}));
    EXPECT_EQ(convert<std::int32_t>(DType::i32, {-7}), (std::vector<float>{-7}));
    EXPECT_EQ(convert<std::uint32_t>(DType::u32, {4000000000u}), (std::vector<float>{4e9f}));
    EXPECT_EQ(convert<std::int64_t>(DType::i64, {-(1ll << 40)}), (std::vector<float>{-1099511627776.f}));
    EXPECT_EQ(convert<std::uint64_t>(DType::u64, {3}), (std::vector<float>{3}));
    EXPECT_EQ(convert<double>(DType::f64, {0.1}), (std::vector<float>{0.1f}));
    EXPECT_EQ(convert<float>(DType::f32, {-0.f, 1e-45f}), (std::vector<float>{-0.f, 1e-45f}));
    // FP8 E4M3FN: 0x38 = 1.0, 0x7E = 448 (largest), 0x01 = 2^-9, 0xC0 = -2, 0x7F = NaN.
    const auto e4 = convert<std::uint8_t>(DType::f8_e4m3, {0x38, 0x7E, 0x01, 0xC0, 0x7F});
    EXPECT_EQ(e4[0], 1.f);
    EXPECT_EQ(e4[1], 448.f);
    EXPECT_EQ(e4[2], 0x1.0p-9f);
    EXPECT_EQ(e4[3], -2.f);
    EXPECT_TRUE(std::isnan(e4[4]));
    // FP8 E5M2: 0x3C = 1.0, 0x7B = 57344, 0x7C = inf.
    const auto e5 = convert<std::uint8_t>(DType::f8_e5m2, {0x3C, 0x7B, 0x7C});
    EXPECT_EQ(e5[0], 1.f);
    EXPECT_EQ(e5[1], 57344.f);
    EXPECT_TRUE(std::isinf(e5[2]));
}

TEST(TensorView, ToFloatChecksTheOutputSize) {
    const std::uint16_t h[] = {0x4000, 0xC000};
    TensorView t{"x", DType::f16, {2, 1}, std::as_bytes(std::span(h))};
    EXPECT_EQ(t.numel(), 2u);
    EXPECT_EQ(t.rank(), 2u);
    EXPECT_EQ(t.to_float(), (std::vector<float>{2.f, -2.f}));
    std::vector<float> small(1);
    optiq::io::test::expect_error<optiq::shape_error>([&] { t.to_float(small); }, {"'x'", "2", "1"});
    EXPECT_EQ(shape_string(t.shape), "[2, 1]");
    EXPECT_EQ(shape_string({}), "[]");
    EXPECT_EQ(numel({}), 1u);
}

TEST(DType, OverflowCheck) {
    std::uint64_t r = 0;
    EXPECT_FALSE(detail::mul_overflows(1ull << 31, 1ull << 32, r));
    EXPECT_EQ(r, 1ull << 63);
    EXPECT_TRUE(detail::mul_overflows(1ull << 32, 1ull << 32, r));
    EXPECT_FALSE(detail::mul_overflows(0, ~0ull, r));
    EXPECT_EQ(r, 0u);
}

}  // namespace

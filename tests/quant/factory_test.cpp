#include "optiq/quant/factory.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "optiq/quant/evaluate.hpp"

namespace {

double stored_bits_per_coord(const std::string& spec, std::size_t d = 128, std::size_t n = 64) {
    const auto q = optiq::make_quantizer(spec, d, 1);
    return q.encode(optiq::random_unit_vectors(n, d, 2)).bits_per_coord();
}

// Storage accounting, worked by hand for d = 128 with f16 side data.
TEST(Factory, EverySpecStoresTheBitsItPromises) {
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("tq_mse:4"), 4 + 16.0 / 128);              // codes + norm
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("tq_mse:3:haar:f32"), 3 + 32.0 / 128);      // f32 norm
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("tq_prod:4"), 3 + 1 + 32.0 / 128);          // 3-bit MSE + 128 signs + norm, gamma
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("tq_prod:4:m64"), 3 + 0.5 + 32.0 / 128);    // 64 sketch rows
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("qjl"), 1 + 16.0 / 128);
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("qjl:2"), 2 + 16.0 / 128);                  // m = 2d rows
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("rvq:2"), 4 + 16.0 / 128);                  // two 2-bit stages + norm
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("polar:4,2,2,2", 256), 3.875);              // the paper's accounting
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("kivi:2"), 2 + 2 * 16.0 / 32);               // per-channel scale+zero per 32 tokens
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("kivi:2:values:g32"), 2 + 2 * 16.0 / 32);    // per-token, 32-channel groups
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("affine:4:g64"), 4 + 32.0 / 64);            // MLX: scale + bias per group
    EXPECT_DOUBLE_EQ(stored_bits_per_coord("affine:8:g32:bf16"), 8 + 32.0 / 32);
}

TEST(Factory, BuildsTheNamedTypes) {
    EXPECT_NE(optiq::make_quantizer("tq_mse:4", 64, 1).target<optiq::TurboQuantMSE<>>(), nullptr);
    EXPECT_NE((optiq::make_quantizer("tq_mse:4:haar", 64, 1).target<optiq::TurboQuantMSE<optiq::dynamic_bits, optiq::HaarRotation>>()), nullptr);
    EXPECT_NE(optiq::make_quantizer("tq_prod:2", 64, 1).target<optiq::TurboQuantProd<>>(), nullptr);
    EXPECT_NE(optiq::make_quantizer("rvq:1", 64, 1).target<optiq::RVQ<>>(), nullptr);
    EXPECT_NE(optiq::make_quantizer("kivi:4:values", 64, 1).target<optiq::KiviValues>(), nullptr);
    EXPECT_NE(optiq::make_quantizer("affine:3:g32", 64, 1).target<optiq::MlxAffine>(), nullptr);
    const auto p = optiq::make_quantizer("polar:3:l2", 64, 1);
    ASSERT_NE(p.target<optiq::PolarQuant<>>(), nullptr);
    const auto lb = p.target<optiq::PolarQuant<>>()->level_bits();
    EXPECT_EQ(std::vector<int>(lb.begin(), lb.end()), (std::vector<int>{3, 3}));
    EXPECT_EQ(optiq::make_quantizer("tq_mse:2", 64, 1).spec(), "tq_mse:2");
    const auto p2 = optiq::make_quantizer("polar:4/2/2/2", 64, 1);
    const auto lb2 = p2.target<optiq::PolarQuant<>>()->level_bits();
    EXPECT_EQ(std::vector<int>(lb2.begin(), lb2.end()), (std::vector<int>{4, 2, 2, 2}));
}

TEST(Factory, SameSpecAndSeedGiveTheSameCodes) {
    const auto x = optiq::random_unit_vectors(16, 64, 3);
    for (const char* spec : {"tq_mse:3", "tq_prod:3", "qjl", "rvq:2", "polar:3"}) {
        const auto a = optiq::make_quantizer(spec, 64, 9).encode(x);
        const auto b = optiq::make_quantizer(spec, 64, 9).encode(x);
        const auto c = optiq::make_quantizer(spec, 64, 10).encode(x);
        EXPECT_EQ(a.words, b.words) << spec;
        EXPECT_NE(a.words, c.words) << spec << ": the seed must change the rotation or sketch";
    }
}

TEST(Factory, BadSpecsNameTheProblem) {
    auto message = [](const std::string& spec) -> std::string {
        try {
            (void)optiq::make_quantizer(spec, 128, 1);
        } catch (const optiq::config_error& e) {
            return e.what();
        } catch (const optiq::error& e) {
            return std::string("wrong error type: ") + e.what();
        }
        return "no error";
    };
    EXPECT_NE(message("nosuch:4").find("unknown method \"nosuch\""), std::string::npos) << message("nosuch:4");
    EXPECT_NE(message("tq_mse").find("needs a bit width"), std::string::npos) << message("tq_mse");
    EXPECT_NE(message("tq_mse:4:bogus").find("unknown option \"bogus\""), std::string::npos) << message("tq_mse:4:bogus");
    EXPECT_NE(message("affine:4:g0").find("group size"), std::string::npos) << message("affine:4:g0");
    EXPECT_NE(message("tq_mse:4,2").find("one bit width"), std::string::npos) << message("tq_mse:4,2");
    EXPECT_NE(message("tq_mse:9").find("9"), std::string::npos) << message("tq_mse:9");
    EXPECT_NE(message("").find("no method name"), std::string::npos) << message("");
    EXPECT_THROW((void)optiq::make_quantizer("affine:4:g48", 128, 1), optiq::error);  // 128 % 48 != 0
}

}  // namespace

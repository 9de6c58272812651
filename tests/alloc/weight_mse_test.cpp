#include "optiq/alloc/sensitivity/weight_mse.hpp"

#include <gtest/gtest.h>

#include <random>

#include "optiq/alloc/concepts.hpp"
#include "optiq/alloc/solver/exact.hpp"
#include "optiq/io/mmap.hpp"

namespace {

using namespace optiq::alloc;
using optiq::io::DType;
using optiq::io::TensorView;

static_assert(optiq::Sensitivity<WeightMSESensitivity>);

struct Weights {
    std::vector<std::vector<std::byte>> bytes;
    std::vector<WeightUnit> units;
    void add(std::string name, std::size_t rows, std::size_t cols, float sigma, DType dtype, std::uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> n(0.0f, sigma);
        std::vector<std::byte> b(rows * cols * optiq::io::dtype_size(dtype));
        for (std::size_t i = 0; i < rows * cols; ++i) {
            const float v = n(rng);
            if (dtype == DType::f32) optiq::io::detail::store_le<float>(b.data() + 4 * i, v);
            else optiq::io::detail::store_le<std::uint16_t>(b.data() + 2 * i, optiq::float_to_bf16_bits(v));
        }
        bytes.push_back(std::move(b));
        units.push_back({name, TensorView{name + ".weight", dtype, {rows, cols}, bytes.back()}});
    }
};

TEST(WeightMSESensitivity, CostIsTheQuantizationErrorOfMlxAffine) {
    Weights w;
    w.add("model.layers.0.self_attn.q_proj", 8, 64, 1.0f, DType::f32, 1);
    w.add("model.layers.1.mlp.up_proj", 16, 128, 0.1f, DType::bf16, 2);
    w.add("model.layers.1.mlp.down_proj", 128, 48, 0.1f, DType::f32, 3);  // 48 % 64: skipped
    const WeightMSESensitivity s("toy", w.units);
    ASSERT_EQ(s.skipped(), (std::vector<std::string>{"model.layers.1.mlp.down_proj"}));
    const std::vector<int> bits = {2, 4, 8, 16};
    const CostTable t = s.measure(bits);
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t.unit(0).param_count, 512u);
    EXPECT_EQ(t.unit(1).param_count, 2048u);
    EXPECT_EQ(t.unit(1).kind, UnitKind::mlp);
    // Unit 0 recomputed by hand through mlx::quantize / dequantize.
    const std::vector<float> x = w.units[0].weight.to_float();
    for (std::size_t c = 0; c < 3; ++c) {
        const auto y = optiq::mlx::dequantize(optiq::mlx::quantize(x, {8, 64}, 64, bits[c]));
        double sse = 0;
        for (std::size_t i = 0; i < x.size(); ++i) sse += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
        EXPECT_DOUBLE_EQ(t.cost(0, c), sse);
    }
    EXPECT_EQ(t.cost(0, 3), 0.0);
    // Each extra bit cuts the error by about 4x for Gaussian weights; 2 -> 4 bits at least 8x,
    // 4 -> 8 bits at least 100x; unit 1 (sigma 0.1, 4x params) is on a 100x smaller scale per weight.
    for (std::size_t u = 0; u < 2; ++u) {
        EXPECT_GT(t.cost(u, 0), 8 * t.cost(u, 1));
        EXPECT_GT(t.cost(u, 1), 100 * t.cost(u, 2));
    }
    EXPECT_LT(t.cost(1, 1) / 2048.0, t.cost(0, 1) / 512.0 / 50.0);
    // relative normalisation: sse / sum w^2, about 0.01 at 4 bits for a Gaussian with g = 64.
    const CostTable r = WeightMSESensitivity("toy", w.units, {64, WeightMSESensitivity::Normalization::relative}).measure(bits);
    EXPECT_GT(r.cost(0, 1), 0.003);
    EXPECT_LT(r.cost(0, 1), 0.03);
    // The knapsack over it: at 6 bpw the larger (cheaper per weight) unit gets fewer bits.
    const Allocation a = ExactKnapsack{}.solve(t, 6.0);
    EXPECT_LE(a.bpw, 6.0);
}

TEST(WeightMSESensitivity, CacheKeyChangesWithSettingsAndShapes) {
    Weights w;
    w.add("model.layers.0.mlp.up_proj", 4, 64, 1.0f, DType::f32, 1);
    const std::string k = WeightMSESensitivity("m", w.units).cache_key();
    EXPECT_EQ(k, WeightMSESensitivity("m", w.units).cache_key());
    EXPECT_NE(k, WeightMSESensitivity("m2", w.units).cache_key());
    EXPECT_NE(k, WeightMSESensitivity("m", w.units, {32, WeightMSESensitivity::Normalization::total}).cache_key());
    Weights w2;
    w2.add("model.layers.0.mlp.up_proj", 8, 64, 1.0f, DType::f32, 1);
    EXPECT_NE(k, WeightMSESensitivity("m", w2.units).cache_key());
    EXPECT_THROW((void)WeightMSESensitivity("m", w.units).measure(std::vector<int>{4, 7}), optiq::config_error);
}

}  // namespace

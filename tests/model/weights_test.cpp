#include "optiq/model/weights.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model_test_util.hpp"
#include "optiq/core/rng.hpp"

namespace optiq::model::test {
namespace {

std::vector<float> normals(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
    Rng r(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(r.normal()) * scale;
    return v;
}

/// y = x W^T (+ b) in double from float weights.
std::vector<double> naive(const std::vector<float>& w, const std::vector<float>& x, std::size_t n, std::size_t out,
                          std::size_t in, const std::vector<float>& b = {}) {
    std::vector<double> y(n * out);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t r = 0; r < out; ++r) {
            double s = b.empty() ? 0.0 : b[r];
            for (std::size_t c = 0; c < in; ++c) s += static_cast<double>(w[r * in + c]) * x[t * in + c];
            y[t * out + r] = s;
        }
    return y;
}

/// Max |a - b| / (Σ_c |w||x| of that output): a rounding-level bound for float accumulation.
double max_rel(const std::vector<float>& got, const std::vector<double>& want, const std::vector<float>& w,
               const std::vector<float>& x, std::size_t n, std::size_t out, std::size_t in) {
    double m = 0.0;
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t r = 0; r < out; ++r) {
            double mag = 0.0;
            for (std::size_t c = 0; c < in; ++c) mag += std::abs(static_cast<double>(w[r * in + c]) * x[t * in + c]);
            m = std::max(m, std::abs(got[t * out + r] - want[t * out + r]) / (mag + 1e-30));
        }
    return m;
}

TEST(Linear, F32MatmulWithBiasMatchesNaive) {
    const std::size_t out = 37, in = 70, n = 5;
    const auto w = normals(out * in, 1), x = normals(n * in, 2), b = normals(out, 3);
    Linear l = Linear::f32(w, out, in, "w");
    l.set_bias(b);
    std::vector<float> y(n * out);
    l.matmul(x, n, y);
    EXPECT_LT(max_rel(y, naive(w, x, n, out, in, b), w, x, n, out, in), 1e-6);
    ThreadPool pool(2);
    std::vector<float> y2(n * out);
    l.matmul(x, n, y2, &pool);
    EXPECT_EQ(y, y2);  // a row split does not change any row's arithmetic
    EXPECT_THROW(l.set_bias(std::vector<float>(3)), shape_error);
    EXPECT_THROW(l.matmul(x, n + 1, y), shape_error);
}

TEST(Linear, HalfFormatsMultiplyTheirStoredValues) {
    const std::size_t out = 24, in = 48, n = 3;
    const auto w = normals(out * in, 4), x = normals(n * in, 5);
    for (SideType t : {SideType::f16, SideType::bf16}) {
        std::vector<std::uint16_t> bits(w.size());
        std::vector<float> stored(w.size());
        for (std::size_t i = 0; i < w.size(); ++i) {
            bits[i] = t == SideType::f16 ? float_to_f16_bits(w[i]) : float_to_bf16_bits(w[i]);
            stored[i] = t == SideType::f16 ? f16_bits_to_float(bits[i]) : bf16_bits_to_float(bits[i]);
        }
        const Linear l = Linear::half(bits, t, out, in);
        EXPECT_EQ(l.dequantize(), stored);
        std::vector<float> y(n * out);
        l.matmul(x, n, y);
        EXPECT_LT(max_rel(y, naive(stored, x, n, out, in), stored, x, n, out, in), 1e-6);
        EXPECT_EQ(l.memory_bytes(), out * in * 2);
    }
}

// Brief (3): every stories260K linear quantized with optiq::mlx::quantize at 4 and 8 bits; the
// quantized matmul (codes, never a dequantized row) equals dequantize-then-f32-matmul to float rounding.
TEST(Linear, MlxAffineMatmulEqualsDequantizeThenMatmulOnStories) {
    auto m = stories();
    const auto x = normals(4 * 172, 6);
    int checked = 0;
    m.for_each_linear([&](const std::string& name, Linear& l) {
        const std::size_t out = l.out_features(), in = l.in_features(), n = 4;
        const std::vector<float> w = l.dequantize();
        const std::vector<float> xs(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n * in));
        for (int bits : {4, 8})
            for (std::size_t g : {32u, 64u}) {
                if (in % g != 0) continue;  // mlx-lm leaves such a linear (down_proj, in = 172) unquantized
                const Linear q = Linear::mlx_affine(mlx::quantize(w, {out, in}, g, bits), name);
                const std::vector<float> deq = q.dequantize();
                EXPECT_EQ(deq, mlx::dequantize(*q.quantized()));
                std::vector<float> y(n * out);
                q.matmul(xs, n, y);
                EXPECT_LT(max_rel(y, naive(deq, xs, n, out, in), deq, xs, n, out, in), 2e-6)
                    << name << " bits " << bits << " group " << g;
                ++checked;
            }
    });
    EXPECT_EQ(checked, 2 * (2 * (1 + 6 * 5)));  // embed + 6 quantizable linears per layer, 2 bits x 2 groups
}

TEST(Linear, MlxAffineStoriesAt8BitsStillTellsTheStory) {
    auto m = stories();
    m.for_each_linear([&](const std::string& name, Linear& l) {
        if (l.in_features() % 32 != 0) return;
        const auto w = l.dequantize();
        l = Linear::mlx_affine(mlx::quantize(w, {l.out_features(), l.in_features()}, 32, 8), name);
    });
    EXPECT_EQ(m.linear("model.embed_tokens")->describe(), "mlx_affine:8:g32");
    const std::string text = decode_stories(greedy(m, {1}, 40));
    EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << text;
}

TEST(Linear, RejectsInconsistentQuantizedShapes) {
    auto q = mlx::quantize(normals(8 * 64, 7), {8, 64}, 32, 4);
    q.scales.pop_back();
    EXPECT_THROW((void)Linear::mlx_affine(q), shape_error);
    EXPECT_THROW((void)Linear::f32(std::vector<float>(10), 3, 3), shape_error);
    EXPECT_THROW((void)Linear::half(std::vector<std::uint16_t>(9), SideType::f32, 3, 3), config_error);
    std::vector<float> y(3);
    EXPECT_THROW(Linear().matmul(y, 1, y), config_error);
}

}  // namespace
}  // namespace optiq::model::test

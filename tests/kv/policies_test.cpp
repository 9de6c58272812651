// Each codec against its core method: records are the core's encoding bit for bit, scores are
// the core's inner-product estimates, and decode is the core's decode.
#include "optiq/kv/policies.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kv_test_util.hpp"

namespace optiq::kv {
namespace {

using test::gaussian;
constexpr std::size_t kDim = 64;

template <class Codec, class Core>
void check_against_core(const Codec& codec, const Core& core, std::uint64_t seed) {
    SCOPED_TRACE(codec.name());
    const std::size_t n = 20;
    const auto x = gaussian(n * kDim, seed, 3.0f);
    const EncodedBatch b = core.encode(x);
    auto scratch = codec.make_scratch();
    const auto q = gaussian(kDim, seed + 1);
    typename Codec::query_state st;
    codec.prepare_query(q, st, scratch);
    const auto qs = core.prepare_query(q);
    std::vector<float> core_ip(n);
    core.inner_products(qs, b, core_ip);
    std::vector<float> dec(n * kDim);
    core.decode(b, dec);
    for (std::size_t i = 0; i < n; ++i) {
        std::vector<std::uint32_t> w(codec.words_per_token());
        std::vector<float> s(codec.side_per_token());
        codec.encode(std::span(x).subspan(i * kDim, kDim), w, s, scratch);
        const auto cw = b.words_of(i);
        const auto cs = b.side_of(i);
        ASSERT_EQ(w, std::vector<std::uint32_t>(cw.begin(), cw.end())) << "vector " << i;
        ASSERT_EQ(s, std::vector<float>(cs.begin(), cs.end())) << "vector " << i;
        float score = 0.0f;
        codec.score(std::span(&st, 1), w, s, scratch, &score, 1);
        // Rounding scales with the terms summed, |q| |x_i|, not with the (cancelling) result.
        double qq = 0.0, xx = 0.0;
        for (std::size_t j = 0; j < kDim; ++j) {
            qq += static_cast<double>(q[j]) * q[j];
            xx += static_cast<double>(x[i * kDim + j]) * x[i * kDim + j];
        }
        EXPECT_NEAR(score, core_ip[i], 1e-6 * std::sqrt(qq * xx)) << "vector " << i;
        std::vector<float> d(kDim);
        codec.decode(w, s, d);
        EXPECT_EQ(d, std::vector<float>(dec.begin() + static_cast<std::ptrdiff_t>(i * kDim),
                                        dec.begin() + static_cast<std::ptrdiff_t>((i + 1) * kDim)));
        // accumulate + finish of one vector with weight 1 is its decode (to rounding).
        std::vector<float> acc(codec.accumulator_size(), 0.0f), out(kDim);
        const float one = 1.0f;
        codec.accumulate(w, s, scratch, &one, 1, acc.data(), 1);
        codec.finish(acc, out, scratch);
        EXPECT_LT(test::max_abs_diff(out, d), 2e-6f * (1.0f + test::max_abs(d)));
    }
}

TEST(Codecs, MatchTheirCoreMethods) {
    check_against_core(turboquant_mse_codec(kDim, 4, 3), make_turboquant_mse(kDim, 4, 3), 1);
    check_against_core(turboquant_mse_codec(kDim, 3, 4), make_turboquant_mse(kDim, 3, 4), 2);
    check_against_core(turboquant_prod_codec(kDim, 3, 5), TurboQuantProd<>(kDim, 3, 5), 3);
    check_against_core(turboquant_prod_codec(kDim, 1, 5), TurboQuantProd<>(kDim, 1, 5), 4);
    check_against_core(mlx_affine_codec(kDim, 4, 32), make_mlx_affine(kDim, 4, 32), 5);
    check_against_core(mlx_affine_codec(kDim, 3, 64), make_mlx_affine(kDim, 3, 64), 6);
    check_against_core(rvq_codec(kDim, 2, 7), RVQ<>(kDim, 2, 7), 7);
    check_against_core(qjl_codec(kDim, 8, 96), QJL(kDim, 8, 96), 8);
    check_against_core(polar_codec(kDim, {4, 2, 2, 2}, 9), PolarQuant<>(kDim, std::vector<int>{4, 2, 2, 2}, 9), 9);
    check_against_core(kivi_value_codec(kDim, 2, 16), KiviValues(kDim, 2, 16), 10);
}

TEST(Codecs, FullPrecisionRoundTrips) {
    const auto x = gaussian(kDim, 11, 100.0f);
    F32Codec f32(kDim);
    BF16Codec bf16(kDim);
    F16Codec f16(kDim);
    EXPECT_EQ(f32.words_per_token(), kDim);
    EXPECT_EQ(f16.words_per_token(), kDim / 2);
    EXPECT_EQ(FullPrecisionCodec<SideType::f16>(5).words_per_token(), 3u);
    std::vector<std::uint32_t> w(kDim);
    std::vector<float> out(kDim);
    auto s = f32.make_scratch();
    f32.encode(x, w, {}, s);
    f32.decode(w, {}, out);
    EXPECT_EQ(out, x);
    auto sb = bf16.make_scratch();
    bf16.encode(x, std::span(w).first(kDim / 2), {}, sb);
    bf16.decode(std::span(w).first(kDim / 2), {}, out);
    for (std::size_t i = 0; i < kDim; ++i) ASSERT_EQ(out[i], round_to_bf16(x[i]));
    auto sh = f16.make_scratch();
    f16.encode(x, std::span(w).first(kDim / 2), {}, sh);
    f16.decode(std::span(w).first(kDim / 2), {}, out);
    for (std::size_t i = 0; i < kDim; ++i) ASSERT_EQ(out[i], round_to_f16(x[i]));
}

TEST(Codecs, NamesAndPolicyNames) {
    EXPECT_EQ(turboquant_mse_policy(kDim, 4, 3, 1, 128).name(), "k=tq_mse:4,v=tq_mse:3,recent=128");
    EXPECT_EQ(mlx_affine_policy(kDim, 8, 4, 32).name(), "k=affine:8:g32,v=affine:4:g32");
    EXPECT_EQ(full_precision_policy<SideType::bf16>(kDim).name(), "k=bf16,v=bf16");
    EXPECT_EQ(qjl_policy(kDim, 1).name(), "k=qjl,v=f16");
    EXPECT_EQ(polar_policy(kDim, {4, 2, 2, 2}, {2, 2}, 1).name(), "k=polar:4,2,2,2,v=polar:2,2");
    // Keys and values get different rotations from one layer seed.
    const auto p = turboquant_mse_policy(kDim, 4, 4, 42);
    EXPECT_NE(p.keys().quantizer().preconditioner().seed(), p.values().quantizer().preconditioner().seed());
}

}  // namespace
}  // namespace optiq::kv

// attend_rotated (codes, rotated space) against attend_dequantized (the reference), and the
// reference against an independent naive attention over the codecs' decoded vectors, for every
// policy, with and without a recent full-precision window, for prefill (causal) and decode, GQA.
#include "optiq/kv/attention.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kv_test_util.hpp"
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/policies.hpp"

namespace optiq::kv {
namespace {

using test::gaussian;

constexpr std::size_t kHq = 6, kHkv = 2, kDim = 64;

/// Keys and values as the cache sees them: the first n_quantized tokens codec-decoded.
template <class P>
std::vector<float> decoded(const P& policy, const std::vector<float>& x, bool keys, std::size_t n_quantized) {
    std::vector<float> out(x);
    auto per_token = [&](const auto& c) {
        auto scratch = c.make_scratch();
        std::vector<std::uint32_t> w(c.words_per_token());
        std::vector<float> s(c.side_per_token());
        for (std::size_t t = 0; t < n_quantized; ++t)
            for (std::size_t h = 0; h < kHkv; ++h) {
                c.encode(std::span(x).subspan((t * kHkv + h) * kDim, kDim), w, s, scratch);
                c.decode(w, s, std::span(out).subspan((t * kHkv + h) * kDim, kDim));
            }
    };
    if (!keys) {
        per_token(policy.values());
    } else if constexpr (KVBlockKeyCodec<typename P::key_codec>) {
        const auto& c = policy.keys();
        const std::size_t B = c.block_tokens();
        auto scratch = c.make_scratch();
        std::vector<std::uint32_t> w(B * c.words_per_token());
        std::vector<float> s(B * c.side_per_token()), in(B * kDim), dec(B * kDim);
        for (std::size_t t0 = 0; t0 < n_quantized; t0 += B)
            for (std::size_t h = 0; h < kHkv; ++h) {
                for (std::size_t j = 0; j < B; ++j) std::copy_n(&x[((t0 + j) * kHkv + h) * kDim], kDim, &in[j * kDim]);
                c.encode_block(in, w, s, scratch);
                c.decode_block(w, s, dec);
                for (std::size_t j = 0; j < B; ++j)
                    std::copy_n(&dec[j * kDim], kDim, &out[((t0 + j) * kHkv + h) * kDim]);
            }
    } else {
        per_token(policy.keys());
    }
    return out;
}

template <class P>
void check_policy(const P& policy, std::uint64_t seed, float rel_tol_vs_exact) {
    SCOPED_TRACE(policy.name());
    const std::size_t T = 45, pre = 37;
    const auto k = gaussian(T * kHkv * kDim, seed), v = gaussian(T * kHkv * kDim, seed + 1);
    KVCache cache(policy, AttentionShape{kHq, kHkv, kDim});
    cache.append(std::span(k).first(pre * kHkv * kDim), std::span(v).first(pre * kHkv * kDim));
    const float scale = 1.0f / std::sqrt(static_cast<float>(kDim));
    float worst = 0.0f, worst_exact = 0.0f;
    for (std::size_t t = pre; t <= T; ++t) {
        if (t > pre)
            cache.append(std::span(k).subspan((t - 1) * kHkv * kDim, kHkv * kDim),
                         std::span(v).subspan((t - 1) * kHkv * kDim, kHkv * kDim));
        const std::size_t nq = t == pre ? pre : 1;  // the prefill chunk, then decode steps
        const auto q = gaussian(nq * kHq * kDim, seed + 10 + t);
        std::vector<float> fast(q.size()), ref(q.size());
        cache.attend_reference(q, ref);
        const float m = std::max(1.0f, test::max_abs(ref));
        for (const auto arch : test::archs()) {  // every kernel set this CPU runs
            std::vector<float> o(q.size());
            cache.attend_on(arch, 0, q, o);
            worst = std::max(worst, test::max_abs_diff(o, ref) / m);
        }
        cache.attend(q, fast);
        worst = std::max(worst, test::max_abs_diff(fast, ref) / m);

        // The reference is plain attention over what the codecs decode.
        const std::vector<float> kt(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(t * kHkv * kDim));
        const std::vector<float> vt(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(t * kHkv * kDim));
        const std::size_t nq_tok = cache.layout().held(0);
        const std::size_t B = key_block_tokens(policy.keys());  // the window gives up whole key blocks
        if (t <= policy.recent()) {
            ASSERT_EQ(nq_tok, 0u);
        } else {
            ASSERT_EQ(nq_tok % B, 0u);
            ASSERT_LE(t - nq_tok, policy.recent());
            ASSERT_GT(t - nq_tok + B, policy.recent());
        }
        const auto naive = test::naive_attention(q, decoded(policy, kt, true, nq_tok),
                                                 decoded(policy, vt, false, nq_tok), kHq, kHkv, kDim, scale);
        ASSERT_EQ(ref, naive) << "tokens " << t;
        const auto exact = test::naive_attention(q, kt, vt, kHq, kHkv, kDim, scale);
        worst_exact = std::max(worst_exact, test::rel_l2(fast, exact));
    }
    EXPECT_LT(worst, 2e-5f) << "rotated vs dequantized";
    // Quantization error itself: bounded, and not zero (the codes are really used).
    EXPECT_LT(worst_exact, rel_tol_vs_exact);
    std::printf("%-44s rotated-vs-reference %.2e  vs-exact (rel L2, worst step) %.4f\n", policy.name().c_str(),
                static_cast<double>(worst), static_cast<double>(worst_exact));
    EXPECT_GT(worst_exact, 1e-4f);
}

TEST(Attention, TurboQuantMse) {
    check_policy(turboquant_mse_policy(kDim, 4, 3, 7), 100, 0.28f);
    check_policy(turboquant_mse_policy(kDim, 2, 2, 8, 5), 110, 0.56f);
}
TEST(Attention, TurboQuantProd) {
    check_policy(turboquant_prod_policy(kDim, 4, 3, 7), 120, 0.65f);
    check_policy(turboquant_prod_policy(kDim, 1, 2, 9, 4), 130, 2.2f);
}
TEST(Attention, MlxAffine) {
    check_policy(mlx_affine_policy(kDim, 4, 4, 32), 140, 0.16f);
    check_policy(mlx_affine_policy(kDim, 3, 8, 64, 3), 150, 0.23f);
}
TEST(Attention, Rvq) { check_policy(rvq_policy(kDim, 2, 1, 11, 2), 160, 0.52f); }
TEST(Attention, Qjl) {
    check_policy(qjl_policy(kDim, 12), 170, 2.0f);
    check_policy(Policy(qjl_codec(kDim, 3, 128), qjl_codec(kDim, 4, 96), 3), 175, 2.5f);
}
TEST(Attention, Polar) { check_policy(polar_policy(kDim, {4, 2, 2, 2}, {3, 3}, 13), 180, 0.42f); }
TEST(Attention, KiviValuesWithTurboQuantKeys) {
    check_policy(Policy(turboquant_mse_codec(kDim, 3, 5), kivi_value_codec(kDim, 2, 32), 8), 190, 0.55f);
}
TEST(Attention, Kivi) {
    check_policy(kivi_policy(kDim, 2, 2, 8, 16), 220, 0.6f);
    check_policy(kivi_policy(kDim, 4, 3, 16, 16), 230, 0.3f);
    check_policy(Policy(kivi_key_codec(kDim, 3, 32), turboquant_mse_codec(kDim, 3, 1), 40), 240, 0.4f);
}
TEST(Attention, MixedFullPrecisionValues) {
    check_policy(Policy(turboquant_mse_codec(kDim, 4, 5), F16Codec(kDim)), 200, 0.13f);
    check_policy(Policy(F32Codec(kDim), turboquant_mse_codec(kDim, 4, 5), 2), 210, 0.13f);
    check_policy(Policy(BF16Codec(kDim), mlx_affine_codec(kDim, 4, 32)), 215, 0.16f);
}
TEST(Attention, EveryTurboQuantWidthAndAffineWidth) {
    for (int b = 1; b <= 8; ++b) {
        check_policy(Policy(turboquant_mse_codec(kDim, b, 30), turboquant_mse_codec(kDim, b, 31), 3),
                     250 + static_cast<std::uint64_t>(b), 6.0f);  // kernels, not quality: 1 bit is coarse
        check_policy(mlx_affine_policy(kDim, b, b, 32), 270 + static_cast<std::uint64_t>(b), 6.0f);
    }
}

// Values-only quantization: for independent random values the output error relative to the
// output is sqrt(D_mse(b)) (error Σ p_j e_j against output Σ p_j v_j, both sums of independent
// terms with the same weights), D_mse from the exact Beta law at d = 64 (reference-spec 2).
TEST(Attention, ValueErrorMatchesTurboQuantDistortion) {
    const double d_mse[] = {0.35839, 0.11453, 0.033391, 0.009132};
    const std::size_t T = 64, n = 48;
    for (int b = 2; b <= 4; ++b) {  // b = 1 shrinks vectors (E v^ = 0.8 v): errors correlate
        const auto k = gaussian(T * kHkv * kDim, 300 + static_cast<std::uint64_t>(b), 0.3f);
        const auto v = gaussian(T * kHkv * kDim, 400 + static_cast<std::uint64_t>(b));
        KVCache cache(Policy(F32Codec(kDim), turboquant_mse_codec(kDim, b, 17)), AttentionShape{kHq, kHkv, kDim});
        cache.append(k, v);
        const auto q = gaussian(n * kHq * kDim, 500 + static_cast<std::uint64_t>(b));
        // n queries at the newest positions, each over its causal prefix.
        std::vector<float> out(q.size());
        cache.attend(q, out);
        const auto exact = test::naive_attention(q, k, v, kHq, kHkv, kDim, 1.0f / 8.0f);
        const double rel = test::rel_l2(out, exact), expect = std::sqrt(d_mse[b - 1]);
        std::printf("values tq_mse:%d  output error %.4f, sqrt(D_mse) %.4f\n", b, rel, expect);
        EXPECT_NEAR(rel / expect, 1.0, 0.06) << "bits " << b << ": " << rel << " vs sqrt(D_mse) " << expect;
    }
}

}  // namespace
}  // namespace optiq::kv

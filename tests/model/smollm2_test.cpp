// SmolLM2-135M-Instruct Q4_1 (scripts/fetch_models.sh): ~135M parameters, so these tests are
// named Slow* (ctest label "slow": the sanitizer configuration skips them). Skipped when the
// file is absent, except under CI=true.
#include <gtest/gtest.h>

#include "model_test_util.hpp"
#include "optiq/model/generate.hpp"

namespace optiq::model::test {
namespace {


#define OPTIQ_REQUIRE_SMOLLM2()                                                                  \
    if (!std::filesystem::exists(smollm_gguf())) {                                               \
        if (io::test::ci()) FAIL() << "missing " << smollm_gguf();                              \
        GTEST_SKIP() << smollm_gguf() << " not found (run scripts/fetch_models.sh)";            \
    }

TEST(SlowSmolLM2, ConfigFromGgufAndGreedyAnswer) {
    OPTIQ_REQUIRE_SMOLLM2();
    auto m = load(smollm_gguf());
    const auto& c = m.config();
    EXPECT_EQ(c.n_layers, 30u);
    EXPECT_EQ(c.n_heads, 9u);
    EXPECT_EQ(c.n_kv_heads, 3u);
    EXPECT_EQ(c.head_dim, 64u);
    EXPECT_EQ(c.vocab_size, 49152u);
    EXPECT_TRUE(c.rope_interleaved);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
    EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
    // "The capital of France is" -> " Paris" (ids from the GGUF vocabulary).
    const std::vector<TokenId> prompt{504, 3575, 282, 4649, 314};
    EXPECT_EQ(greedy(m, prompt, 1), std::vector<TokenId>{7042});
}

TEST(SlowSmolLM2, DecodeStepsEqualOneShotPrefill) {
    OPTIQ_REQUIRE_SMOLLM2();
    auto m = load(smollm_gguf());
    const std::vector<TokenId> ids{504, 3575, 282, 4649, 314, 7042, 30};
    const auto all = m.logits_all(ids);
    m.reset();
    float worst = 0.0f, range = 0.0f;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto lg = m.decode(ids[i]);
        const auto row = std::span(all).subspan(i * 49152, 49152);
        worst = std::max(worst, max_abs_diff(lg, row));
        range = std::max(range, *std::max_element(row.begin(), row.end()) - *std::min_element(row.begin(), row.end()));
    }
    EXPECT_LT(worst, 1e-4f * range);
}

LoadOptions f32_load() {
    LoadOptions o;
    o.gguf_weights = GgufWeights::f32;
    return o;
}

TEST(SlowSmolLM2, BlocksStayInTheMappedFile) {
    OPTIQ_REQUIRE_SMOLLM2();
    auto m = load(smollm_gguf());  // default: in place
    EXPECT_EQ(m.linear("model.layers.0.mlp.up_proj")->describe(), "ggml:Q4_1");
    EXPECT_EQ(m.linear("model.embed_tokens")->describe(), "ggml:Q8_0");
    std::size_t bytes = 0;
    m.for_each_linear([&](const std::string&, Linear& l) { bytes += l.memory_bytes(); });
    // Every matrix is its bytes in the file: the matrices add up to less than the file, and to
    // more than 95% of it (norms, metadata and the vocabulary are the rest).
    const auto file = std::filesystem::file_size(smollm_gguf());
    EXPECT_LT(bytes, file);
    EXPECT_GT(static_cast<double>(bytes), 0.95 * static_cast<double>(file));
}

TEST(SlowSmolLM2, InPlaceExactActivationsEqualTheF32PathBitForBit) {
    OPTIQ_REQUIRE_SMOLLM2();
    LoadOptions exact;
    exact.transformer.activations = Activations::exact;
    auto q = load(smollm_gguf(), exact);
    auto f = load(smollm_gguf(), f32_load());
    std::vector<float> a(576), b(576);
    q.linear("model.layers.3.self_attn.k_proj")->row(17, a);
    f.linear("model.layers.3.self_attn.k_proj")->row(17, b);
    EXPECT_EQ(a, b);
    const std::vector<TokenId> ids{504, 3575, 282, 4649, 314};
    EXPECT_EQ(q.logits_all(ids), f.logits_all(ids));
    q.reset();
    f.reset();
    EXPECT_EQ(q.decode(504), f.decode(504));
}

TEST(SlowSmolLM2, Int8ActivationsStayCloseToTheF32Path) {
    OPTIQ_REQUIRE_SMOLLM2();
    auto q = load(smollm_gguf());  // automatic: int8 activations for the block types
    EXPECT_TRUE(q.linear("model.layers.0.mlp.up_proj")->uses_int8(q.matmul_options().activations));
    auto f = load(smollm_gguf(), f32_load());
    const std::vector<TokenId> ids{504, 3575, 282, 4649, 314, 7042, 30};
    const auto lq = q.logits_all(ids), lf = f.logits_all(ids);
    const float range = *std::max_element(lf.begin(), lf.end()) - *std::min_element(lf.begin(), lf.end());
    const float err = max_abs_diff(lq, lf);
    EXPECT_GT(err, 0.0f);  // the int8 rule is in use: it rounds the activations
    EXPECT_LT(err, 3e-2f * range);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto row_q = std::span(lq).subspan(i * 49152, 49152), row_f = std::span(lf).subspan(i * 49152, 49152);
        EXPECT_EQ(std::max_element(row_q.begin(), row_q.end()) - row_q.begin(),
                  std::max_element(row_f.begin(), row_f.end()) - row_f.begin()) << "position " << i;
    }
}

TEST(SlowSmolLM2, TokenKernelPrefillEqualsRowKernelDecodeSteps) {
    // 20 tokens: the prefill runs the token-vector kernels (backend::qmatmul::kTokenKernelMin), each
    // decode step the row kernels. Their float summation orders differ, and a last-bit difference can
    // move a later layer's activation across an int8 rounding boundary: the two agree to the int8
    // rule's own accuracy (as int8 vs f32), not to float rounding.
    OPTIQ_REQUIRE_SMOLLM2();
    auto m = load(smollm_gguf());
    std::vector<TokenId> ids{504, 3575, 282, 4649, 314, 7042, 30};
    for (TokenId i = 0; ids.size() < 20; ++i) ids.push_back(1000 + 37 * i);
    ASSERT_GE(ids.size(), backend::qmatmul::kTokenKernelMin);
    const auto all = m.logits_all(ids);
    m.reset();
    float worst = 0.0f, range = 0.0f;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto lg = m.decode(ids[i]);
        const auto row = std::span(all).subspan(i * 49152, 49152);
        worst = std::max(worst, max_abs_diff(lg, row));
        range = std::max(range, *std::max_element(row.begin(), row.end()) - *std::min_element(row.begin(), row.end()));
    }
    EXPECT_GT(worst, 0.0f);  // two kernels ran
    EXPECT_LT(worst, 3e-2f * range);
}

TEST(SlowSmolLM2, KeepingQ4_1QuantizedMatchesTheF32Path) {
    OPTIQ_REQUIRE_SMOLLM2();
    LoadOptions keep;
    keep.gguf_weights = GgufWeights::mlx_affine;
    auto q = load(smollm_gguf(), keep);
    auto f = load(smollm_gguf(), f32_load());
    EXPECT_EQ(q.linear("model.layers.0.mlp.up_proj")->describe(), "mlx_affine:4:g32");
    EXPECT_EQ(q.linear("model.embed_tokens")->describe(), "mlx_affine:8:g32");  // the file's Q8_0 embedding
    // Q4_1 rows equal ggml's dequantization exactly (d*q + m in f32).
    const auto* up = q.linear("model.layers.0.mlp.up_proj");
    std::vector<float> a(576), b(576);
    up->row(5, a);
    f.linear("model.layers.0.mlp.up_proj")->row(5, b);
    EXPECT_EQ(a, b);
    const std::vector<TokenId> ids{504, 3575, 282, 4649, 314};
    const auto lq = q.logits_all(ids), lf = f.logits_all(ids);
    const float range = *std::max_element(lf.begin(), lf.end()) - *std::min_element(lf.begin(), lf.end());
    EXPECT_LT(max_abs_diff(lq, lf), 1e-4f * range);
}

}  // namespace
}  // namespace optiq::model::test

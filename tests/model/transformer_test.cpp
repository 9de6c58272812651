#include "optiq/model/transformer.hpp"

#include <gtest/gtest.h>

#include "model_test_util.hpp"
#include "optiq/kv/kv_config.hpp"
#include "optiq/kv/layouts/paged.hpp"

namespace optiq::model::test {
namespace {

TEST(Transformer, StoriesGreedyFromBosTellsLlama2cReferenceStory) {
    auto m = stories();
    const auto ids = greedy(m, {1}, 100);
    const std::string text = decode_stories(ids);
    EXPECT_EQ(text.rfind(kStory, 0), 0u) << text;
    EXPECT_EQ(m.position(), 100u);
}

TEST(Transformer, ChunkedPrefillEqualsTokenByTokenDecode) {
    auto m = stories();
    std::vector<TokenId> ids{1};
    for (TokenId t : greedy(m, {1}, 40)) ids.push_back(t);
    m.reset();
    std::vector<float> stepwise;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto lg = m.forward(std::span(ids).subspan(i, 1), i);
        stepwise.insert(stepwise.end(), lg.begin(), lg.end());
    }
    for (std::size_t chunk : {1u, 7u, 64u}) {
        m.set_prefill_chunk(chunk);
        const auto all = m.logits_all(ids);
        EXPECT_LT(max_abs_diff(all, stepwise), 1e-5f) << "chunk " << chunk;
        // forward_from returns the tail rows; forward the last row.
        m.reset();
        const auto tail = m.forward_from(ids, 0, 30);
        EXPECT_EQ(max_abs_diff(tail, std::span(all).subspan(30 * 512)), 0.0f);
        m.reset();
        const auto last = m.forward(ids, 0);
        EXPECT_EQ(max_abs_diff(last, std::span(all).subspan((ids.size() - 1) * 512)), 0.0f);
    }
}

TEST(Transformer, RollbackRerunsFromAnEarlierPosition) {
    auto m = stories();
    const std::vector<TokenId> a{1, 400, 261, 403, 365, 297, 300}, b{1, 400, 261, 51, 52, 53};
    const auto want = m.logits_all(b);
    m.reset();
    (void)m.forward(a, 0);
    const auto got = m.forward_from(std::span(b).subspan(3), 3, 0);  // keep the shared prefix of 3
    EXPECT_EQ(m.position(), b.size());
    EXPECT_EQ(max_abs_diff(got, std::span(want).subspan(3 * 512)), 0.0f);
}

TEST(Transformer, ThreadsDoNotChangeResults) {
    TransformerOptions o1, o2;
    o1.threads = 1;
    o2.threads = 2;
    auto one = stories(o1);
    auto two = stories(o2);
    const std::vector<TokenId> ids{1, 400, 261, 403, 365, 297, 300, 301};
    EXPECT_EQ(max_abs_diff(one.logits_all(ids), two.logits_all(ids)), 0.0f);
}

TEST(Transformer, LinearHookSwapsOneModule) {
    auto m = stories();
    std::size_t count = 0;
    m.for_each_linear([&](const std::string&, Linear&) { ++count; });
    EXPECT_EQ(count, 1u + 7u * 5u);  // tied head: no lm_head
    EXPECT_EQ(m.linear("lm_head"), nullptr);
    ASSERT_NE(m.linear("model.layers.2.self_attn.q_proj"), nullptr);

    const std::vector<TokenId> ids{1, 400, 261, 403, 365, 297};
    const auto base = m.logits_all(ids);
    const Linear original = *m.linear("model.layers.2.self_attn.q_proj");
    const auto w = original.dequantize();
    m.replace_linear("model.layers.2.self_attn.q_proj", Linear::mlx_affine(mlx::quantize(w, {64, 64}, 32, 2)));
    EXPECT_EQ(m.linear("model.layers.2.self_attn.q_proj")->format(), WeightFormat::mlx_affine);
    const auto swapped = m.logits_all(ids);
    EXPECT_GT(max_abs_diff(base, swapped), 1e-3f);  // 2-bit q_proj moves the logits
    m.replace_linear("model.layers.2.self_attn.q_proj", original);
    EXPECT_EQ(max_abs_diff(base, m.logits_all(ids)), 0.0f);
    EXPECT_THROW(m.replace_linear("model.layers.9.mlp.up_proj", original), config_error);
    EXPECT_THROW(m.replace_linear("model.layers.2.mlp.up_proj", original), shape_error);
}

TEST(Transformer, CacheHookAndKvConfig) {
    auto m = stories();
    const std::vector<TokenId> ids{1, 400, 261, 403, 365, 297, 300, 301, 302};
    const auto base = m.logits_all(ids);
    // kv_config without entries: every layer f16 (as make_kv_caches): close to, not equal to, f32.
    m.set_cache_factory(kv_config_cache_factory(kv::KVConfig{}));
    const auto f16 = m.logits_all(ids);
    const float d16 = max_abs_diff(base, f16);
    EXPECT_GT(d16, 0.0f);
    EXPECT_LT(d16, 2e-2f);
    // One layer replaced by a 2-bit TurboQuant cache moves the logits more than f16 everywhere.
    m.set_cache_factory(f32_cache_factory());
    kv::KVLayerConfig tq_cfg;
    tq_cfg.layer_idx = 3;
    tq_cfg.bits = 2;
    tq_cfg.method = "tq_mse";
    m.set_cache(3, kv::make_kv_cache(tq_cfg, m.attention_shape()));
    const auto tq = m.logits_all(ids);
    EXPECT_GT(max_abs_diff(base, tq), d16);
    EXPECT_THROW(m.set_cache(9, kv::AnyKVCache()), shape_error);
}

TEST(Transformer, RejectsBadCalls) {
    auto m = stories();
    const std::vector<TokenId> bad{1, 512}, neg{-1}, none;
    EXPECT_THROW((void)m.forward(bad, 0), value_error);
    EXPECT_THROW((void)m.forward(neg, 0), value_error);
    EXPECT_THROW((void)m.forward(none, 0), value_error);
    const std::vector<TokenId> ok{1};
    EXPECT_THROW((void)m.forward(ok, 3), value_error);  // past the cached tokens
    auto w = m.weights();
    w.layers[1].q = Linear::f32(std::vector<float>(64 * 32), 64, 32, "q");
    EXPECT_THROW(Transformer(m.config(), std::move(w)), shape_error);
}

TEST(Transformer, SlidingWindowModelStopsAtTheWindow) {
    auto m = stories();
    ModelConfig c = m.config();
    c.sliding_window = 8;
    Transformer sw(c, m.weights());
    const std::vector<TokenId> eight{1, 403, 407, 261, 378, 410, 368, 305};
    // Within the window the attention is the full one.
    EXPECT_EQ(sw.forward(eight, 0), m.forward(eight, 0));
    const std::vector<TokenId> one{1};
    EXPECT_THROW((void)sw.forward(one, 8), value_error);  // the 9th token
    const BatchItem item{0, one, 8};
    EXPECT_THROW((void)sw.forward_batch(std::span(&item, 1)), value_error);
    EXPECT_NO_THROW((void)sw.forward(one, 7));  // rolled back: the 8th again
}

TEST(Transformer, BatchOfSequencesEqualsEachRunAlone) {
    TransformerOptions o;
    o.sequences = 3;
    auto m = stories(o);
    auto solo = stories();
    EXPECT_EQ(m.sequences(), 3u);
    const std::vector<std::vector<TokenId>> prompts{
        {1, 400, 261, 403, 365}, {1, 51, 52}, {1, 400, 261, 403, 365, 297, 300, 301, 302, 303, 304}};
    // Step 1: three prompts of different lengths in one step (sequence 1 asks for every row).
    std::vector<BatchItem> items;
    for (std::size_t s = 0; s < 3; ++s) items.push_back({s, prompts[s], 0, s == 1});
    const auto step1 = m.forward_batch(items);
    const std::size_t V = m.config().vocab_size;
    ASSERT_EQ(step1.size(), (1 + prompts[1].size() + 1) * V);
    std::vector<std::vector<TokenId>> seqs = prompts;
    std::size_t off = 0;
    std::vector<TokenId> next(3);
    for (std::size_t s = 0; s < 3; ++s) {
        const auto want = solo.logits_all(prompts[s]);
        const std::size_t rows = s == 1 ? prompts[s].size() : 1;
        const auto got = std::span(step1).subspan(off, rows * V);
        EXPECT_LT(max_abs_diff(got, std::span(want).subspan(want.size() - rows * V)), 1e-4f) << "sequence " << s;
        const auto last = got.subspan((rows - 1) * V);
        next[s] = static_cast<TokenId>(std::max_element(last.begin(), last.end()) - last.begin());
        off += rows * V;
        EXPECT_EQ(m.position(s), prompts[s].size());
    }
    // Steps 2..9: decode one token per sequence; sequence 2 is rolled back to 4 tokens at step 5.
    for (int step = 0; step < 8; ++step) {
        items.clear();
        std::vector<std::vector<TokenId>> toks(3);
        for (std::size_t s = 0; s < 3; ++s) {
            if (s == 2 && step == 3) {
                seqs[2].resize(4);
                toks[2] = {next[2]};
                items.push_back({2, toks[2], 4});
            } else {
                toks[s] = {next[s]};
                items.push_back({s, toks[s], m.position(s)});
            }
            seqs[s].push_back(next[s]);
        }
        const auto lg = m.forward_batch(items);
        for (std::size_t s = 0; s < 3; ++s) {
            const auto want = solo.logits_all(seqs[s]);
            const auto got = std::span(lg).subspan(s * V, V);
            EXPECT_LT(max_abs_diff(got, std::span(want).subspan(want.size() - V)), 1e-4f) << "step " << step << " seq " << s;
            next[s] = static_cast<TokenId>(std::max_element(got.begin(), got.end()) - got.begin());
            EXPECT_EQ(m.position(s), seqs[s].size());
        }
    }
    // Resetting one slot leaves the others.
    m.reset(1);
    EXPECT_EQ(m.position(1), 0u);
    EXPECT_EQ(m.position(0), seqs[0].size());
}

TEST(Transformer, PagedCachesServeManySequencesLikeContiguousOnes) {
    TransformerOptions o;
    o.sequences = 4;
    auto contiguous = stories(o);
    auto paged = stories(o);
    paged.set_cache_factory(f32_cache_factory<kv::PagedLayout>({.page_tokens = 4, .max_pages = 0}));
    kv::KVConfig cfg;
    cfg.layers.push_back({});
    cfg.layers.back().layer_idx = 1;
    cfg.layers.back().bits = 4;
    cfg.layers.back().method = "tq_mse";
    auto mixed = stories(o), mixed_paged = stories(o);
    mixed.set_cache_factory(kv_config_cache_factory(cfg));
    mixed_paged.set_cache_factory(
        kv_config_cache_factory(cfg, kv::KVCacheOptions<kv::PagedLayout>{.layout = {.page_tokens = 4}}));
    const std::vector<TokenId> a{1, 400, 261, 403, 365, 297, 300}, b{1, 51, 52, 53, 54, 55, 56, 57, 58, 59};
    const std::vector<BatchItem> items{{3, a, 0}, {1, b, 0, true}};
    const auto want = contiguous.forward_batch(items);
    EXPECT_EQ(max_abs_diff(paged.forward_batch(items), want), 0.0f);
    const auto q = mixed.forward_batch(items);
    EXPECT_GT(max_abs_diff(q, want), 0.0f);  // layer 1 at 4 bits, the rest f16
    EXPECT_EQ(max_abs_diff(mixed_paged.forward_batch(items), q), 0.0f);
}

TEST(Transformer, ForwardBatchRejectsBadItems) {
    TransformerOptions o;
    o.sequences = 2;
    auto m = stories(o);
    const std::vector<TokenId> a{1, 400}, none, bad{1, 512};
    EXPECT_THROW((void)m.forward_batch(std::vector<BatchItem>{}), value_error);
    EXPECT_THROW((void)m.forward_batch(std::vector<BatchItem>{{0, a, 0}, {0, a, 0}}), value_error);  // twice
    EXPECT_THROW((void)m.forward_batch(std::vector<BatchItem>{{2, a, 0}}), value_error);  // no slot 2
    EXPECT_THROW((void)m.forward_batch(std::vector<BatchItem>{{1, a, 1}}), value_error);  // past the cache
    EXPECT_THROW((void)m.forward_batch(std::vector<BatchItem>{{1, none, 0}}), value_error);
    EXPECT_THROW((void)m.forward_batch(std::vector<BatchItem>{{1, bad, 0}}), value_error);
    EXPECT_THROW(m.reset(2), value_error);
    // A cache for one sequence cannot replace a layer of a two-sequence model.
    kv::KVLayerConfig cfg;
    cfg.layer_idx = 0;
    EXPECT_THROW(m.set_cache(0, kv::make_kv_cache(cfg, m.attention_shape())), shape_error);
    TransformerOptions zero;
    zero.sequences = 0;
    EXPECT_THROW((void)stories(zero), config_error);
}

TEST(Transformer, LogitsFromLayerInputsEqualTheFullForward) {
    auto m = stories();
    m.set_prefill_chunk(5);
    const std::vector<TokenId> ids{1, 400, 261, 403, 365, 297, 300, 301, 302, 303, 304, 305};
    const auto all = m.logits_all(ids);
    const auto hidden = m.layer_inputs(ids);
    const std::size_t L = m.config().n_layers, d = m.config().dim;
    ASSERT_EQ(hidden.size(), L + 1);
    std::vector<float> row(d);
    m.weights().embed.row(static_cast<std::size_t>(ids[3]), row);
    EXPECT_EQ(max_abs_diff(std::span(hidden[0]).subspan(3 * d, d), row), 0.0f);
    for (std::size_t first = 0; first <= L; ++first)
        EXPECT_EQ(max_abs_diff(m.logits_from_layer(first, hidden[first], ids.size()), all), 0.0f) << "layer " << first;
    // A perturbed layer 3 seen from its input equals rerunning everything.
    const Linear original = *m.linear("model.layers.3.mlp.up_proj");
    m.replace_linear("model.layers.3.mlp.up_proj", Linear::mlx_affine(mlx::quantize(original.dequantize(), {172, 64}, 32, 3)));
    const auto full = m.logits_all(ids);
    EXPECT_GT(max_abs_diff(full, all), 1e-3f);
    EXPECT_EQ(max_abs_diff(m.logits_from_layer(3, hidden[3], ids.size()), full), 0.0f);
    EXPECT_EQ(m.position(), 0u);
    EXPECT_THROW((void)m.logits_from_layer(L + 1, hidden[0], ids.size()), value_error);
    EXPECT_THROW((void)m.logits_from_layer(0, hidden[0], ids.size() + 1), shape_error);
}

}  // namespace
}  // namespace optiq::model::test

// Paged and ring layouts against the contiguous layout on the same token streams.
#include <gtest/gtest.h>

#include <vector>

#include "kv_test_util.hpp"
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/layouts/contiguous.hpp"
#include "optiq/kv/layouts/paged.hpp"
#include "optiq/kv/layouts/ring.hpp"
#include "optiq/kv/policies.hpp"

namespace optiq::kv {
namespace {

using test::gaussian;
constexpr std::size_t kHq = 4, kHkv = 2, kDim = 32, kTok = kHkv * kDim;

std::span<const float> tokens(const std::vector<float>& x, std::size_t from, std::size_t n) {
    return std::span(x).subspan(from * kTok, n * kTok);
}

template <class P>
void paged_equals_contiguous(const P& policy, std::size_t page_tokens) {
    SCOPED_TRACE(policy.name());
    const std::size_t batch = 3, T = 41;
    KVCache contiguous(policy, AttentionShape{kHq, kHkv, kDim}, batch);
    KVCache<P, PagedLayout> paged(policy, AttentionShape{kHq, kHkv, kDim}, batch,
                                  PagedOptions{.page_tokens = page_tokens, .max_pages = 0});
    std::vector<std::vector<float>> k, v;
    for (std::size_t s = 0; s < batch; ++s) {
        k.push_back(gaussian(T * kTok, 10 * s + 1));
        v.push_back(gaussian(T * kTok, 10 * s + 2));
    }
    // Sequence s receives a prefill of 7 + 3s tokens, then tokens one at a time, round robin.
    std::vector<std::size_t> n(batch);
    for (std::size_t s = 0; s < batch; ++s) {
        n[s] = 7 + 3 * s;
        contiguous.append(s, tokens(k[s], 0, n[s]), tokens(v[s], 0, n[s]));
        paged.append(s, tokens(k[s], 0, n[s]), tokens(v[s], 0, n[s]));
    }
    for (std::size_t step = 0; step < 25; ++step) {
        for (std::size_t s = 0; s < batch; ++s) {
            if (n[s] == T) continue;
            contiguous.append(s, tokens(k[s], n[s], 1), tokens(v[s], n[s], 1));
            paged.append(s, tokens(k[s], n[s], 1), tokens(v[s], n[s], 1));
            ++n[s];
            const std::size_t nq = step % 4 == 0 ? 3 : 1;  // a short causal chunk now and then
            const auto q = gaussian(nq * kHq * kDim, 1000 + step * batch + s);
            std::vector<float> a(q.size()), b(q.size());
            // The scalar kernels are exact whatever the page boundaries; vector kernels sum
            // each run of consecutive positions in its own order, so pages (shorter runs)
            // change the float rounding only.
            contiguous.attend_on(backend::arch::Arch::scalar, s, q, a);
            paged.attend_on(backend::arch::Arch::scalar, s, q, b);
            ASSERT_EQ(a, b) << "seq " << s << " tokens " << n[s];
            contiguous.attend(s, q, a);
            paged.attend(s, q, b);
            for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-6f) << "seq " << s << " tokens " << n[s];
            paged.attend_reference(s, q, b);
            contiguous.attend_reference(s, q, a);
            ASSERT_EQ(a, b);
        }
    }
    // Pages are whole: memory counts whole pages; the contiguous layout counts tokens.
    const std::size_t rec = paged.layout().format().token_bytes();
    std::size_t pages = 0, toks = 0;
    for (std::size_t s = 0; s < batch; ++s) {
        EXPECT_EQ(paged.size(s), n[s]);
        const std::size_t quantized = paged.layout().held(s);
        EXPECT_EQ(quantized, contiguous.layout().held(s));
        EXPECT_EQ(paged.layout().pages(s), (quantized + page_tokens - 1) / page_tokens);
        pages += paged.layout().pages(s);
        toks += quantized;
    }
    const std::size_t window_bytes = paged.memory_bytes() - pages * page_tokens * rec;
    EXPECT_EQ(contiguous.memory_bytes(), toks * rec + window_bytes);
}

TEST(PagedLayout, EqualsContiguousForInterleavedSequences) {
    paged_equals_contiguous(turboquant_mse_policy(kDim, 3, 4, 21, 3), 5);
    paged_equals_contiguous(kivi_policy(kDim, 2, 3, 8, 10), 16);  // key blocks of 8 within 16-token pages
    paged_equals_contiguous(Policy(F32Codec(kDim), turboquant_prod_codec(kDim, 3, 4)), 1);
    // A record: 3-bit keys (3 words) + norm, 4-bit values (4 words) + norm, per head.
    EXPECT_EQ((RecordFormat{kHkv, 3, 1, 4, 1, 0}.token_bytes()), kHkv * (3 * 4 + 4 + 4 * 4 + 4));
}

TEST(PagedLayout, FreedPagesAreReusedAndThePoolLimitHolds) {
    const auto policy = mlx_affine_policy(kDim, 4, 4, 32);
    KVCache<MlxAffinePolicy, PagedLayout> cache(policy, AttentionShape{kHq, kHkv, kDim}, 2,
                                                PagedOptions{.page_tokens = 4, .max_pages = 6});
    const auto k = gaussian(24 * kTok, 1), v = gaussian(24 * kTok, 2);
    cache.append(0, tokens(k, 0, 12), tokens(v, 0, 12));  // 3 pages
    cache.append(1, tokens(k, 0, 10), tokens(v, 0, 10));  // 3 pages
    EXPECT_EQ(cache.layout().pool_pages(), 6u);
    EXPECT_THROW(cache.append(0, tokens(k, 12, 1), tokens(v, 12, 1)), shape_error);
    EXPECT_EQ(cache.size(0), 12u);  // the failed token was not counted... nor stored
    cache.truncate(1, 4);           // frees 2 pages
    EXPECT_EQ(cache.layout().pages(1), 1u);
    cache.append(0, tokens(k, 12, 8), tokens(v, 12, 8));  // takes the 2 freed pages
    EXPECT_EQ(cache.layout().pool_pages(), 6u);
    EXPECT_EQ(cache.size(0), 20u);
    // Sequence 0 still attends like a contiguous cache holding the same 20 tokens.
    KVCache ref(policy, AttentionShape{kHq, kHkv, kDim});
    ref.append(tokens(k, 0, 20), tokens(v, 0, 20));
    const auto q = gaussian(kHq * kDim, 3);
    std::vector<float> a(q.size()), b(q.size());
    cache.attend(0, q, a);
    ref.attend(q, b);
    EXPECT_EQ(a, b);
    cache.clear(0);
    EXPECT_EQ(cache.layout().pages(0), 0u);
    EXPECT_EQ(cache.memory_bytes(), 1 * 4 * cache.layout().format().token_bytes());
}

TEST(RingLayout, EqualsContiguousOverTheLastWindowTokens) {
    const std::size_t W = 12, T = 40;
    for (const std::size_t recent : {std::size_t{0}, std::size_t{4}}) {
        const auto policy = turboquant_mse_policy(kDim, 4, 2, 33, recent);
        KVCache<TurboQuantMsePolicy, RingLayout> ring(policy, AttentionShape{kHq, kHkv, kDim}, 1,
                                                      RingOptions{.window = W, .max_chunk = 1});
        const auto k = gaussian(T * kTok, 5), v = gaussian(T * kTok, 6);
        for (std::size_t t = 0; t < T; ++t) {
            ring.append(tokens(k, t, 1), tokens(v, t, 1));
            const std::size_t first = t + 1 > W ? t + 1 - W : 0;
            KVCache window(policy, AttentionShape{kHq, kHkv, kDim});
            window.append(tokens(k, first, t + 1 - first), tokens(v, first, t + 1 - first));
            const auto q = gaussian(kHq * kDim, 100 + t);
            std::vector<float> a(q.size()), b(q.size());
            ring.attend(q, a);
            window.attend(q, b);
            ASSERT_EQ(a, b) << "token " << t << " recent " << recent;
        }
        EXPECT_EQ(ring.size(), T);
        EXPECT_EQ(ring.held(), W);
        EXPECT_EQ(ring.memory_bytes(),
                  (W - recent) * ring.layout().format().token_bytes() + recent * 2 * kTok * sizeof(float));
    }
}

TEST(RingLayout, PrefillChunksSeeTheirWholeWindowAndF32IsExact) {
    const std::size_t W = 10, chunk = 6, T = 37;
    KVCache<FullPrecisionPolicy<SideType::f32>, RingLayout> ring(full_precision_policy<SideType::f32>(kDim),
                                                                 AttentionShape{kHq, kHkv, kDim}, 1,
                                                                 RingOptions{.window = W, .max_chunk = chunk});
    const auto k = gaussian(T * kTok, 7), v = gaussian(T * kTok, 8);
    for (std::size_t t = 0; t < T; t += chunk) {
        const std::size_t n = std::min(chunk, T - t);
        ring.append(tokens(k, t, n), tokens(v, t, n));
        const auto q = gaussian(n * kHq * kDim, 200 + t);
        std::vector<float> out(q.size());
        ring.attend(q, out);
        const std::vector<float> kt(k.begin(), k.begin() + static_cast<std::ptrdiff_t>((t + n) * kTok));
        const std::vector<float> vt(v.begin(), v.begin() + static_cast<std::ptrdiff_t>((t + n) * kTok));
        ASSERT_EQ(out, test::naive_attention(q, kt, vt, kHq, kHkv, kDim, 1.0f / std::sqrt(32.0f), W)) << t;
    }
    // A chunk longer than max_chunk would need evicted tokens: refused.
    ring.append(tokens(k, 0, chunk + 1), tokens(v, 0, chunk + 1));
    const auto q = gaussian((chunk + 1) * kHq * kDim, 9);
    std::vector<float> out(q.size());
    EXPECT_THROW(ring.attend(q, out), shape_error);
    // Rolling back past evicted positions is refused; within the ring it works.
    EXPECT_THROW(ring.truncate(0, 5), shape_error);
    ring.truncate(0, ring.size() - 2);
    EXPECT_EQ(ring.held(), W + chunk - 1 - 2);
}

}  // namespace
}  // namespace optiq::kv

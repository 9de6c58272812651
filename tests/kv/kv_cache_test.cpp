#include "optiq/kv/kv_cache.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "kv_test_util.hpp"
#include "optiq/kv/layouts/paged.hpp"
#include "optiq/kv/layouts/ring.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/kv/policies.hpp"

namespace optiq::kv {
namespace {

using test::gaussian;
using test::naive_attention;

TEST(KVCacheFullPrecision, F32EqualsNaiveAttentionExactlyDecodeAndPrefill) {
    const std::size_t hq = 8, hkv = 2, d = 32, T = 70;
    const auto k = gaussian(T * hkv * d, 1), v = gaussian(T * hkv * d, 2);
    KVCache cache(full_precision_policy<SideType::f32>(d), AttentionShape{hq, hkv, d});
    // Prefill 50 tokens as one chunk, then decode the rest one by one.
    const std::size_t pre = 50;
    cache.append(std::span(k).first(pre * hkv * d), std::span(v).first(pre * hkv * d));
    const auto qp = gaussian(pre * hq * d, 3);
    std::vector<float> out(qp.size());
    cache.attend(qp, out);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    const std::vector<float> k0(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(pre * hkv * d));
    const std::vector<float> v0(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(pre * hkv * d));
    EXPECT_EQ(out, naive_attention(qp, k0, v0, hq, hkv, d, scale));
    for (std::size_t t = pre; t < T; ++t) {
        cache.append(std::span(k).subspan(t * hkv * d, hkv * d), std::span(v).subspan(t * hkv * d, hkv * d));
        const auto q = gaussian(hq * d, 100 + t);
        std::vector<float> o(q.size());
        cache.attend(q, o);
        const std::vector<float> kt(k.begin(), k.begin() + static_cast<std::ptrdiff_t>((t + 1) * hkv * d));
        const std::vector<float> vt(v.begin(), v.begin() + static_cast<std::ptrdiff_t>((t + 1) * hkv * d));
        ASSERT_EQ(o, naive_attention(q, kt, vt, hq, hkv, d, scale)) << "token " << t;
        std::vector<float> r(q.size());
        cache.attend_reference(q, r);
        ASSERT_EQ(r, o);
    }
    EXPECT_EQ(cache.size(), T);
    EXPECT_EQ(cache.memory_bytes(), T * hkv * d * 2 * sizeof(float));
}

TEST(KVCacheTurboQuant, RotatedEqualsDequantized) {
    const std::size_t hq = 4, hkv = 2, d = 64, T = 40;
    const auto k = gaussian(T * hkv * d, 11), v = gaussian(T * hkv * d, 12);
    KVCache cache(turboquant_mse_policy(d, 4, 3, 42), AttentionShape{hq, hkv, d});
    cache.append(k, v);
    const auto q = gaussian(5 * hq * d, 13);
    std::vector<float> a(q.size()), b(q.size());
    cache.attend(q, a);
    cache.attend_reference(q, b);
    EXPECT_LT(test::max_abs_diff(a, b), 1e-5f * test::max_abs(b)) << test::max_abs_diff(a, b);
}

TEST(KVCacheFullPrecision, F16StoresRoundedValuesAndAttendsExactly) {
    const std::size_t hq = 2, hkv = 2, d = 16, T = 9;
    auto k = gaussian(T * hkv * d, 21), v = gaussian(T * hkv * d, 22);
    KVCache cache(full_precision_policy<SideType::f16>(d), AttentionShape{hq, hkv, d});
    cache.append(k, v);
    for (auto& x : k) x = round_to_f16(x);
    for (auto& x : v) x = round_to_f16(x);
    const auto q = gaussian(3 * hq * d, 23);
    const auto naive = naive_attention(q, k, v, hq, hkv, d, 0.25f);
    // The scalar path keeps the reference order: exact. Vector kernels sum in another order.
    for (const auto arch : test::archs()) {
        std::vector<float> out(q.size());
        cache.attend_on(arch, 0, q, out);
        if (arch == backend::arch::Arch::scalar) {
            EXPECT_EQ(out, naive);
        } else {
            EXPECT_LT(test::max_abs_diff(out, naive), 2e-6f * std::max(1.0f, test::max_abs(naive)))
                << backend::arch::arch_name(arch);
        }
    }
    EXPECT_EQ(cache.memory_bytes(), T * hkv * d * 2 * 2);  // 2 bytes per value, keys and values
}

// f32 caches are the exact ground truth on every architecture (kv/attention.hpp).
TEST(KVCacheFullPrecision, F32IsExactOnEveryArchitecture) {
    const std::size_t hq = 4, hkv = 2, d = 32, T = 40;
    const auto k = gaussian(T * hkv * d, 24), v = gaussian(T * hkv * d, 25), q = gaussian(2 * hq * d, 26);
    KVCache cache(full_precision_policy<SideType::f32>(d), AttentionShape{hq, hkv, d});
    cache.append(k, v);
    const auto naive = naive_attention(q, k, v, hq, hkv, d, 1.0f / std::sqrt(32.0f));
    for (const auto arch : test::archs()) {
        std::vector<float> out(q.size());
        cache.attend_on(arch, 0, q, out);
        EXPECT_EQ(out, naive) << backend::arch::arch_name(arch);
    }
}

// Heads on a thread pool: the same numbers as one thread (each head's work is the same), for
// decode and a prefill chunk, on every architecture, through KVCache and AnyKVCache.
TEST(KVCache, ThreadPoolGivesTheSameNumbers) {
    const std::size_t hq = 8, hkv = 4, d = 64, T = 300;
    const auto k = gaussian(T * hkv * d, 61), v = gaussian(T * hkv * d, 62);
    ThreadPool pool(3);
    KVCache cache(turboquant_mse_policy(d, 4, 3, 9, 4), AttentionShape{hq, hkv, d});
    cache.append(k, v);
    for (const std::size_t nq : {std::size_t{1}, std::size_t{40}}) {
        const auto q = gaussian(nq * hq * d, 63 + nq);
        for (const auto arch : test::archs()) {
            std::vector<float> one(q.size()), many(q.size());
            cache.attend_on(arch, 0, q, one);
            cache.attend_on(arch, 0, q, many, &pool);
            EXPECT_EQ(one, many) << backend::arch::arch_name(arch) << ", " << nq << " queries";
        }
        std::vector<float> a(q.size()), b(q.size());
        cache.attend(q, a);
        cache.attend(0, q, b, &pool);
        EXPECT_EQ(a, b);
    }
}

// GQA: each query head reads KV head h / rep. The same cache seen as rep MHA caches (query head
// r of every group) gives the same numbers.
TEST(KVCache, GqaEqualsOneMhaCachePerGroupMember) {
    const std::size_t hkv = 3, rep = 4, hq = hkv * rep, d = 32, T = 20;
    const auto policy = turboquant_mse_policy(d, 3, 3, 5, 2);
    const auto k = gaussian(T * hkv * d, 31), v = gaussian(T * hkv * d, 32);
    KVCache gqa(policy, AttentionShape{hq, hkv, d});
    gqa.append(k, v);
    const std::size_t nq = 4;
    const auto q = gaussian(nq * hq * d, 33);
    std::vector<float> out(q.size());
    gqa.attend(q, out);
    for (std::size_t r = 0; r < rep; ++r) {
        KVCache mha(policy, AttentionShape{hkv, hkv, d});
        mha.append(k, v);
        std::vector<float> qr(nq * hkv * d), o(qr.size());
        for (std::size_t i = 0; i < nq; ++i)
            for (std::size_t g = 0; g < hkv; ++g)
                std::copy_n(&q[(i * hq + g * rep + r) * d], d, &qr[(i * hkv + g) * d]);
        mha.attend(qr, o);
        for (std::size_t i = 0; i < nq; ++i)
            for (std::size_t g = 0; g < hkv; ++g)
                for (std::size_t c = 0; c < d; ++c)
                    ASSERT_EQ(out[(i * hq + g * rep + r) * d + c], o[(i * hkv + g) * d + c]);
    }
}

TEST(KVCache, MemoryBytesCountsCodesSideDataAndTheRecentWindow) {
    const std::size_t hkv = 2, d = 128;
    KVCache cache(turboquant_mse_policy(d, 4, 2, 1, 16), AttentionShape{8, hkv, d}, 2);
    const auto k = gaussian(100 * hkv * d, 1), v = gaussian(100 * hkv * d, 2);
    cache.append(0, k, v);
    cache.append(1, std::span(k).first(10 * hkv * d), std::span(v).first(10 * hkv * d));
    // Per head and token: 4-bit keys 16 words + norm, 2-bit values 8 words + norm (floats in memory).
    const std::size_t rec = hkv * ((16 + 1) + (8 + 1)) * 4, window = hkv * d * 2 * 4;
    EXPECT_EQ(cache.memory_bytes(), (100 - 16) * rec + 16 * window + 10 * window);
    EXPECT_EQ(cache.held(0), 100u);
    EXPECT_EQ(cache.held(1), 10u);
    cache.clear();
    EXPECT_EQ(cache.memory_bytes(), 0u);
    EXPECT_EQ(cache.size(0), 0u);
}

TEST(KVCache, TruncateRollsBack) {
    const std::size_t hkv = 2, d = 32, hq = 4;
    const auto k = gaussian(30 * hkv * d, 41), v = gaussian(30 * hkv * d, 42);
    const auto q = gaussian(hq * d, 43);
    for (const std::size_t recent : {std::size_t{0}, std::size_t{6}}) {
        const auto policy = mlx_affine_policy(d, 4, 4, 32, recent);
        KVCache a(policy, AttentionShape{hq, hkv, d}), b(policy, AttentionShape{hq, hkv, d});
        a.append(k, v);
        a.truncate(0, 21);
        EXPECT_EQ(a.size(), 21u);
        EXPECT_EQ(a.held(), 21u);
        b.append(std::span(k).first(21 * hkv * d), std::span(v).first(21 * hkv * d));
        std::vector<float> oa(q.size()), ob(q.size()), ref(q.size());
        a.attend(q, oa);
        b.attend(q, ob);
        a.attend_reference(q, ref);
        if (recent == 0) {
            EXPECT_EQ(oa, ob);  // with a window, tokens 15..20 stay quantized in a, not in b
        }
        EXPECT_LT(test::max_abs_diff(oa, ref), 1e-5f);
        // Appending after a rollback continues at position 21.
        a.append(std::span(k).subspan(21 * hkv * d, hkv * d), std::span(v).subspan(21 * hkv * d, hkv * d));
        EXPECT_EQ(a.size(), 22u);
        a.truncate(0, 100);  // no-op
        EXPECT_EQ(a.size(), 22u);
    }
}

TEST(KVCache, BadInputThrowsClearErrors) {
    const std::size_t d = 64;
    const auto policy = turboquant_mse_policy(d, 4, 4, 1);
    EXPECT_THROW(KVCache(policy, AttentionShape{6, 4, d}), shape_error);   // 6 % 4 != 0
    EXPECT_THROW(KVCache(policy, AttentionShape{4, 4, 32}), shape_error);  // codec dim 64
    EXPECT_THROW(KVCache(policy, AttentionShape{4, 0, d}), shape_error);
    EXPECT_THROW(KVCache(policy, AttentionShape{4, 2, d}, 0), shape_error);
    EXPECT_THROW((void)turboquant_mse_policy(d, 9, 4, 1), config_error);
    EXPECT_THROW((void)turboquant_mse_policy(d, 4, 0, 1), config_error);
    EXPECT_THROW((void)mlx_affine_policy(d, 4, 4, 48), config_error);
    EXPECT_THROW((void)rvq_policy(d, 4, 9, 1), config_error);
    try {
        (void)turboquant_mse_policy(d, 4, 12, 1);
        ADD_FAILURE();
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("value bits = 12"), std::string::npos) << e.what();
    }

    KVCache cache(policy, AttentionShape{4, 2, d}, 2);
    std::vector<float> q(4 * d, 0.5f), out(4 * d);
    try {
        cache.attend(q, out);
        ADD_FAILURE();
    } catch (const value_error& e) {
        EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
    }
    std::vector<float> tok(2 * d, 1.0f), bad(2 * d + 1, 1.0f);
    EXPECT_THROW(cache.append(bad, bad), shape_error);
    EXPECT_THROW(cache.append(tok, std::vector<float>(4 * d, 1.0f)), shape_error);
    EXPECT_THROW(cache.append(2, tok, tok), shape_error);  // sequence 2 of 2
    tok[5] = std::nanf("");
    EXPECT_THROW(cache.append(tok, tok), value_error);
    EXPECT_EQ(cache.size(), 0u);
    tok[5] = 1.0f;
    cache.append(tok, tok);
    EXPECT_THROW(cache.attend(std::vector<float>(3 * d), out), shape_error);  // 3 of 4 heads
    std::vector<float> small(2 * d), q2(8 * d), out2(8 * d);
    EXPECT_THROW(cache.attend(q, small), shape_error);   // output size
    EXPECT_THROW(cache.attend(q2, out2), shape_error);   // 2 queries, 1 token
    EXPECT_THROW(cache.attend(1, q, out), value_error);  // sequence 1 is empty
}

// KIVI keys: tokens wait in the window until a whole block of G leaves it; a rollback inside a
// quantized block returns the block's kept tokens to the window.
TEST(KVCacheKivi, BlocksLeaveTheWindowWholeAndTruncateReopensABlock) {
    const std::size_t hkv = 2, hq = 4, d = 32, G = 8, R = 12;
    const auto policy = kivi_policy(d, 2, 2, G, R);
    KVCache cache(policy, AttentionShape{hq, hkv, d});
    const auto k = gaussian(40 * hkv * d, 51), v = gaussian(40 * hkv * d, 52);
    auto add = [&](std::size_t from, std::size_t n) {
        cache.append(std::span(k).subspan(from * hkv * d, n * hkv * d),
                     std::span(v).subspan(from * hkv * d, n * hkv * d));
    };
    add(0, 12);
    EXPECT_EQ(cache.layout().held(0), 0u);  // the window holds all 12
    add(12, 1);
    EXPECT_EQ(cache.layout().held(0), 8u);  // one block of 8 left, 5 tokens remain in the window
    add(13, 17);
    EXPECT_EQ(cache.layout().held(0), 24u);
    // Records per head: 2-bit keys, 2 words + 2d/G = 8 side floats (the block's per-channel scale/zero
    // spread over its 8 tokens); 2-bit values, 2 words + 4 channel groups x {scale, zero}.
    const std::size_t rec = hkv * ((2 + 8) + (2 + 8)) * 4;
    EXPECT_EQ(cache.memory_bytes(), 24 * rec + 6 * hkv * d * 2 * 4);
    const auto q = gaussian(3 * hq * d, 53);
    std::vector<float> a(q.size()), b(q.size());
    cache.truncate(0, 19);  // inside the block [16, 24)
    EXPECT_EQ(cache.layout().held(0), 16u);
    EXPECT_EQ(cache.held(), 19u);
    cache.attend(q, a);
    cache.attend_reference(q, b);
    EXPECT_LT(test::max_abs_diff(a, b), 1e-5f);
    add(19, 10);  // the window refills and gives up [16, 24) again as a block
    EXPECT_EQ(cache.size(), 29u);
    EXPECT_EQ(cache.layout().held(0), 24u);
    cache.attend(q, a);
    cache.attend_reference(q, b);
    EXPECT_LT(test::max_abs_diff(a, b), 1e-5f);
}

TEST(KVCacheKivi, ConfigurationErrors) {
    const std::size_t d = 32;
    EXPECT_THROW((void)kivi_policy(d, 2, 2, 32, 16), config_error);  // window smaller than a block
    EXPECT_THROW((void)kivi_policy(d, 2, 2, 48, 64), config_error);  // 64 side values over 48 tokens
    const auto policy = kivi_policy(d, 2, 2, 8, 16);
    using Paged = KVCache<KiviPolicy, PagedLayout>;
    EXPECT_THROW(Paged(policy, AttentionShape{2, 2, d}, 1, PagedOptions{.page_tokens = 12, .max_pages = 0}),
                 config_error);
    EXPECT_NO_THROW(Paged(policy, AttentionShape{2, 2, d}, 1, PagedOptions{.page_tokens = 16, .max_pages = 0}));
    using Ring = KVCache<KiviPolicy, RingLayout>;
    EXPECT_THROW(Ring(policy, AttentionShape{2, 2, d}, 1, RingOptions{.window = 64, .max_chunk = 1}), config_error);
}

// Distinct sequences appended and attended from different threads at once give the same results
// as one thread doing everything (paged: the page pool is shared; ring: evictions).
template <KVLayout L>
void concurrent_sequences(const typename L::options& opts) {
    const std::size_t hkv = 2, hq = 4, d = 32, batch = 4, T = 60;
    const auto policy = turboquant_mse_policy(d, 3, 3, 77, 4);
    using Cache = KVCache<TurboQuantMsePolicy, L>;
    auto run = [&](Cache& cache, std::size_t s, std::vector<float>& out) {
        const auto k = gaussian(T * hkv * d, 1000 + s), v = gaussian(T * hkv * d, 2000 + s);
        for (std::size_t t = 0; t < T; ++t) {
            cache.append(s, std::span(k).subspan(t * hkv * d, hkv * d), std::span(v).subspan(t * hkv * d, hkv * d));
            const auto q = gaussian(hq * d, 3000 + 100 * s + t);
            std::vector<float> o(q.size());
            cache.attend(s, q, o);
            out.insert(out.end(), o.begin(), o.end());
        }
    };
    Cache serial(policy, AttentionShape{hq, hkv, d}, batch, opts);
    Cache parallel(policy, AttentionShape{hq, hkv, d}, batch, opts);
    std::vector<std::vector<float>> a(batch), b(batch);
    for (std::size_t s = 0; s < batch; ++s) run(serial, s, a[s]);
    std::vector<std::thread> threads;
    for (std::size_t s = 0; s < batch; ++s) threads.emplace_back([&, s] { run(parallel, s, b[s]); });
    for (auto& t : threads) t.join();
    for (std::size_t s = 0; s < batch; ++s) EXPECT_EQ(a[s], b[s]) << "sequence " << s;
    EXPECT_EQ(parallel.memory_bytes(), serial.memory_bytes());
}

TEST(KVCache, ConcurrentSequences) {
    concurrent_sequences<PagedLayout>(PagedOptions{.page_tokens = 8, .max_pages = 0});
    concurrent_sequences<ContiguousLayout>(ContiguousOptions{});
    concurrent_sequences<RingLayout>(RingOptions{.window = 20, .max_chunk = 1});
}

}  // namespace
}  // namespace optiq::kv

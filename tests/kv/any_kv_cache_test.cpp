#include "optiq/kv/any_kv_cache.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kv_test_util.hpp"

namespace optiq::kv {
namespace {

using test::gaussian;
constexpr std::size_t kHq = 4, kHkv = 2, kDim = 64, kTok = kHkv * kDim;

TEST(AnyKVCache, EveryMethodFromAConfigFile) {
    const auto cfg = parse_kv_config(R"([
        {"layer_idx": 0, "bits": 8, "group_size": 64},
        {"layer_idx": 1, "bits": 4, "group_size": 32, "v_bits": 0},
        {"layer_idx": 2, "bits": 0, "group_size": 64},
        {"layer_idx": 3, "bits": 4, "group_size": 64, "v_bits": 3, "method": "tq_mse"},
        {"layer_idx": 4, "bits": 3, "group_size": 64, "method": "tq_prod"},
        {"layer_idx": 5, "bits": 4, "group_size": 64, "method": "rvq"},
        {"layer_idx": 6, "bits": 2, "group_size": 64, "method": "polar"},
        {"layer_idx": 7, "bits": 1, "group_size": 64, "v_bits": 0, "method": "qjl"},
        {"layer_idx": 8, "bits": 2, "group_size": 32, "k_bits": 0, "method": "kivi"}])");
    const std::vector<std::string> names = {"k=affine:8:g64,v=affine:8:g64,recent=3",
                                            "k=affine:4:g32,v=f16,recent=3",
                                            "k=f16,v=f16,recent=3",
                                            "k=tq_mse:4,v=tq_mse:3,recent=3",
                                            "k=tq_prod:3,v=tq_prod:3,recent=3",
                                            "k=rvq:2,v=rvq:2,recent=3",
                                            "k=polar:2,2,2,2,v=polar:2,2,2,2,recent=3",
                                            "k=qjl,v=f16,recent=3",
                                            "k=f16,v=kivi_values:2:g32:r0,recent=3"};
    const auto k = gaussian(30 * kTok, 1), v = gaussian(30 * kTok, 2), q = gaussian(2 * kHq * kDim, 3);
    for (const auto& layer : cfg.layers) {
        auto cache = make_kv_cache(layer, AttentionShape{kHq, kHkv, kDim}, KVCacheOptions<>{.batch = 2, .recent = 3});
        EXPECT_EQ(cache.name(), names[static_cast<std::size_t>(layer.layer_idx)]);
        cache.append(1, k, v);
        std::vector<float> a(q.size()), b(q.size());
        cache.attend(1, q, a);
        cache.attend_reference(1, q, b);
        EXPECT_LT(test::max_abs_diff(a, b), 1e-5f) << cache.name();
        EXPECT_EQ(cache.size(1), 30u);
        EXPECT_EQ(cache.size(0), 0u);
    }
}

TEST(AnyKVCache, SameNumbersAsTheTypedCache) {
    KVLayerConfig layer;
    layer.layer_idx = 5;
    layer.bits = 3;
    layer.method = "tq_mse";
    auto any = make_kv_cache(layer, AttentionShape{kHq, kHkv, kDim});
    // Layer seed = 42 + layer_idx.
    KVCache typed(turboquant_mse_policy(kDim, 3, 3, 47), AttentionShape{kHq, kHkv, kDim});
    const auto k = gaussian(12 * kTok, 4), v = gaussian(12 * kTok, 5), q = gaussian(kHq * kDim, 6);
    any.append(k, v);
    typed.append(k, v);
    std::vector<float> a(q.size()), b(q.size()), c(q.size());
    any.attend(q, a);
    typed.attend(q, b);
    EXPECT_EQ(a, b);
    ThreadPool pool(2);
    for (const auto arch : test::archs()) {
        any.attend_on(arch, 0, q, a, &pool);
        typed.attend_on(arch, 0, q, b);
        EXPECT_EQ(a, b) << backend::arch::arch_name(arch);
    }
    any.attend(0, q, c, &pool);
    typed.attend(q, b);
    EXPECT_EQ(c, b);
    EXPECT_EQ(any.memory_bytes(), typed.memory_bytes());
    EXPECT_NE((any.target<TurboQuantMsePolicy>()), nullptr);
    EXPECT_EQ((any.target<MlxAffinePolicy>()), nullptr);
    any.truncate(0, 5);
    EXPECT_EQ(any.size(), 5u);
    any.clear();
    EXPECT_EQ(any.size(), 0u);
}

// KVCacheOptions::int8_attention: 4-bit tq_mse layers score and sum values in int8 where the CPU
// has AVX-512 VNNI, score keys in int8 on AArch64 with the dot-product extension
// (backend/simd/kv_int8.hpp), within a few percent of exact; other widths are
// unchanged, the records are the same, and attend_reference stays the exact ground truth.
TEST(AnyKVCache, Int8AttentionOption) {
    KVLayerConfig layer;
    layer.layer_idx = 1;
    layer.bits = 4;
    layer.method = "tq_mse";
    const AttentionShape shape{kHq, kHkv, kDim};
    auto exact = make_kv_cache(layer, shape);
    auto fast = make_kv_cache(layer, shape, KVCacheOptions<>{.int8_attention = true});
    EXPECT_NE(fast.name().find("k=tq_mse:4+int8,v=tq_mse:4+int8"), std::string::npos) << fast.name();
    KVLayerConfig three = layer;
    three.bits = 3;
    EXPECT_EQ(make_kv_cache(three, shape, KVCacheOptions<>{.int8_attention = true}).name(),
              make_kv_cache(three, shape).name());
    const auto k = gaussian(300 * kTok, 17), v = gaussian(300 * kTok, 18), q = gaussian(kHq * kDim, 19);
    exact.append(k, v);
    fast.append(k, v);
    EXPECT_EQ(fast.memory_bytes(), exact.memory_bytes());
    std::vector<float> a(q.size()), b(q.size()), c(q.size()), d(q.size());
    exact.attend(q, a);
    fast.attend(q, b);
    EXPECT_LT(test::max_abs_diff(a, b), 0.03f * test::max_abs(a));
#if defined(OPTIQ_SIMD_X86)
    if (backend::arch::best_arch() == backend::arch::Arch::avx512 && backend::arch::has_avx512_vnni())
        EXPECT_GT(test::max_abs_diff(a, b), 0.0f);  // the int8 kernels ran
    else
        EXPECT_EQ(a, b);
#elif defined(OPTIQ_NEON_INT8_KEYS)
    EXPECT_GT(test::max_abs_diff(a, b), 0.0f);  // sdot key scores (AArch64 with the dot-product extension)
#else
    EXPECT_EQ(a, b);  // no int8 kernels: exact
#endif
    fast.attend_reference(q, c);
    exact.attend_reference(q, d);
    EXPECT_EQ(c, d);
}

TEST(AnyKVCache, KiviKeysAndValues) {
    const auto cfg = parse_kv_config(R"([{"layer_idx": 2, "bits": 2, "group_size": 32, "method": "kivi"}])");
    const AttentionShape shape{kHq, kHkv, kDim};
    // A window smaller than a key block (or none, as a kv_config.json alone gives) is widened to
    // one block: KIVI's full-precision residual.
    EXPECT_EQ(make_kv_cache(cfg.layers[0], shape, KVCacheOptions<>{.recent = 16}).name(),
              "k=kivi_keys:2:g32:r0,v=kivi_values:2:g32:r0,recent=32");
    EXPECT_EQ(make_kv_cache(cfg.layers[0], shape).name(), "k=kivi_keys:2:g32:r0,v=kivi_values:2:g32:r0,recent=32");
    auto cache = make_kv_cache(cfg.layers[0], shape, KVCacheOptions<>{.recent = 40});
    EXPECT_EQ(cache.name(), "k=kivi_keys:2:g32:r0,v=kivi_values:2:g32:r0,recent=40");
    const auto k = gaussian(100 * kTok, 7), v = gaussian(100 * kTok, 8), q = gaussian(4 * kHq * kDim, 9);
    cache.append(k, v);
    EXPECT_EQ(cache.size(), 100u);
    std::vector<float> a(q.size()), b(q.size());
    cache.attend(q, a);
    cache.attend_reference(q, b);
    EXPECT_LT(test::max_abs_diff(a, b), 1e-5f);
}

TEST(AnyKVCache, OneCachePerModelLayer) {
    const auto cfg = parse_kv_config(R"([{"layer_idx": 1, "bits": 4, "group_size": 64},
                                         {"layer_idx": 3, "bits": 3, "method": "tq_mse"}])");
    auto caches = make_kv_caches(cfg, 4, AttentionShape{kHq, kHkv, kDim});
    ASSERT_EQ(caches.size(), 4u);
    EXPECT_EQ(caches[0].name(), "k=f16,v=f16");
    EXPECT_EQ(caches[1].name(), "k=affine:4:g64,v=affine:4:g64");
    EXPECT_EQ(caches[2].name(), "k=f16,v=f16");
    EXPECT_EQ(caches[3].name(), "k=tq_mse:3,v=tq_mse:3");
    EXPECT_THROW((void)make_kv_caches(cfg, 3, AttentionShape{kHq, kHkv, kDim}), config_error);
}

TEST(AnyKVCache, UnsupportedCombinationsThrow) {
    const AttentionShape shape{kHq, kHkv, kDim};
    auto layer = [](int bits, const char* method) {
        KVLayerConfig l;
        l.bits = bits;
        l.method = method;
        return l;
    };
    EXPECT_THROW((void)make_kv_cache(layer(3, "rvq"), shape), config_error);
    EXPECT_THROW((void)make_kv_cache(layer(2, "qjl"), shape), config_error);
    EXPECT_THROW((void)make_kv_cache(layer(4, "affine"), AttentionShape{kHq, kHkv, 48}), config_error);
    EXPECT_THROW((void)make_kv_cache(layer(4, "tq_mse"), AttentionShape{kHq, 3, kDim}), shape_error);
    AnyKVCache empty;
    EXPECT_FALSE(empty);
    EXPECT_THROW((void)empty.size(), config_error);
}

}  // namespace
}  // namespace optiq::kv

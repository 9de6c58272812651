#pragma once
// AnyKVCache: a KVCache whose policy was chosen at run time, from a kv_config.json entry — the
// per-layer mixed precision a model needs (layer 0 at 8 bits, layer 5 in f16, ...). Dispatch is
// virtual once per append/attend call, never per token: each call runs the concrete
// KVCache<Policy, Layout> inside.
//
//   const auto cfg = kv::read_kv_config("kv_config.json");
//   kv::AnyKVCache layer3 = kv::make_kv_cache(*cfg.find(3), {32, 8, 128}, {.recent = 128});
//
// Methods (KVLayerConfig::method; bits per coordinate are the entry's k_bits / v_bits, 0 = f16):
//   affine   mlx-lm's QuantizedKVCache: MLX affine, groups of group_size, 1..8 bits (default)
//   tq_mse   TurboQuant-MSE, 1..8 bits        tq_prod  TurboQuant-Prod, 1..8 bits
//   rvq      two-stage RVQ; bits is the total per coordinate (even): bits/2 per stage
//   polar    PolarQuant, L = 4 levels at `bits` each (d divisible by 16)
//   qjl      1 bit per sketch row (bits must be 1), m = d
//   kivi     KIVI: keys per channel in blocks of group_size tokens (the recent window is widened
//            to group_size when smaller: KIVI's residual), values per token in channel groups
// Seeds: layer seed = options.seed + layer_idx (mlx-optiq's TurboQuantKVCache(seed = 42 + i)).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/kv/attention.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/kv_config.hpp"
#include "optiq/kv/layouts/contiguous.hpp"
#include "optiq/kv/layouts/paged.hpp"
#include "optiq/kv/policies.hpp"

namespace optiq::kv {

class AnyKVCache {
public:
    AnyKVCache() = default;

    template <KVPolicy P, KVLayout L>
    explicit AnyKVCache(KVCache<P, L> cache) : self_(std::make_unique<Model<P, L>>(std::move(cache))) {}

    [[nodiscard]] explicit operator bool() const noexcept { return self_ != nullptr; }
    /// The policy's name: "k=tq_mse:4,v=tq_mse:3,recent=128".
    [[nodiscard]] std::string name() const { return get().name(); }
    [[nodiscard]] AttentionShape shape() const { return get().shape(); }
    [[nodiscard]] std::size_t batch() const { return get().batch(); }
    [[nodiscard]] std::size_t size(std::size_t seq = 0) const { return get().size(seq); }
    [[nodiscard]] std::size_t held(std::size_t seq = 0) const { return get().held(seq); }
    [[nodiscard]] std::size_t memory_bytes() const { return get().memory_bytes(); }

    void append(std::size_t seq, std::span<const float> k, std::span<const float> v) { get().append(seq, k, v); }
    void append(std::span<const float> k, std::span<const float> v) { append(0, k, v); }
    /// With a pool, the KV heads run on its threads (KVCache::attend).
    void attend(std::size_t seq, std::span<const float> q, std::span<float> out, ThreadPool* pool = nullptr) {
        get().attend(seq, q, out, pool, backend::arch::best_arch());
    }
    void attend(std::span<const float> q, std::span<float> out, ThreadPool* pool = nullptr) {
        attend(0, q, out, pool);
    }
    /// attend() with the kernels of a given architecture (KVCache::attend_on).
    void attend_on(backend::arch::Arch arch, std::size_t seq, std::span<const float> q, std::span<float> out,
                   ThreadPool* pool = nullptr) {
        get().attend(seq, q, out, pool, arch);
    }
    void attend_reference(std::size_t seq, std::span<const float> q, std::span<float> out) {
        get().attend_reference(seq, q, out);
    }
    void attend_reference(std::span<const float> q, std::span<float> out) { attend_reference(0, q, out); }
    void truncate(std::size_t seq, std::size_t n) { get().truncate(seq, n); }
    void clear(std::size_t seq) { get().clear(seq); }
    void clear() { get().clear_all(); }

    /// The concrete cache, when its type is known (nullptr otherwise).
    template <KVPolicy P, KVLayout L = ContiguousLayout>
    [[nodiscard]] KVCache<P, L>* target() noexcept {
        auto* m = dynamic_cast<Model<P, L>*>(self_.get());
        return m ? &m->cache : nullptr;
    }

private:
    struct Concept {
        virtual ~Concept() = default;
        virtual std::string name() const = 0;
        virtual AttentionShape shape() const = 0;
        virtual std::size_t batch() const = 0;
        virtual std::size_t size(std::size_t) const = 0;
        virtual std::size_t held(std::size_t) const = 0;
        virtual std::size_t memory_bytes() const = 0;
        virtual void append(std::size_t, std::span<const float>, std::span<const float>) = 0;
        virtual void attend(std::size_t, std::span<const float>, std::span<float>, ThreadPool*, backend::arch::Arch) = 0;
        virtual void attend_reference(std::size_t, std::span<const float>, std::span<float>) = 0;
        virtual void truncate(std::size_t, std::size_t) = 0;
        virtual void clear(std::size_t) = 0;
        virtual void clear_all() = 0;
    };
    template <class P, class L>
    struct Model final : Concept {
        explicit Model(KVCache<P, L> c) : cache(std::move(c)) {}
        std::string name() const override { return cache.policy().name(); }
        AttentionShape shape() const override { return cache.shape(); }
        std::size_t batch() const override { return cache.batch(); }
        std::size_t size(std::size_t s) const override { return cache.size(s); }
        std::size_t held(std::size_t s) const override { return cache.held(s); }
        std::size_t memory_bytes() const override { return cache.memory_bytes(); }
        void append(std::size_t s, std::span<const float> k, std::span<const float> v) override {
            cache.append(s, k, v);
        }
        void attend(std::size_t s, std::span<const float> q, std::span<float> o, ThreadPool* pool,
                    backend::arch::Arch arch) override {
            cache.attend_on(arch, s, q, o, pool);
        }
        void attend_reference(std::size_t s, std::span<const float> q, std::span<float> o) override {
            cache.attend_reference(s, q, o);
        }
        void truncate(std::size_t s, std::size_t n) override { cache.truncate(s, n); }
        void clear(std::size_t s) override { cache.clear(s); }
        void clear_all() override { cache.clear(); }
        KVCache<P, L> cache;
    };

    Concept& get() const {
        if (!self_) optiq::detail::fail<config_error>("kv::AnyKVCache: empty (no cache was assigned)");
        return *self_;
    }

    std::unique_ptr<Concept> self_;
};

template <KVLayout L = ContiguousLayout>
struct KVCacheOptions {
    std::size_t batch = 1;
    std::size_t recent = 0;   ///< newest tokens kept in full precision
    std::uint64_t seed = 42;  ///< layer seed = seed + layer_idx
    /// tq_mse layers at 4 bits: int8 attention arithmetic (backend/simd/kv_int8.hpp; opt-in, approximate).
    bool int8_attention = false;
    typename L::options layout{};
};

namespace detail {

/// Calls build(key_codec, value_codec) with the codecs of one method; bits 0 gives F16Codec.
template <class Make, class Build>
AnyKVCache with_codecs(std::size_t dim, int k_bits, int v_bits, Make&& make, Build&& build) {
    if (k_bits == 0 && v_bits == 0) return build(F16Codec(dim), F16Codec(dim));
    if (k_bits == 0) return build(F16Codec(dim), make(v_bits, "value", false));
    if (v_bits == 0) return build(make(k_bits, "key", true), F16Codec(dim));
    return build(make(k_bits, "key", true), make(v_bits, "value", false));
}

}  // namespace detail

/// A layer's cache from its kv_config.json entry.
template <KVLayout L = ContiguousLayout>
[[nodiscard]] AnyKVCache make_kv_cache(const KVLayerConfig& cfg, const AttentionShape& shape,
                                       const KVCacheOptions<L>& opts = {}) {
    const std::size_t d = shape.dim;
    const std::uint64_t layer_seed = opts.seed + static_cast<std::uint64_t>(cfg.layer_idx);
    const std::uint64_t ks = detail::key_seed(layer_seed), vs = detail::value_seed(layer_seed);
    const std::string method = cfg.method_or_default();
    std::size_t recent = opts.recent;
    const auto build = [&](auto kc, auto vc) {
        using P = Policy<decltype(kc), decltype(vc)>;
        return AnyKVCache(KVCache<P, L>(P(std::move(kc), std::move(vc), recent), shape, opts.batch, opts.layout));
    };
    const auto seed_of = [&](bool key) { return key ? ks : vs; };
    const int kb = cfg.key_bits(), vb = cfg.value_bits();
    if (method == "affine")
        return detail::with_codecs(
            d, kb, vb, [&](int b, const char* w, bool) { return mlx_affine_codec(d, b, cfg.group_size, w); }, build);
    if (method == "tq_mse")
        return detail::with_codecs(
            d, kb, vb,
            [&](int b, const char* w, bool key) {
                auto c = turboquant_mse_codec(d, b, seed_of(key), w);
                c.set_int8_attention(opts.int8_attention && b == 4);
                return c;
            },
            build);
    if (method == "tq_prod")
        return detail::with_codecs(
            d, kb, vb, [&](int b, const char* w, bool key) { return turboquant_prod_codec(d, b, seed_of(key), w); },
            build);
    if (method == "rvq")
        return detail::with_codecs(
            d, kb, vb,
            [&](int b, const char* w, bool key) {
                if (b % 2 != 0)
                    optiq::detail::fail<config_error>("kv layer ", cfg.layer_idx, ": method rvq stores two stages, ", w,
                                                      " bits = ", b, " must be even");
                return rvq_codec(d, b / 2, seed_of(key), w);
            },
            build);
    if (method == "polar")
        return detail::with_codecs(
            d, kb, vb,
            [&](int b, const char*, bool key) { return polar_codec(d, std::vector<int>(4, b), seed_of(key)); }, build);
    if (method == "qjl")
        return detail::with_codecs(
            d, kb, vb,
            [&](int b, const char* w, bool key) {
                if (b != 1)
                    optiq::detail::fail<config_error>("kv layer ", cfg.layer_idx,
                                                      ": method qjl stores 1 bit per sketch row, ", w, " bits = ", b);
                return qjl_codec(d, seed_of(key));
            },
            build);
    if (method == "kivi") {
        // Keys per channel in blocks of group_size tokens: the recent window (KIVI's full-precision
        // residual) holds at least one block, widened to group_size when the options ask for less.
        const std::size_t g = cfg.group_size;
        if (kb != 0) recent = std::max(recent, g);
        if (kb == 0 && vb == 0) return build(F16Codec(d), F16Codec(d));
        if (kb == 0) return build(F16Codec(d), kivi_value_codec(d, vb, g, "value"));
        if (vb == 0) return build(kivi_key_codec(d, kb, g, "key"), F16Codec(d));
        return build(kivi_key_codec(d, kb, g, "key"), kivi_value_codec(d, vb, g, "value"));
    }
    optiq::detail::fail<config_error>("kv layer ", cfg.layer_idx, ": unknown method \"", method, "\"");
}

/// One cache per model layer 0..n_layers-1 from a whole kv_config.json: a layer without an
/// entry keeps an f16 cache (mlx-optiq leaves unlisted layers unquantized). Entries for layers
/// at or past n_layers are an error.
template <KVLayout L = ContiguousLayout>
[[nodiscard]] std::vector<AnyKVCache> make_kv_caches(const KVConfig& cfg, std::size_t n_layers,
                                                     const AttentionShape& shape, const KVCacheOptions<L>& opts = {}) {
    for (const auto& l : cfg.layers)
        if (static_cast<std::size_t>(l.layer_idx) >= n_layers)
            optiq::detail::fail<config_error>("kv_config: layer_idx ", l.layer_idx, " but the model has ", n_layers,
                                              " layers");
    std::vector<AnyKVCache> caches;
    caches.reserve(n_layers);
    for (std::size_t i = 0; i < n_layers; ++i) {
        const KVLayerConfig* entry = cfg.find(static_cast<int>(i));
        KVLayerConfig full;
        full.layer_idx = static_cast<int>(i);
        caches.push_back(make_kv_cache<L>(entry != nullptr ? *entry : full, shape, opts));
    }
    return caches;
}

}  // namespace optiq::kv

// Build time. make_kv_cache<L> instantiates a cache for every method and key/value width pairing
// with its SIMD kernels: about a minute of -O2 compile per layout, in every translation unit that
// calls it (directly, or through model::kv_config_cache_factory, KVKLSensitivity, ...). A program
// of several such units can compile it once: define OPTIQ_KV_EXTERN_TEMPLATES in all of them and
// add one unit (or one per layout, to compile in parallel) that instantiates it:
//   #include <optiq/kv/any_kv_cache.hpp>
//   OPTIQ_KV_INSTANTIATE_MAKE_KV_CACHE(optiq::kv::ContiguousLayout)
//   OPTIQ_KV_INSTANTIATE_MAKE_KV_CACHE(optiq::kv::PagedLayout)
// (RingLayout is not declared extern: a unit using it instantiates it as usual.)
// optiq's own programs do this through the CMake target optiq_kv_instances (src/kv_instances/).
#define OPTIQ_KV_INSTANTIATE_MAKE_KV_CACHE(...)                                                          \
    template ::optiq::kv::AnyKVCache optiq::kv::make_kv_cache<__VA_ARGS__>(                            \
        const ::optiq::kv::KVLayerConfig&, const ::optiq::kv::AttentionShape&,                          \
        const ::optiq::kv::KVCacheOptions<__VA_ARGS__>&);

#ifdef OPTIQ_KV_EXTERN_TEMPLATES
namespace optiq::kv {
extern template AnyKVCache make_kv_cache<ContiguousLayout>(const KVLayerConfig&, const AttentionShape&,
                                                           const KVCacheOptions<ContiguousLayout>&);
extern template AnyKVCache make_kv_cache<PagedLayout>(const KVLayerConfig&, const AttentionShape&,
                                                      const KVCacheOptions<PagedLayout>&);
}  // namespace optiq::kv
#endif

#pragma once
// KV-cache quality on synthetic keys with the structure of real LLM keys, and a needle test.
// Used by optiq-kv-report and tests/kv/quality_test.cpp.
//
// Synthetic keys (SyntheticKeyOptions): a few outlier channels with 10-50x the scale of the
// others (real keys: Liu et al., KIVI Sec. 3.1; Ashkboos et al., QuaRot), optionally a
// per-channel offset of the same order (outlier_offset; 0 by default), every token multiplied by
// a log-normal norm factor; values are Gaussian with the same per-token norm variation. Queries are Gaussian, scaled so that the
// attention logits (q·k/sqrt(d)) have a chosen standard deviation over the context.
//
// Quality (evaluate_quality): keys and values are encoded by a method's key and value codecs
// (the records a KVCache would hold), scores come from the codes (codec.score, the path a
// decode step uses), values are dequantized (an int8 method, tq_mse:4+int8: scores from the
// decode kernels and outputs from a KVCache's decode step, so the int8 arithmetic is measured); per query:
//   attn_rel_error = ‖softmax(s̃/√d) Ṽ − softmax(s/√d) V‖ / ‖softmax(s/√d) V‖   (mean over queries)
//   top1_agreement = fraction of queries whose highest-scoring key is the same as in full precision.
// Needle (needle_retrieval): one needle key among n distractors drawn from the same law; the
// needle is a distractor plus a multiple of the query direction, placed so that its exact score
// is the best distractor's plus `margin` standard deviations of the distractor scores (so full
// precision always retrieves it); a trial retrieves when the needle has the highest score
// computed from the codes.
//
// Methods (KVMethod, spelled "method[:bits]"): f16, f32, tq_mse:b, tq_prod:b, rvq:b (b total bits,
// b/2 per stage), qjl (keys; f16 values, as the paper), polar (the paper's 4,2,2,2) or polar:b
// (4 levels at b), kivi:b (keys per channel in blocks of 32 tokens, values per token in groups of
// 32; a trailing partial key block stays in full precision, as KIVI's residual), affine:b (MLX
// affine, groups of 64). Keys and values use the same bits; seeds derive from one layer seed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/layouts/contiguous.hpp"
#include "optiq/kv/policies.hpp"

namespace optiq::kv {

struct SyntheticKeyOptions {
    std::size_t outlier_channels = 4;  ///< channels with a large scale and offset
    float outlier_scale_min = 10.0f;   ///< their scale, uniform in [min, max] x the others'
    float outlier_scale_max = 50.0f;
    float outlier_offset = 0.0f;       ///< offset of an outlier channel, in units of its scale (random sign)
    float norm_sigma = 0.3f;           ///< per-token norm factor exp(N(0, norm_sigma²))
    float logit_std = 2.0f;            ///< std of q·k/sqrt(d) over the context, per query
};

struct SyntheticKV {
    std::size_t dim = 0, tokens = 0, n_queries = 0;
    std::vector<float> keys, values, queries;  ///< row-major [tokens][dim], [n_queries][dim]
};

namespace detail {

[[nodiscard]] inline std::vector<float> exact_scores(std::span<const float> keys, std::span<const float> q) {
    const std::size_t d = q.size(), n = keys.size() / d;
    std::vector<float> s(n);
    for (std::size_t t = 0; t < n; ++t) {
        double acc = 0.0;
        for (std::size_t c = 0; c < d; ++c) acc += static_cast<double>(q[c]) * keys[t * d + c];
        s[t] = static_cast<float>(acc);
    }
    return s;
}

[[nodiscard]] inline double stddev(std::span<const float> x) {
    double m = 0.0, ss = 0.0;
    for (const float v : x) m += v;
    m /= static_cast<double>(x.size());
    for (const float v : x) ss += (v - m) * (v - m);
    return std::sqrt(ss / static_cast<double>(x.size()));
}

}  // namespace detail

/// Keys of `tokens` tokens with outlier channels, Gaussian values, and `n_queries` queries.
[[nodiscard]] inline SyntheticKV make_synthetic_kv(std::size_t tokens, std::size_t dim, std::size_t n_queries,
                                                   const SyntheticKeyOptions& o, std::uint64_t seed) {
    if (dim == 0 || tokens == 0) optiq::detail::fail<shape_error>("make_synthetic_kv: empty shape");
    if (o.outlier_channels > dim)
        optiq::detail::fail<config_error>("make_synthetic_kv: ", o.outlier_channels, " outlier channels > dim ", dim);
    Rng rng(seed);
    std::vector<float> scale(dim, 1.0f), offset(dim, 0.0f);
    // Outlier channels at distinct random positions.
    std::vector<std::size_t> perm(dim);
    for (std::size_t i = 0; i < dim; ++i) perm[i] = i;
    for (std::size_t i = dim; i-- > 1;) std::swap(perm[i], perm[static_cast<std::size_t>(rng.uniform() * static_cast<double>(i + 1)) % (i + 1)]);
    for (std::size_t j = 0; j < o.outlier_channels; ++j) {
        const std::size_t c = perm[j];
        scale[c] = o.outlier_scale_min + static_cast<float>(rng.uniform()) * (o.outlier_scale_max - o.outlier_scale_min);
        offset[c] = (rng.uniform() < 0.5 ? -1.0f : 1.0f) * o.outlier_offset * scale[c];
    }
    SyntheticKV kv;
    kv.dim = dim;
    kv.tokens = tokens;
    kv.n_queries = n_queries;
    kv.keys.resize(tokens * dim);
    kv.values.resize(tokens * dim);
    for (std::size_t t = 0; t < tokens; ++t) {
        const float kn = static_cast<float>(std::exp(o.norm_sigma * rng.normal()));
        const float vn = static_cast<float>(std::exp(o.norm_sigma * rng.normal()));
        for (std::size_t c = 0; c < dim; ++c) {
            kv.keys[t * dim + c] = kn * (offset[c] + scale[c] * static_cast<float>(rng.normal()));
            kv.values[t * dim + c] = vn * static_cast<float>(rng.normal());
        }
    }
    kv.queries.resize(n_queries * dim);
    const double sqrt_d = std::sqrt(static_cast<double>(dim));
    for (std::size_t i = 0; i < n_queries; ++i) {
        const std::span<float> q(kv.queries.data() + i * dim, dim);
        for (auto& v : q) v = static_cast<float>(rng.normal());
        const double sd = detail::stddev(detail::exact_scores(kv.keys, q)) / sqrt_d;
        const float f = sd > 0.0 ? static_cast<float>(o.logit_std / sd) : 1.0f;
        for (auto& v : q) v *= f;
    }
    return kv;
}

/// A method and its bits, parsed from "tq_mse:4", "kivi:2", "qjl", "polar", "f16";
/// "tq_mse:4+int8" asks for int8 attention arithmetic (backend/simd/kv_int8.hpp).
struct KVMethod {
    std::string method;
    int bits = 0;
    bool int8 = false;
    [[nodiscard]] std::string label() const {
        if (method == "f16" || method == "f32" || method == "qjl" || (method == "polar" && bits == 0)) return method;
        return method + ":" + std::to_string(bits) + (int8 ? "+int8" : "");
    }
};

[[nodiscard]] inline KVMethod parse_kv_method(const std::string& spec) {
    KVMethod m;
    std::string s = spec;
    if (s.size() > 5 && s.ends_with("+int8")) {
        m.int8 = true;
        s.resize(s.size() - 5);
    }
    const auto colon = s.find(':');
    m.method = s.substr(0, colon);
    if (colon != std::string::npos) {
        const std::string b = s.substr(colon + 1);
        if (b.empty() || b.find_first_not_of("0123456789") != std::string::npos || b.size() > 2)
            optiq::detail::fail<config_error>("kv method \"", s, "\": bits \"", b, "\" is not a number");
        m.bits = std::stoi(b);
    } else if (m.method == "qjl") {
        m.bits = 1;
    }
    static const char* const known[] = {"f16", "f32", "tq_mse", "tq_prod", "rvq", "qjl", "polar", "kivi", "affine"};
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return m.method == k; }) == std::end(known))
        optiq::detail::fail<config_error>("kv method \"", s, "\": unknown method \"", m.method, "\"");
    const bool needs_bits = m.method != "f16" && m.method != "f32" && m.method != "qjl" && m.method != "polar";
    if (needs_bits && m.bits == 0) optiq::detail::fail<config_error>("kv method \"", s, "\" needs bits (", m.method, ":b)");
    if (m.int8 && (m.method != "tq_mse" || m.bits != 4))
        optiq::detail::fail<config_error>("kv method \"", spec, "\": +int8 attention is available for tq_mse:4 only");
    return m;
}

/// The default sweep of optiq-kv-report and the quality tests.
[[nodiscard]] inline std::vector<KVMethod> default_kv_methods() {
    std::vector<KVMethod> m;
    for (const char* s : {"f16", "tq_mse:2", "tq_mse:3", "tq_mse:4", "tq_mse:4+int8", "tq_prod:3", "tq_prod:4", "rvq:4", "qjl", "polar",
                          "kivi:2", "kivi:4", "affine:4", "affine:8"})
        m.push_back(parse_kv_method(s));
    return m;
}

/// Calls f(key_codec, value_codec) with the codecs of m for d-vectors (seeded from layer_seed)
/// and returns what f returns.
template <class F>
decltype(auto) with_kv_codecs(const KVMethod& m, std::size_t d, std::uint64_t layer_seed, F&& f) {
    const std::uint64_t ks = detail::key_seed(layer_seed), vs = detail::value_seed(layer_seed);
    const int b = m.bits;
    if (m.method == "f32") return f(F32Codec(d), F32Codec(d));
    if (m.method == "tq_mse") {
        auto kc = turboquant_mse_codec(d, b, ks, "key");
        auto vc = turboquant_mse_codec(d, b, vs, "value");
        kc.set_int8_attention(m.int8);
        vc.set_int8_attention(m.int8);
        return f(std::move(kc), std::move(vc));
    }
    if (m.method == "tq_prod")
        return f(turboquant_prod_codec(d, b, ks, "key"), turboquant_prod_codec(d, b, vs, "value"));
    if (m.method == "rvq") {
        if (b % 2 != 0) optiq::detail::fail<config_error>("kv method rvq: bits ", b, " must be even (two stages)");
        return f(rvq_codec(d, b / 2, ks, "key"), rvq_codec(d, b / 2, vs, "value"));
    }
    if (m.method == "qjl") return f(qjl_codec(d, ks), F16Codec(d));
    if (m.method == "polar") {
        const std::vector<int> lb = b == 0 ? PolarQuant<>::paper_bits() : std::vector<int>(4, b);
        return f(polar_codec(d, lb, ks), polar_codec(d, lb, vs));
    }
    if (m.method == "kivi") return f(kivi_key_codec(d, b, 32, "key"), kivi_value_codec(d, b, 32, "value"));
    if (m.method == "affine") return f(mlx_affine_codec(d, b, 64, "key"), mlx_affine_codec(d, b, 64, "value"));
    return f(F16Codec(d), F16Codec(d));
}

/// Bytes of one token's key and value records for one head, with side data at its storage type
/// (f16: 2 bytes; the in-memory KVCache keeps side values as floats, RecordFormat::token_bytes).
template <class K, class V>
[[nodiscard]] double packed_token_bytes(const K& k, const V& v) {
    return 4.0 * static_cast<double>(k.words_per_token() + v.words_per_token()) +
           2.0 * static_cast<double>(k.side_per_token() + v.side_per_token());
}

/// The records of n keys, encoded by a per-token or block key codec. A block codec's trailing
/// partial block is kept exact (the recent window of a KVCache).
template <class K>
class EncodedKeys {
public:
    EncodedKeys(const K& codec, std::span<const float> keys) : codec_(&codec), d_(codec.dim()) {
        n_ = keys.size() / d_;
        w_ = codec.words_per_token();
        s_ = codec.side_per_token();
        words_.resize(n_ * w_);
        side_.resize(n_ * s_);
        scratch_.emplace_back(codec.make_scratch());
        auto& sc = scratch_.front();
        if constexpr (KVBlockKeyCodec<K>) {
            const std::size_t g = codec.block_tokens();
            coded_ = n_ / g * g;
            for (std::size_t t = 0; t < coded_; t += g)
                codec.encode_block(keys.subspan(t * d_, g * d_), std::span<std::uint32_t>(words_).subspan(t * w_, g * w_),
                                   std::span<float>(side_).subspan(t * s_, g * s_), sc);
        } else {
            coded_ = n_;
            for (std::size_t t = 0; t < n_; ++t)
                codec.encode(keys.subspan(t * d_, d_), std::span<std::uint32_t>(words_).subspan(t * w_, w_),
                             std::span<float>(side_).subspan(t * s_, s_), sc);
        }
        tail_.assign(keys.begin() + static_cast<std::ptrdiff_t>(coded_ * d_), keys.end());
    }

    [[nodiscard]] std::size_t size() const noexcept { return n_; }

    /// Scores <q, k̃_t> of every key from its record (out: size() floats).
    void scores(std::span<const float> q, std::span<float> out) {
        auto& sc = scratch_.front();
        typename K::query_state st;
        codec_->prepare_query(q, st, sc);
        const std::span<const typename K::query_state> states(&st, 1);
        if constexpr (KVBlockKeyCodec<K>) {
            const std::size_t g = codec_->block_tokens();
            for (std::size_t t = 0; t < coded_; t += g)
                codec_->score_block(states, std::span<const std::uint32_t>(words_).subspan(t * w_, g * w_),
                                    std::span<const float>(side_).subspan(t * s_, g * s_), sc, out.data() + t, g);
        } else {
            if constexpr (requires { codec_->int8_attention(); }) {
                if (codec_->int8_attention()) {  // the decode kernels' scores (int8 where the CPU has them)
                    const backend::kv::Records r{words_.data(), w_, side_.data(), s_, coded_};
                    backend::arch::dispatch([&](auto tag) { codec_->score_run(tag, states, r, out.data(), 1); });
                    return;
                }
            }
            for (std::size_t t = 0; t < coded_; ++t)
                codec_->score(states, std::span<const std::uint32_t>(words_).subspan(t * w_, w_),
                              std::span<const float>(side_).subspan(t * s_, s_), sc, out.data() + t, 1);
        }
        for (std::size_t t = coded_; t < n_; ++t) {
            float acc = 0.0f;
            for (std::size_t c = 0; c < d_; ++c) acc += q[c] * tail_[(t - coded_) * d_ + c];
            out[t] = acc;
        }
    }

private:
    const K* codec_;
    std::size_t d_, n_ = 0, w_ = 0, s_ = 0, coded_ = 0;
    std::vector<std::uint32_t> words_;
    std::vector<float> side_, tail_;
    std::vector<typename K::scratch_type> scratch_;  // one element: scratch types need not be default-constructible
};

/// Values through a codec and back (the dequantized values attention sums).
template <KVCodec V>
[[nodiscard]] std::vector<float> roundtrip_values(const V& codec, std::span<const float> values) {
    const std::size_t d = codec.dim(), n = values.size() / d;
    std::vector<std::uint32_t> w(codec.words_per_token());
    std::vector<float> s(codec.side_per_token()), out(values.size());
    auto sc = codec.make_scratch();
    for (std::size_t t = 0; t < n; ++t) {
        codec.encode(values.subspan(t * d, d), w, s, sc);
        codec.decode(w, s, std::span<float>(out).subspan(t * d, d));
    }
    return out;
}

struct KVQuality {
    std::string method;
    double bytes_per_token = 0;       ///< key + value, one head, side data at f16
    double compression_vs_f16 = 0;    ///< f16 bytes / bytes_per_token
    double attn_rel_error = 0;        ///< mean over queries
    double top1_agreement = 0;        ///< fraction of queries
    double score_rel_rmse = 0;        ///< RMS score error / RMS exact score (centred), all keys and queries
};

namespace detail {

[[nodiscard]] inline std::vector<float> attention_output(std::span<const float> scores, std::span<const float> values,
                                                         std::size_t d, float scale) {
    float m = -std::numeric_limits<float>::infinity();
    for (const float s : scores) m = std::max(m, s * scale);
    std::vector<double> out(d, 0.0);
    double z = 0.0;
    for (std::size_t t = 0; t < scores.size(); ++t) {
        const double p = std::exp(static_cast<double>(scores[t] * scale - m));
        z += p;
        for (std::size_t c = 0; c < d; ++c) out[c] += p * values[t * d + c];
    }
    std::vector<float> r(d);
    for (std::size_t c = 0; c < d; ++c) r[c] = static_cast<float>(out[c] / z);
    return r;
}

[[nodiscard]] inline std::size_t argmax(std::span<const float> x) {
    return static_cast<std::size_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

}  // namespace detail

/// Attention quality of method m on kv (see the file comment).
[[nodiscard]] inline KVQuality evaluate_quality(const KVMethod& m, const SyntheticKV& kv, std::uint64_t layer_seed = 42) {
    const std::size_t d = kv.dim;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    return with_kv_codecs(m, d, layer_seed, [&](const auto& kc, const auto& vc) {
        KVQuality r;
        r.method = m.label();
        r.bytes_per_token = packed_token_bytes(kc, vc);
        r.compression_vs_f16 = 4.0 * static_cast<double>(d) / r.bytes_per_token;
        EncodedKeys<std::decay_t<decltype(kc)>> keys(kc, kv.keys);
        const auto vhat = roundtrip_values(vc, kv.values);
        std::vector<float> approx(kv.tokens);
        // Int8 attention: outputs from a KVCache's own decode step (int8 scores and value sums).
        using KC = std::decay_t<decltype(kc)>;
        using VC = std::decay_t<decltype(vc)>;
        std::optional<KVCache<Policy<KC, VC>, ContiguousLayout>> cache;
        if constexpr (requires { kc.int8_attention(); }) {
            if (kc.int8_attention()) {
                cache.emplace(Policy<KC, VC>(kc, vc, 0), AttentionShape{1, 1, d, 0.0f});
                cache->append(kv.keys, kv.values);
            }
        }
        double err = 0.0, agree = 0.0, se = 0.0, ss = 0.0;
        for (std::size_t i = 0; i < kv.n_queries; ++i) {
            const std::span<const float> q(kv.queries.data() + i * d, d);
            const auto exact = detail::exact_scores(kv.keys, q);
            keys.scores(q, approx);
            const auto ref = detail::attention_output(exact, kv.values, d, scale);
            auto got = detail::attention_output(approx, vhat, d, scale);
            if (cache) cache->attend(q, got);
            double num = 0.0, den = 0.0;
            for (std::size_t c = 0; c < d; ++c) {
                num += static_cast<double>(got[c] - ref[c]) * (got[c] - ref[c]);
                den += static_cast<double>(ref[c]) * ref[c];
            }
            err += std::sqrt(num / den);
            agree += detail::argmax(exact) == detail::argmax(approx) ? 1.0 : 0.0;
            double mean = 0.0;
            for (const float s : exact) mean += s;
            mean /= static_cast<double>(exact.size());
            for (std::size_t t = 0; t < kv.tokens; ++t) {
                se += static_cast<double>(approx[t] - exact[t]) * (approx[t] - exact[t]);
                ss += (exact[t] - mean) * (exact[t] - mean);
            }
        }
        r.attn_rel_error = err / static_cast<double>(kv.n_queries);
        r.top1_agreement = agree / static_cast<double>(kv.n_queries);
        r.score_rel_rmse = std::sqrt(se / ss);
        return r;
    });
}

struct NeedleOptions {
    std::size_t tokens = 32768;  ///< distractors + 1
    std::size_t trials = 4;
    double margin = 2.0;         ///< needle's exact score above the best distractor's, in distractor-score std
    SyntheticKeyOptions keys{};
};

/// Fraction of trials in which the needle key has the highest score computed from the codes.
[[nodiscard]] inline double needle_retrieval(const KVMethod& m, std::size_t d, const NeedleOptions& o,
                                             std::uint64_t seed = 7) {
    std::size_t hits = 0;
    for (std::size_t trial = 0; trial < o.trials; ++trial) {
        const std::uint64_t s = Rng::derive(seed, trial);
        SyntheticKV kv = make_synthetic_kv(o.tokens, d, 1, o.keys, s);
        const std::span<const float> q(kv.queries.data(), d);
        // The needle: a distractor at a random position, moved along q until its exact score is
        // the best other score + margin·σ of the distractor scores.
        Rng rng(Rng::derive(s, 99));
        const std::size_t pos = static_cast<std::size_t>(rng.uniform() * static_cast<double>(o.tokens)) % o.tokens;
        const auto exact = detail::exact_scores(kv.keys, q);
        double best = -std::numeric_limits<double>::infinity();
        for (std::size_t t = 0; t < exact.size(); ++t)
            if (t != pos) best = std::max(best, static_cast<double>(exact[t]));
        const double sd = detail::stddev(exact);
        double qq = 0.0;
        for (const float v : q) qq += static_cast<double>(v) * v;
        const double shift = (best + o.margin * sd - exact[pos]) / qq;
        for (std::size_t c = 0; c < d; ++c) kv.keys[pos * d + c] += static_cast<float>(shift * q[c]);
        const bool hit = with_kv_codecs(m, d, s, [&](const auto& kc, const auto&) {
            EncodedKeys<std::decay_t<decltype(kc)>> keys(kc, kv.keys);
            std::vector<float> approx(o.tokens);
            keys.scores(q, approx);
            return detail::argmax(approx) == pos;
        });
        hits += hit ? 1 : 0;
    }
    return static_cast<double>(hits) / static_cast<double>(o.trials);
}

/// Mean time of one decode step (KVCache::attend of one new position, all heads) at a context of
/// `context` tokens, in microseconds; shape: q_heads / kv_heads / dim. The cache is filled with
/// Gaussian keys and values (the time does not depend on them). recent: tokens kept in full
/// precision (KIVI's keys need one block: 32).
[[nodiscard]] inline double decode_time_us(const KVMethod& m, const AttentionShape& shape, std::size_t context,
                                           std::size_t reps = 5, std::uint64_t seed = 5) {
    const std::size_t d = shape.dim, kvh = shape.kv_heads;
    return with_kv_codecs(m, d, seed, [&](const auto& kc, const auto& vc) {
        using P = Policy<std::decay_t<decltype(kc)>, std::decay_t<decltype(vc)>>;
        const std::size_t recent = key_block_tokens(kc) > 1 ? key_block_tokens(kc) : 0;
        KVCache<P, ContiguousLayout> cache(P(kc, vc, recent), shape);
        Rng rng(seed);
        const std::size_t chunk = 1024;
        std::vector<float> k(chunk * kvh * d), v(chunk * kvh * d);
        for (std::size_t t0 = 0; t0 < context; t0 += chunk) {
            const std::size_t n = std::min(chunk, context - t0);
            for (std::size_t i = 0; i < n * kvh * d; ++i) {
                k[i] = static_cast<float>(rng.normal());
                v[i] = static_cast<float>(rng.normal());
            }
            cache.append(std::span<const float>(k).subspan(0, n * kvh * d), std::span<const float>(v).subspan(0, n * kvh * d));
        }
        std::vector<float> q(shape.q_heads * d), out(shape.q_heads * d);
        for (auto& x : q) x = static_cast<float>(rng.normal());
        cache.attend(q, out);  // warm-up (sizes the score rows)
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t r = 0; r < reps; ++r) cache.attend(q, out);
        const std::chrono::duration<double, std::micro> dt = std::chrono::steady_clock::now() - t0;
        return dt.count() / static_cast<double>(reps);
    });
}

}  // namespace optiq::kv

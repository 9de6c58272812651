#pragma once
// model::Transformer: the forward pass of the Llama family (Llama, Mistral, SmolLM: RMSNorm, RoPE
// with theta and Llama 3 scaling, GQA, SwiGLU, tied or untied head), Qwen2 (q/k/v bias) and
// Qwen3 (per-head q/k RMSNorm), over Linear weights in any stored format and one kv::AnyKVCache
// per layer (sequence 0 of each).
//
//   auto m = model::load("SmolLM2.gguf");                 // loader.hpp
//   auto last = m.forward(prompt_ids, 0);                  // prefill (in chunks): last position's logits
//   auto next = m.forward(std::array{tok}, m.position());  // decode one token
//   auto all  = m.logits_all(ids);                         // [n][vocab], from an empty cache
//
// Hook points for sensitivity: every Linear is reachable by its HF name (linear("model.layers.3.
// self_attn.q_proj")) and may be replaced by a Linear of another format; every layer's cache comes
// from a CacheFactory (f32 by default; kv_config_cache_factory builds kv_config.json's) and can be
// replaced alone with set_cache(layer, cache).
//
// The math follows llama2.c's run.c and HF's modeling_llama in float32: x·rsqrt(mean(x²)+eps)·w;
// q,k rotated by (pos·θ^(-2i/d)) on adjacent pairs (rope_interleaved: llama2.c, GGUF "llama" rows) or
// on halves (HF order); attention softmax(q·kᵀ/√d)·v through the cache; down(silu(gate x) · up x).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/kv/any_kv_cache.hpp"
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/kv_config.hpp"
#include "optiq/kv/policies/full_precision.hpp"
#include "optiq/model/config.hpp"
#include "optiq/model/weights.hpp"

namespace optiq::model {

using TokenId = std::int32_t;

struct LayerWeights {
    std::vector<float> attn_norm, ffn_norm;
    std::vector<float> q_norm, k_norm;  ///< Qwen3: [head_dim] each
    Linear q, k, v, o;
    Linear gate, up, down;
};

struct TransformerWeights {
    Linear embed;  ///< [vocab, dim]; also the head when lm_head is empty (tied)
    std::vector<LayerWeights> layers;
    std::vector<float> final_norm;
    Linear lm_head;  ///< empty when tied to embed
};

/// Builds the cache of one layer.
using CacheFactory = std::function<kv::AnyKVCache(std::size_t layer, const kv::AttentionShape& shape)>;

/// Full-precision f32 keys and values (the default: attention equals the plain float loop).
[[nodiscard]] inline CacheFactory f32_cache_factory() {
    return [](std::size_t, const kv::AttentionShape& s) {
        using P = kv::FullPrecisionPolicy<SideType::f32>;
        return kv::AnyKVCache(kv::KVCache<P>(kv::full_precision_policy<SideType::f32>(s.dim), s));
    };
}

/// The caches a kv_config.json describes (layers without an entry: f16, as make_kv_caches).
[[nodiscard]] inline CacheFactory kv_config_cache_factory(kv::KVConfig cfg, kv::KVCacheOptions<> opts = {}) {
    return [cfg = std::move(cfg), opts](std::size_t layer, const kv::AttentionShape& s) {
        const kv::KVLayerConfig* e = cfg.find(static_cast<int>(layer));
        kv::KVLayerConfig full;
        full.layer_idx = static_cast<int>(layer);
        return kv::make_kv_cache(e ? *e : full, s, opts);
    };
}

struct TransformerOptions {
    std::size_t threads = 2;        ///< matmul threads (the calling thread included)
    std::size_t prefill_chunk = 64; ///< tokens per forward step of a long prompt
};

class Transformer {
public:
    Transformer(ModelConfig config, TransformerWeights weights, CacheFactory caches = f32_cache_factory(),
                TransformerOptions options = {})
        : config_(std::move(config)),
          w_(std::move(weights)),
          factory_(std::move(caches)),
          options_(options),
          pool_(std::make_unique<ThreadPool>(std::max<std::size_t>(1, options.threads))) {
        check_weights();
        inv_freq_ = config_.rope_inv_freq();
        set_cache_factory(factory_);
    }

    [[nodiscard]] const ModelConfig& config() const noexcept { return config_; }
    [[nodiscard]] TransformerWeights& weights() noexcept { return w_; }
    [[nodiscard]] const TransformerWeights& weights() const noexcept { return w_; }
    [[nodiscard]] LayerWeights& layer(std::size_t i) { return w_.layers.at(i); }
    [[nodiscard]] const Linear& head() const noexcept { return w_.lm_head.empty() ? w_.embed : w_.lm_head; }
    [[nodiscard]] ThreadPool& pool() noexcept { return *pool_; }
    [[nodiscard]] const TransformerOptions& options() const noexcept { return options_; }
    void set_prefill_chunk(std::size_t n) { options_.prefill_chunk = std::max<std::size_t>(1, n); }

    /// A linear layer by its HF module name ("model.layers.3.mlp.down_proj", "lm_head",
    /// "model.embed_tokens"); nullptr when there is none (lm_head of a tied model).
    [[nodiscard]] Linear* linear(std::string_view name) {
        Linear* found = nullptr;
        for_each_linear([&](const std::string& n, Linear& l) {
            if (n == name) found = &l;
        });
        return found;
    }
    /// Calls f(hf_module_name, linear) for every linear layer, embedding and untied head included.
    template <class F>
    void for_each_linear(F&& f) {
        f(std::string("model.embed_tokens"), w_.embed);
        for (std::size_t i = 0; i < w_.layers.size(); ++i) {
            auto& L = w_.layers[i];
            const std::string p = "model.layers." + std::to_string(i) + ".";
            f(p + "self_attn.q_proj", L.q);
            f(p + "self_attn.k_proj", L.k);
            f(p + "self_attn.v_proj", L.v);
            f(p + "self_attn.o_proj", L.o);
            f(p + "mlp.gate_proj", L.gate);
            f(p + "mlp.up_proj", L.up);
            f(p + "mlp.down_proj", L.down);
        }
        if (!w_.lm_head.empty()) f(std::string("lm_head"), w_.lm_head);
    }
    /// Replaces one linear layer (same shape; its bias is kept when the replacement has none).
    void replace_linear(std::string_view name, Linear replacement) {
        Linear* l = linear(name);
        if (!l) optiq::detail::fail<config_error>("model::Transformer: no linear layer named '", name, "'");
        if (replacement.out_features() != l->out_features() || replacement.in_features() != l->in_features())
            optiq::detail::fail<shape_error>("model::Transformer: '", name, "' is [", l->out_features(), ", ",
                                             l->in_features(), "], the replacement [", replacement.out_features(), ", ",
                                             replacement.in_features(), "]");
        if (replacement.bias().empty() && !l->bias().empty()) replacement.set_bias(l->bias());
        *l = std::move(replacement);
    }

    [[nodiscard]] kv::AttentionShape attention_shape() const noexcept {
        return {config_.n_heads, config_.n_kv_heads, config_.head_dim, 0.0f};
    }
    [[nodiscard]] kv::AnyKVCache& cache(std::size_t layer) { return caches_.at(layer); }
    /// Replaces one layer's cache; the caches are then cleared (positions restart at 0).
    void set_cache(std::size_t layer, kv::AnyKVCache c) {
        if (layer >= caches_.size())
            optiq::detail::fail<shape_error>("model::Transformer::set_cache: layer ", layer, " of ", caches_.size());
        const auto s = c.shape(), want = attention_shape();
        if (s.q_heads != want.q_heads || s.kv_heads != want.kv_heads || s.dim != want.dim)
            optiq::detail::fail<shape_error>("model::Transformer::set_cache: layer ", layer, " cache is for ", s.q_heads,
                                             "/", s.kv_heads, " heads of ", s.dim, ", the model has ", want.q_heads, "/",
                                             want.kv_heads, " of ", want.dim);
        caches_[layer] = std::move(c);
        reset();
    }
    /// New caches for every layer from `f`.
    void set_cache_factory(CacheFactory f) {
        factory_ = std::move(f);
        caches_.clear();
        for (std::size_t i = 0; i < config_.n_layers; ++i) caches_.push_back(factory_(i, attention_shape()));
    }
    /// Empties every cache.
    void reset() {
        for (auto& c : caches_) c.clear();
        position_ = 0;
    }
    /// Tokens held in the caches: the position the next token gets.
    [[nodiscard]] std::size_t position() const noexcept { return position_; }

    /// Runs tokens at positions start_pos, start_pos+1, ... (start_pos <= position(); a smaller
    /// start_pos rolls the caches back first). Returns the logits of the last token [vocab], or of
    /// every token [n][vocab] when all_logits. Long inputs run in chunks of options().prefill_chunk.
    std::vector<float> forward(std::span<const TokenId> tokens, std::size_t start_pos, bool all_logits = false) {
        return forward_from(tokens, start_pos, all_logits ? 0 : tokens.size() - (tokens.empty() ? 0 : 1));
    }
    /// As forward, returning the logits of tokens[from..n) [(n - from)][vocab].
    std::vector<float> forward_from(std::span<const TokenId> tokens, std::size_t start_pos, std::size_t from) {
        if (tokens.empty()) optiq::detail::fail<value_error>("model::Transformer::forward: no tokens");
        if (from >= tokens.size())
            optiq::detail::fail<value_error>("model::Transformer::forward: logits from index ", from, " of ",
                                             tokens.size(), " tokens");
        if (start_pos > position_)
            optiq::detail::fail<value_error>("model::Transformer::forward: start position ", start_pos,
                                             " is past the cached ", position_, " tokens");
        for (std::size_t i = 0; i < tokens.size(); ++i)
            if (tokens[i] < 0 || static_cast<std::size_t>(tokens[i]) >= config_.vocab_size)
                optiq::detail::fail<value_error>("model::Transformer::forward: token ", tokens[i], " at index ", i,
                                                 " is outside the vocabulary of ", config_.vocab_size);
        if (start_pos < position_) {
            for (auto& c : caches_) c.truncate(0, start_pos);
            position_ = start_pos;
        }
        const std::size_t V = config_.vocab_size, chunk = std::max<std::size_t>(1, options_.prefill_chunk);
        std::vector<float> out((tokens.size() - from) * V);
        for (std::size_t b = 0; b < tokens.size(); b += chunk) {
            const std::size_t n = std::min(chunk, tokens.size() - b);
            const std::size_t first = std::clamp(from, b, b + n) - b;  // first token of the chunk with logits
            run(tokens.subspan(b, n), first < n ? std::span<float>(out.data() + (b + first - from) * V, (n - first) * V)
                                                : std::span<float>(), first);
        }
        return out;
    }
    /// One decode step at position().
    std::vector<float> decode(TokenId token) {
        const std::array<TokenId, 1> t{token};
        return forward(t, position_);
    }
    /// Logits at every position of `tokens` [n][vocab], from empty caches (perplexity, KL).
    std::vector<float> logits_all(std::span<const TokenId> tokens) {
        reset();
        return forward_from(tokens, 0, 0);
    }

private:
    void check_weights() const {
        const auto& c = config_;
        c.validate("model::Transformer");
        auto need = [](const Linear& l, std::size_t out, std::size_t in, const char* what, std::size_t layer) {
            if (l.empty() || l.out_features() != out || l.in_features() != in)
                optiq::detail::fail<shape_error>("model::Transformer: layer ", layer, " ", what, " is [",
                                                 l.out_features(), ", ", l.in_features(), "], needs [", out, ", ", in, "]");
        };
        auto vec = [](const std::vector<float>& v, std::size_t n, const char* what, std::size_t layer) {
            if (v.size() != n)
                optiq::detail::fail<shape_error>("model::Transformer: layer ", layer, " ", what, " has ", v.size(),
                                                 " values, needs ", n);
        };
        if (w_.embed.empty() || w_.embed.out_features() != c.vocab_size || w_.embed.in_features() != c.dim)
            optiq::detail::fail<shape_error>("model::Transformer: embedding is [", w_.embed.out_features(), ", ",
                                             w_.embed.in_features(), "], needs [", c.vocab_size, ", ", c.dim, "]");
        if (!w_.lm_head.empty() && (w_.lm_head.out_features() != c.vocab_size || w_.lm_head.in_features() != c.dim))
            optiq::detail::fail<shape_error>("model::Transformer: lm_head is [", w_.lm_head.out_features(), ", ",
                                             w_.lm_head.in_features(), "], needs [", c.vocab_size, ", ", c.dim, "]");
        if (w_.layers.size() != c.n_layers)
            optiq::detail::fail<shape_error>("model::Transformer: ", w_.layers.size(), " layers, config says ", c.n_layers);
        if (w_.final_norm.size() != c.dim)
            optiq::detail::fail<shape_error>("model::Transformer: final norm has ", w_.final_norm.size(), " values, needs ",
                                             c.dim);
        for (std::size_t i = 0; i < c.n_layers; ++i) {
            const auto& L = w_.layers[i];
            vec(L.attn_norm, c.dim, "input_layernorm", i);
            vec(L.ffn_norm, c.dim, "post_attention_layernorm", i);
            need(L.q, c.q_dim(), c.dim, "q_proj", i);
            need(L.k, c.kv_dim(), c.dim, "k_proj", i);
            need(L.v, c.kv_dim(), c.dim, "v_proj", i);
            need(L.o, c.dim, c.q_dim(), "o_proj", i);
            need(L.gate, c.hidden_dim, c.dim, "gate_proj", i);
            need(L.up, c.hidden_dim, c.dim, "up_proj", i);
            need(L.down, c.dim, c.hidden_dim, "down_proj", i);
            if (c.qk_norm) {
                vec(L.q_norm, c.head_dim, "q_norm", i);
                vec(L.k_norm, c.head_dim, "k_norm", i);
            }
        }
    }

    static void rmsnorm(const float* x, const float* w, float* out, std::size_t d, float eps) noexcept {
        float ss = 0.0f;
        for (std::size_t i = 0; i < d; ++i) ss += x[i] * x[i];
        const float r = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
        for (std::size_t i = 0; i < d; ++i) out[i] = w[i] * (r * x[i]);
    }

    /// Rotates each head of x [heads][head_dim] at position pos.
    void rope(float* x, std::size_t heads, std::size_t pos) const noexcept {
        const std::size_t hd = config_.head_dim, half = hd / 2;
        for (std::size_t i = 0; i < half; ++i) {
            const float a = static_cast<float>(pos) * inv_freq_[i];
            const float c = std::cos(a), s = std::sin(a);
            for (std::size_t h = 0; h < heads; ++h) {
                float* v = x + h * hd;
                const std::size_t i0 = config_.rope_interleaved ? 2 * i : i;
                const std::size_t i1 = config_.rope_interleaved ? 2 * i + 1 : i + half;
                const float v0 = v[i0], v1 = v[i1];
                v[i0] = v0 * c - v1 * s;
                v[i1] = v0 * s + v1 * c;
            }
        }
    }

    /// One chunk of n tokens at position_; logits of tokens [first, n) into `logits`.
    void run(std::span<const TokenId> tokens, std::span<float> logits, std::size_t first) {
        const auto& c = config_;
        const std::size_t n = tokens.size(), d = c.dim, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
        ThreadPool* pool = pool_.get();
        x_.resize(n * d);
        xn_.resize(n * d);
        q_.resize(n * qd);
        k_.resize(n * kvd);
        v_.resize(n * kvd);
        att_.resize(n * qd);
        g_.resize(n * c.hidden_dim);
        u_.resize(n * c.hidden_dim);
        tmp_.resize(n * d);
        for (std::size_t t = 0; t < n; ++t) w_.embed.row(static_cast<std::size_t>(tokens[t]), {x_.data() + t * d, d});
        for (std::size_t l = 0; l < c.n_layers; ++l) {
            const auto& L = w_.layers[l];
            for (std::size_t t = 0; t < n; ++t)
                rmsnorm(x_.data() + t * d, L.attn_norm.data(), xn_.data() + t * d, d, c.rms_norm_eps);
            L.q.matmul(xn_, n, q_, pool);
            L.k.matmul(xn_, n, k_, pool);
            L.v.matmul(xn_, n, v_, pool);
            for (std::size_t t = 0; t < n; ++t) {
                float* qt = q_.data() + t * qd;
                float* kt = k_.data() + t * kvd;
                if (c.qk_norm) {
                    for (std::size_t h = 0; h < c.n_heads; ++h)
                        rmsnorm(qt + h * hd, L.q_norm.data(), qt + h * hd, hd, c.rms_norm_eps);
                    for (std::size_t h = 0; h < c.n_kv_heads; ++h)
                        rmsnorm(kt + h * hd, L.k_norm.data(), kt + h * hd, hd, c.rms_norm_eps);
                }
                rope(qt, c.n_heads, position_ + t);
                rope(kt, c.n_kv_heads, position_ + t);
            }
            caches_[l].append(0, k_, v_);
            caches_[l].attend(0, q_, att_);
            L.o.matmul(att_, n, tmp_, pool);
            for (std::size_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
            for (std::size_t t = 0; t < n; ++t)
                rmsnorm(x_.data() + t * d, L.ffn_norm.data(), xn_.data() + t * d, d, c.rms_norm_eps);
            L.gate.matmul(xn_, n, g_, pool);
            L.up.matmul(xn_, n, u_, pool);
            for (std::size_t i = 0; i < g_.size(); ++i) g_[i] = g_[i] / (1.0f + std::exp(-g_[i])) * u_[i];
            L.down.matmul(g_, n, tmp_, pool);
            for (std::size_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
        }
        position_ += n;
        if (first >= n) return;
        const std::size_t m = n - first;
        for (std::size_t t = first; t < n; ++t)
            rmsnorm(x_.data() + t * d, w_.final_norm.data(), xn_.data() + (t - first) * d, d, c.rms_norm_eps);
        head().matmul({xn_.data(), m * d}, m, logits, pool);
    }

    ModelConfig config_;
    TransformerWeights w_;
    CacheFactory factory_;
    TransformerOptions options_;
    std::unique_ptr<ThreadPool> pool_;
    std::vector<kv::AnyKVCache> caches_;
    std::vector<float> inv_freq_;
    std::size_t position_ = 0;
    std::vector<float> x_, xn_, q_, k_, v_, att_, g_, u_, tmp_;  // activations of one chunk
};

}  // namespace optiq::model

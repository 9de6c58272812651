#pragma once
// model::Transformer: the forward pass of the Llama family (Llama, Mistral, SmolLM: RMSNorm, RoPE
// with theta and Llama 3 scaling, GQA, SwiGLU, tied or untied head), Qwen2 (q/k/v bias) and
// Qwen3 (per-head q/k RMSNorm), over Linear weights in any stored format and one kv::AnyKVCache
// per layer holding TransformerOptions::sequences independent sequences (slots).
//
//   auto m = model::load("SmolLM2.gguf");                 // loader.hpp
//   auto last = m.forward(prompt_ids, 0);                  // prefill (in chunks): last position's logits
//   auto next = m.forward(std::array{tok}, m.position());  // decode one token
//   auto all  = m.logits_all(ids);                         // [n][vocab], from an empty cache
//
// Many sequences at once (continuous batching, a server): every item's tokens go through each
// matmul together, so the weights are read once per step for all of them, and each item attends
// its own slot of every layer's cache.
//
//   model::BatchItem items[] = {{0, prompt_a, 0}, {1, std::span(&tok_b, 1), m.position(1)}};
//   auto logits = m.forward_batch(items);                  // [2][vocab]
//
// Sensitivity reruns only what a perturbation changes: layer_inputs() keeps the residual stream
// entering every layer, and logits_from_layer(l, ...) runs layers l.. from it.
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
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/kv/any_kv_cache.hpp"
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/kv_config.hpp"
#include "optiq/kv/layouts/contiguous.hpp"
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

/// Builds the cache of one layer, holding `sequences` independent sequences.
using CacheFactory =
    std::function<kv::AnyKVCache(std::size_t layer, const kv::AttentionShape& shape, std::size_t sequences)>;

/// Full-precision f32 keys and values (the default: attention equals the plain float loop), in
/// layout L (kv::PagedLayout pools memory across many sequences of a server).
template <kv::KVLayout L = kv::ContiguousLayout>
[[nodiscard]] inline CacheFactory f32_cache_factory(typename L::options layout = {}) {
    return [layout](std::size_t, const kv::AttentionShape& s, std::size_t sequences) {
        using P = kv::FullPrecisionPolicy<SideType::f32>;
        return kv::AnyKVCache(kv::KVCache<P, L>(kv::full_precision_policy<SideType::f32>(s.dim), s, sequences, layout));
    };
}

/// The caches a kv_config.json describes (layers without an entry: f16, as make_kv_caches);
/// opts.batch is replaced by the model's sequence count.
template <kv::KVLayout L = kv::ContiguousLayout>
[[nodiscard]] inline CacheFactory kv_config_cache_factory(kv::KVConfig cfg, kv::KVCacheOptions<L> opts = {}) {
    return [cfg = std::move(cfg), opts](std::size_t layer, const kv::AttentionShape& s, std::size_t sequences) {
        const kv::KVLayerConfig* e = cfg.find(static_cast<int>(layer));
        kv::KVLayerConfig full;
        full.layer_idx = static_cast<int>(layer);
        auto o = opts;
        o.batch = sequences;
        return kv::make_kv_cache<L>(e ? *e : full, s, o);
    };
}

struct TransformerOptions {
    std::size_t threads = 2;        ///< matmul threads (the calling thread included)
    std::size_t prefill_chunk = 64; ///< tokens per forward step of a long prompt
    std::size_t sequences = 1;      ///< independent sequences (cache slots) for forward_batch
    /// Activations of the matmuls (weights.hpp): automatic = int8 for GGUF blocks, exact otherwise.
    Activations activations = Activations::automatic;
    ThreadPoolOptions pool{};       ///< how idle threads wait (core/threads.hpp)
};

/// Where a forward step's time went (Transformer::profile()), in seconds, summed over calls.
struct StepProfile {
    double norm = 0, qkv = 0, rope = 0, attention = 0, o = 0, gate_up = 0, activation = 0, down = 0, head = 0;
    std::size_t steps = 0, tokens = 0;
    [[nodiscard]] double total() const noexcept {
        return norm + qkv + rope + attention + o + gate_up + activation + down + head;
    }
};

/// One sequence's part of a forward_batch step: `tokens` at positions start_pos, start_pos+1, ...
/// of slot `seq` (start_pos <= position(seq); a smaller one rolls that slot back first).
struct BatchItem {
    std::size_t seq = 0;
    std::span<const TokenId> tokens;
    std::size_t start_pos = 0;
    bool all_logits = false;  ///< logits of every token instead of the last one only
};

class Transformer {
public:
    Transformer(ModelConfig config, TransformerWeights weights, CacheFactory caches = f32_cache_factory(),
                TransformerOptions options = {})
        : config_(std::move(config)),
          w_(std::move(weights)),
          factory_(std::move(caches)),
          options_(options),
          pool_(std::make_unique<ThreadPool>(std::max<std::size_t>(1, options.threads), options.pool)) {
        if (options_.sequences == 0) optiq::detail::fail<config_error>("model::Transformer: sequences must be at least 1");
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
    void set_activations(Activations a) noexcept { options_.activations = a; }
    [[nodiscard]] MatmulOptions matmul_options() const noexcept { return {options_.activations, backend::arch::best_arch()}; }

    /// Per-op timing of every following forward step (off by default: two clock reads per op).
    void set_profiling(bool on) noexcept {
        profiling_ = on;
        profile_ = {};
    }
    [[nodiscard]] const StepProfile& profile() const noexcept { return profile_; }

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
    /// Replaces one layer's cache (it must hold sequences() sequences); every cache is then
    /// cleared (positions restart at 0).
    void set_cache(std::size_t layer, kv::AnyKVCache c) {
        if (layer >= caches_.size())
            optiq::detail::fail<shape_error>("model::Transformer::set_cache: layer ", layer, " of ", caches_.size());
        const auto s = c.shape(), want = attention_shape();
        if (s.q_heads != want.q_heads || s.kv_heads != want.kv_heads || s.dim != want.dim)
            optiq::detail::fail<shape_error>("model::Transformer::set_cache: layer ", layer, " cache is for ", s.q_heads,
                                             "/", s.kv_heads, " heads of ", s.dim, ", the model has ", want.q_heads, "/",
                                             want.kv_heads, " of ", want.dim);
        if (c.batch() != sequences())
            optiq::detail::fail<shape_error>("model::Transformer::set_cache: layer ", layer, " cache holds ", c.batch(),
                                             " sequences, the model runs ", sequences());
        caches_[layer] = std::move(c);
        reset();
    }
    /// New caches for every layer from `f`.
    void set_cache_factory(CacheFactory f) {
        factory_ = std::move(f);
        caches_.clear();
        for (std::size_t i = 0; i < config_.n_layers; ++i) {
            caches_.push_back(factory_(i, attention_shape(), sequences()));
            if (caches_.back().batch() != sequences())
                optiq::detail::fail<shape_error>("model::Transformer: the cache factory gave layer ", i, " a cache of ",
                                                 caches_.back().batch(), " sequences, needs ", sequences());
        }
        positions_.assign(sequences(), 0);
    }
    /// Empties every cache (all sequences).
    void reset() {
        for (auto& c : caches_) c.clear();
        positions_.assign(sequences(), 0);
    }
    /// Empties one sequence's slot.
    void reset(std::size_t seq) {
        check_seq(seq, "reset");
        for (auto& c : caches_) c.clear(seq);
        positions_[seq] = 0;
    }
    /// Sequence slots (TransformerOptions::sequences).
    [[nodiscard]] std::size_t sequences() const noexcept { return options_.sequences; }
    /// Tokens held in sequence 0's caches: the position the next token gets.
    [[nodiscard]] std::size_t position() const noexcept { return positions_[0]; }
    [[nodiscard]] std::size_t position(std::size_t seq) const {
        check_seq(seq, "position");
        return positions_[seq];
    }

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
        check_item(0, tokens, start_pos, "forward");
        rollback(0, start_pos);
        const std::size_t V = config_.vocab_size, chunk = std::max<std::size_t>(1, options_.prefill_chunk);
        std::vector<float> out((tokens.size() - from) * V);
        for (std::size_t b = 0; b < tokens.size(); b += chunk) {
            const std::size_t n = std::min(chunk, tokens.size() - b);
            const std::size_t first = std::clamp(from, b, b + n) - b;  // first token of the chunk with logits
            const Segment seg{0, 0, n, positions_[0]};
            embed(tokens.subspan(b, n), 0);
            run_layers({&seg, 1}, n, 0, nullptr);
            positions_[0] += n;
            if (first < n) {
                std::vector<std::size_t> rows(n - first);
                for (std::size_t r = 0; r < rows.size(); ++r) rows[r] = first + r;
                head_rows(rows, {out.data() + (b + first - from) * V, (n - first) * V});
            }
        }
        return out;
    }
    /// One decode step at position().
    std::vector<float> decode(TokenId token) {
        const std::array<TokenId, 1> t{token};
        return forward(t, positions_[0]);
    }
    /// Logits at every position of `tokens` [n][vocab], from empty caches (perplexity, KL).
    std::vector<float> logits_all(std::span<const TokenId> tokens) {
        reset();
        return forward_from(tokens, 0, 0);
    }

    /// One step for several sequences at once: all items' tokens go through each matmul together
    /// (the weights are read once), each item attends its own slot. Items name distinct sequences.
    /// Returns, item after item, the logits of its last token [vocab] (or of all its tokens when
    /// all_logits). Not chunked: the caller sizes the step (a long prompt in pieces, decodes of 1).
    std::vector<float> forward_batch(std::span<const BatchItem> items) {
        if (items.empty()) optiq::detail::fail<value_error>("model::Transformer::forward_batch: no items");
        std::vector<char> seen(sequences(), 0);
        std::size_t rows = 0, out_rows = 0;
        for (const auto& it : items) {
            check_item(it.seq, it.tokens, it.start_pos, "forward_batch");
            if (it.tokens.empty())
                optiq::detail::fail<value_error>("model::Transformer::forward_batch: sequence ", it.seq, " has no tokens");
            if (seen[it.seq]++)
                optiq::detail::fail<value_error>("model::Transformer::forward_batch: sequence ", it.seq,
                                                 " appears twice in one step");
            rows += it.tokens.size();
            out_rows += it.all_logits ? it.tokens.size() : 1;
        }
        std::vector<Segment> segs;
        std::vector<std::size_t> logit_rows;
        segs.reserve(items.size());
        logit_rows.reserve(out_rows);
        std::size_t row = 0;
        for (const auto& it : items) {
            rollback(it.seq, it.start_pos);
            segs.push_back({it.seq, row, it.tokens.size(), positions_[it.seq]});
            embed(it.tokens, row);
            for (std::size_t t = it.all_logits ? 0 : it.tokens.size() - 1; t < it.tokens.size(); ++t)
                logit_rows.push_back(row + t);
            row += it.tokens.size();
        }
        run_layers(segs, rows, 0, nullptr);
        for (const auto& it : items) positions_[it.seq] += it.tokens.size();
        std::vector<float> out(out_rows * config_.vocab_size);
        head_rows(logit_rows, out);
        return out;
    }

    /// Runs `tokens` as sequence 0 from empty caches and returns the residual stream entering
    /// every layer, and after the last one: [n_layers + 1][n * dim]. Sequence 0 then holds them.
    std::vector<std::vector<float>> layer_inputs(std::span<const TokenId> tokens) {
        if (tokens.empty()) optiq::detail::fail<value_error>("model::Transformer::layer_inputs: no tokens");
        check_item(0, tokens, 0, "layer_inputs");
        reset(0);
        const std::size_t d = config_.dim, chunk = std::max<std::size_t>(1, options_.prefill_chunk);
        std::vector<std::vector<float>> hidden(config_.n_layers + 1, std::vector<float>(tokens.size() * d));
        for (std::size_t b = 0; b < tokens.size(); b += chunk) {
            const std::size_t n = std::min(chunk, tokens.size() - b);
            const Segment seg{0, 0, n, positions_[0]};
            embed(tokens.subspan(b, n), 0);
            run_layers({&seg, 1}, n, 0, [&](std::size_t layer) {
                std::copy_n(x_.data(), n * d, hidden[layer].data() + b * d);
            });
            positions_[0] += n;
        }
        return hidden;
    }

    /// Logits [n][vocab] of running layers first..n_layers-1, then the final norm and head, on
    /// `hidden` [n][dim]: the input of layer `first` at positions 0..n-1 (layer_inputs()[first]);
    /// first == n_layers runs the head alone. Sequence 0 is reset before and after.
    std::vector<float> logits_from_layer(std::size_t first, std::span<const float> hidden, std::size_t n) {
        const std::size_t d = config_.dim, V = config_.vocab_size;
        if (first > config_.n_layers)
            optiq::detail::fail<value_error>("model::Transformer::logits_from_layer: layer ", first, " of ",
                                             config_.n_layers);
        if (n == 0 || hidden.size() != n * d)
            optiq::detail::fail<shape_error>("model::Transformer::logits_from_layer: ", hidden.size(),
                                             " hidden values for ", n, " positions of dim ", d);
        reset(0);
        const std::size_t chunk = std::max<std::size_t>(1, options_.prefill_chunk);
        std::vector<float> out(n * V);
        std::vector<std::size_t> rows;
        for (std::size_t b = 0; b < n; b += chunk) {
            const std::size_t m = std::min(chunk, n - b);
            x_.resize(m * d);
            std::copy_n(hidden.data() + b * d, m * d, x_.data());
            const Segment seg{0, 0, m, b};
            run_layers({&seg, 1}, m, first, nullptr);
            rows.resize(m);
            for (std::size_t r = 0; r < m; ++r) rows[r] = r;
            head_rows(rows, {out.data() + b * V, m * V});
        }
        reset(0);
        return out;
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

    /// Rows [row, row + n) of the activations are sequence `seq` at positions pos, pos+1, ...
    struct Segment {
        std::size_t seq, row, n, pos;
    };

    void check_seq(std::size_t seq, const char* what) const {
        if (seq >= sequences())
            optiq::detail::fail<value_error>("model::Transformer::", what, ": sequence ", seq, " of ", sequences());
    }
    void check_item(std::size_t seq, std::span<const TokenId> tokens, std::size_t start_pos, const char* what) const {
        check_seq(seq, what);
        if (start_pos > positions_[seq])
            optiq::detail::fail<value_error>("model::Transformer::", what, ": start position ", start_pos,
                                             " is past the ", positions_[seq], " tokens cached for sequence ", seq);
        if (config_.sliding_window != 0 && start_pos + tokens.size() > config_.sliding_window)
            optiq::detail::fail<value_error>("model::Transformer::", what, ": sequence ", seq, " would reach ",
                                             start_pos + tokens.size(), " tokens, past the model's sliding window of ",
                                             config_.sliding_window, " (optiq attends the whole cache, which equals "
                                             "sliding-window attention only within the window)");
        for (std::size_t i = 0; i < tokens.size(); ++i)
            if (tokens[i] < 0 || static_cast<std::size_t>(tokens[i]) >= config_.vocab_size)
                optiq::detail::fail<value_error>("model::Transformer::", what, ": token ", tokens[i], " at index ", i,
                                                 " is outside the vocabulary of ", config_.vocab_size);
    }
    void rollback(std::size_t seq, std::size_t start_pos) {
        if (start_pos < positions_[seq]) {
            for (auto& c : caches_) c.truncate(seq, start_pos);
            positions_[seq] = start_pos;
        }
    }
    /// Embedding rows of `tokens` into x_ from row `row` on.
    void embed(std::span<const TokenId> tokens, std::size_t row) {
        const std::size_t d = config_.dim;
        if (x_.size() < (row + tokens.size()) * d) x_.resize((row + tokens.size()) * d);
        for (std::size_t t = 0; t < tokens.size(); ++t)
            w_.embed.row(static_cast<std::size_t>(tokens[t]), {x_.data() + (row + t) * d, d});
    }
    /// Final norm and head of the residual rows `rows` of x_ into logits [rows.size()][vocab].
    void head_rows(std::span<const std::size_t> rows, std::span<float> logits) {
        const std::size_t d = config_.dim, m = rows.size();
        if (m == 0) return;
        hn_.resize(m * d);
        for (std::size_t r = 0; r < m; ++r)
            rmsnorm(x_.data() + rows[r] * d, w_.final_norm.data(), hn_.data() + r * d, d, config_.rms_norm_eps);
        const auto t0 = tick();
        head().matmul(hn_, m, logits, pool_.get(), matmul_options(), &ws_);
        tock(t0, profile_.head);
    }

    /// Layers first.. over the rows of x_ (rows in all, cut into segments); capture(l), if given,
    /// sees x_ as it enters layer l and, with l = n_layers, after the last layer.
    template <class Capture = std::nullptr_t>
    void run_layers(std::span<const Segment> segs, std::size_t n, std::size_t first_layer, Capture capture) {
        const auto& c = config_;
        const std::size_t d = c.dim, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
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
        const MatmulOptions mo = matmul_options();
        if (profiling_) {
            ++profile_.steps;
            profile_.tokens += n;
        }
        for (std::size_t l = first_layer; l < c.n_layers; ++l) {
            if constexpr (!std::is_same_v<Capture, std::nullptr_t>) capture(l);
            const auto& L = w_.layers[l];
            auto t = tick();
            for (std::size_t i = 0; i < n; ++i)
                rmsnorm(x_.data() + i * d, L.attn_norm.data(), xn_.data() + i * d, d, c.rms_norm_eps);
            t = tock(t, profile_.norm);
            {
                const Linear* qkv[] = {&L.q, &L.k, &L.v};
                const std::span<float> out[] = {q_, k_, v_};
                Linear::matmul_many(qkv, xn_, n, out, pool, mo, ws_);
            }
            t = tock(t, profile_.qkv);
            for (const auto& sg : segs)
                for (std::size_t i = 0; i < sg.n; ++i) {
                    float* qt = q_.data() + (sg.row + i) * qd;
                    float* kt = k_.data() + (sg.row + i) * kvd;
                    if (c.qk_norm) {
                        for (std::size_t h = 0; h < c.n_heads; ++h)
                            rmsnorm(qt + h * hd, L.q_norm.data(), qt + h * hd, hd, c.rms_norm_eps);
                        for (std::size_t h = 0; h < c.n_kv_heads; ++h)
                            rmsnorm(kt + h * hd, L.k_norm.data(), kt + h * hd, hd, c.rms_norm_eps);
                    }
                    rope(qt, c.n_heads, sg.pos + i);
                    rope(kt, c.n_kv_heads, sg.pos + i);
                }
            t = tock(t, profile_.rope);
            // Each segment appends to and attends its own sequence; distinct sequences may run
            // on different threads (KVCache's contract).
            // One segment: its heads share the pool; several: one segment per thread.
            auto attend_segment = [&](const Segment& sg, ThreadPool* heads) {
                caches_[l].append(sg.seq, {k_.data() + sg.row * kvd, sg.n * kvd}, {v_.data() + sg.row * kvd, sg.n * kvd});
                caches_[l].attend(sg.seq, {q_.data() + sg.row * qd, sg.n * qd}, {att_.data() + sg.row * qd, sg.n * qd},
                                  heads);
            };
            if (segs.size() == 1) attend_segment(segs[0], pool);
            else
                pool->parallel_for(segs.size(), [&](std::size_t b, std::size_t e, std::size_t) {
                    for (std::size_t i = b; i < e; ++i) attend_segment(segs[i], nullptr);
                });
            t = tock(t, profile_.attention);
            L.o.matmul(att_, n, tmp_, pool, mo, &ws_);
            for (std::size_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
            t = tock(t, profile_.o);
            for (std::size_t i = 0; i < n; ++i)
                rmsnorm(x_.data() + i * d, L.ffn_norm.data(), xn_.data() + i * d, d, c.rms_norm_eps);
            t = tock(t, profile_.norm);
            {
                const Linear* gu[] = {&L.gate, &L.up};
                const std::span<float> out[] = {g_, u_};
                Linear::matmul_many(gu, xn_, n, out, pool, mo, ws_);
            }
            t = tock(t, profile_.gate_up);
            for (std::size_t i = 0; i < g_.size(); ++i) g_[i] = g_[i] / (1.0f + std::exp(-g_[i])) * u_[i];
            t = tock(t, profile_.activation);
            L.down.matmul(g_, n, tmp_, pool, mo, &ws_);
            for (std::size_t i = 0; i < n * d; ++i) x_[i] += tmp_[i];
            (void)tock(t, profile_.down);
        }
        if constexpr (!std::is_same_v<Capture, std::nullptr_t>) capture(c.n_layers);
    }

    ModelConfig config_;
    TransformerWeights w_;
    CacheFactory factory_;
    TransformerOptions options_;
    std::unique_ptr<ThreadPool> pool_;
    std::vector<kv::AnyKVCache> caches_;
    std::vector<float> inv_freq_;
    std::vector<std::size_t> positions_;                              // per sequence
    std::vector<float> x_, xn_, q_, k_, v_, att_, g_, u_, tmp_, hn_;  // activations of one step
    backend::qmatmul::Workspace ws_;                                  // the integer matmuls' scratch
    bool profiling_ = false;
    StepProfile profile_;

    using Clock = std::chrono::steady_clock;
    [[nodiscard]] Clock::time_point tick() const noexcept { return profiling_ ? Clock::now() : Clock::time_point{}; }
    /// Adds the time since t0 to `slot` when profiling; returns now.
    Clock::time_point tock(Clock::time_point t0, double& slot) const noexcept {
        if (!profiling_) return t0;
        const auto t1 = Clock::now();
        slot += std::chrono::duration<double>(t1 - t0).count();
        return t1;
    }
};

}  // namespace optiq::model

#pragma once
// KVKLSensitivity: the KV-cache half of mlx-optiq's allocation (reference-spec C, "KV allocation";
// optiq/core/kv_cache.py). For each attention layer and each candidate bit-width, ONLY that layer's
// cache is replaced by a quantized one (kv::make_kv_cache with method affine / tq_mse / tq_prod /
// rvq ...), the calibration sequences run, and the cost is KL(reference || perturbed) of the
// next-token distribution, the reference being the same model with f32 caches everywhere.
// mlx-optiq takes the KL at the last position of each sequence (KLPositions::last, the default);
// KLPositions::all averages it over every position of every sequence instead (less noisy for the
// same forward passes).
//
//   alloc::KVKLSensitivity sens(model, "SmolLM2.gguf", alloc::kv_calibration_windows(ids, 5, 512));
//   alloc::Allocator alloc(sens, alloc::GreedyKnapsack(alloc::kv_greedy_options()), {{4, 8}, "kv_table.json"});
//   const auto a = alloc.allocate(5.0);
//   kv::write_kv_config("kv_config.json", alloc::kv_config_from_allocation(alloc.table(), a, "affine", 64));
//
// Candidate bits: 1..8 quantize with the method; 16 is an f16 cache (kv_config.json's bits 0, full
// precision) and 32 the f32 reference cache itself (its cost is 0 exactly: a check on the harness).
// Units are named "model.layers.N.self_attn" with UnitKind::kv_layer and block N; param_count is the
// layer's per-token cache elements (keys and values of all KV heads), equal for every layer, so the
// parameter-weighted budget is the plain mean bits per layer. Units are not protected: the KV rule
// has no protection, block floor or run guard (kv_greedy_options()).
// With Options::separate_kv, keys and values are units of their own ("model.layers.N.self_attn.keys"
// / ".values", half the elements each): a key unit's run quantizes only that layer's keys (values in
// f16) and the other way round, so the solver may give keys more bits than values (real LLM keys
// carry outlier channels, values do not). kv_config_from_allocation merges the pair into one
// entry with "k_bits" / "v_bits".
//
// Cost of a run: the layers before the perturbed one see exactly the reference inputs, so their
// output (Transformer::layer_inputs) is computed once per sequence and layers l.. rerun from it
// (logits_from_layer). That path computes the head at every position, so for KLPositions::last a
// layer near the input may be cheaper to rerun whole (head at the last position only); the
// default PrefixReuse::automatic picks whichever costs fewer multiply-adds. Both give the same
// logits up to float rounding.
//
// measure() leaves the model with f32 caches (the reference) in every layer.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/alloc/solver/greedy.hpp"
#include "optiq/alloc/table.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/progress.hpp"
#include "optiq/kv/any_kv_cache.hpp"
#include "optiq/kv/kv_config.hpp"
#include "optiq/model/transformer.hpp"

namespace optiq::alloc {

/// Where the next-token KL is taken.
enum class KLPositions : std::uint8_t { last, all };

[[nodiscard]] inline std::string_view kl_positions_name(KLPositions p) noexcept {
    return p == KLPositions::last ? "last" : "all";
}

/// Candidate bit-widths beyond the quantized 1..8: an f16 cache (kv_config.json bits 0) and f32.
inline constexpr int kv_bits_f16 = 16;
inline constexpr int kv_bits_f32 = 32;

/// Whether perturbed runs start from the stored input of the perturbed layer.
enum class PrefixReuse : std::uint8_t { automatic, always, never };

/// "model.layers.N.self_attn": the KV unit of model layer N (block_index() reads N back).
[[nodiscard]] inline std::string kv_unit_name(std::size_t layer) {
    return "model.layers." + std::to_string(layer) + ".self_attn";
}

/// Which half of a layer's cache a unit is: both (mlx-optiq's unit), the keys or the values.
enum class KVPart : std::uint8_t { both, keys, values };

/// "model.layers.N.self_attn.keys" / ".values": the key or value unit of layer N.
[[nodiscard]] inline std::string kv_unit_name(std::size_t layer, KVPart part) {
    return kv_unit_name(layer) + (part == KVPart::keys ? ".keys" : part == KVPart::values ? ".values" : "");
}

/// The part a unit name stands for (from its suffix).
[[nodiscard]] inline KVPart kv_unit_part(std::string_view name) noexcept {
    if (name.ends_with(".keys")) return KVPart::keys;
    if (name.ends_with(".values")) return KVPart::values;
    return KVPart::both;
}

/// GreedyKnapsack options for mlx-optiq's KV rule: efficiency = dKL / dbits, upgrade until the
/// mean bits reach the target; no block floor, no protection, no run guard.
[[nodiscard]] inline GreedyKnapsack::Options kv_greedy_options() noexcept {
    GreedyKnapsack::Options o;
    o.n_floor_per_block = 0;
    o.protected_factor = 1.0;
    o.max_low_bit_run = 0;
    return o;
}

/// `n` windows of `seq_len` tokens spread evenly over `tokens` (the first at 0, the last ending at
/// the end, non-overlapping while the text is long enough); `bos`, when given, is written over the
/// first token of each window, as llama.cpp's perplexity does. Fewer tokens than one window is an error;
/// n windows that do not fit side by side overlap rather than repeat one stretch.
[[nodiscard]] inline std::vector<std::vector<model::TokenId>> kv_calibration_windows(
    std::span<const model::TokenId> tokens, std::size_t n, std::size_t seq_len,
    std::optional<model::TokenId> bos = std::nullopt) {
    if (n == 0 || seq_len < 2)
        optiq::detail::fail<config_error>("kv calibration: ", n, " windows of ", seq_len,
                                          " tokens (need at least 1 window of at least 2)");
    if (tokens.size() < seq_len)
        optiq::detail::fail<value_error>("kv calibration: the text has ", tokens.size(),
                                         " tokens, fewer than one window of ", seq_len);
    std::vector<std::vector<model::TokenId>> out;
    const std::size_t span = tokens.size() - seq_len;
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t start = n == 1 ? 0 : span * i / (n - 1);
        out.emplace_back(tokens.begin() + static_cast<std::ptrdiff_t>(start),
                         tokens.begin() + static_cast<std::ptrdiff_t>(start + seq_len));
        if (bos) out.back()[0] = *bos;
    }
    return out;
}

class KVKLSensitivity {
public:
    using TokenId = model::TokenId;

    struct Options {
        std::string method = "affine";   ///< a kv::kv_methods name
        std::size_t group_size = 64;     ///< affine / kivi groups (mlx-optiq's default)
        KLPositions positions = KLPositions::last;
        std::uint64_t seed = 42;         ///< layer seed = seed + layer (mlx-optiq: 42 + i)
        PrefixReuse reuse = PrefixReuse::automatic;
        bool separate_kv = false;        ///< keys and values as separate units (k_bits / v_bits)
        bool progress = true;            ///< progress bar with ETA on stderr
    };

    /// `model_id` names the model in cache_key() (a path, a hash); `calibration` holds the token
    /// sequences (each at least one token). The model is borrowed: it must outlive measure().
    KVKLSensitivity(model::Transformer& m, std::string model_id, std::vector<std::vector<TokenId>> calibration)
        : KVKLSensitivity(m, std::move(model_id), std::move(calibration), Options{}) {}
    KVKLSensitivity(model::Transformer& m, std::string model_id, std::vector<std::vector<TokenId>> calibration,
                    Options o)
        : m_(&m), model_id_(std::move(model_id)), calib_(std::move(calibration)), opt_(std::move(o)) {
        if (calib_.empty()) optiq::detail::fail<config_error>("KVKLSensitivity: no calibration sequences");
        for (std::size_t i = 0; i < calib_.size(); ++i)
            if (calib_[i].empty())
                optiq::detail::fail<value_error>("KVKLSensitivity: calibration sequence ", i, " is empty");
        if (std::find(std::begin(kv::kv_methods), std::end(kv::kv_methods), opt_.method) == std::end(kv::kv_methods))
            optiq::detail::fail<config_error>("KVKLSensitivity: method \"", opt_.method,
                                              "\" is not a KV method (affine, tq_mse, tq_prod, rvq, polar, qjl, kivi)");
        if (opt_.group_size == 0) optiq::detail::fail<config_error>("KVKLSensitivity: group_size is 0");
    }

    [[nodiscard]] const Options& options() const noexcept { return opt_; }
    [[nodiscard]] const std::vector<std::vector<TokenId>>& calibration() const noexcept { return calib_; }

    /// The model, the model's shape, the method and every calibration setting and token.
    [[nodiscard]] std::string cache_key() const {
        const auto& c = m_->config();
        std::string tokens;
        for (const auto& s : calib_) {
            tokens += std::to_string(s.size()) + ':';
            tokens.append(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(TokenId));
        }
        return optiq::detail::concat("kv_kl/1;model=", model_id_, ";shape=", c.n_layers, "x", c.dim, ",kv", c.n_kv_heads,
                                     "x", c.head_dim, ",vocab", c.vocab_size, ";method=", opt_.method,
                                     ";group=", opt_.group_size, ";positions=", kl_positions_name(opt_.positions),
                                     opt_.separate_kv ? ";separate_kv" : "",
                                     ";seed=", opt_.seed, ";sequences=", calib_.size(),
                                     ";tokens=", detail::fnv1a_hex(tokens));
    }

    /// The kv_config.json entry for `bits` of layer `layer` (16 -> bits 0, full precision; 32 has
    /// none: the f32 cache is not a kv_config.json choice). For one part, the other part is f16.
    [[nodiscard]] kv::KVLayerConfig layer_config(std::size_t layer, int bits, KVPart part = KVPart::both) const {
        check_bits(bits);
        if (bits == kv_bits_f32)
            optiq::detail::fail<config_error>("KVKLSensitivity: 32 bits (f32) has no kv_config.json entry");
        kv::KVLayerConfig e;
        e.layer_idx = static_cast<int>(layer);
        e.bits = bits == kv_bits_f16 ? 0 : bits;
        if (part == KVPart::keys) e.v_bits = 0;
        if (part == KVPart::values) e.k_bits = 0;
        e.group_size = opt_.group_size;
        e.method = opt_.method;
        return e;
    }

    /// The cache measured for `bits` at `layer` (or only its keys or values), sized for the model's sequences.
    [[nodiscard]] kv::AnyKVCache make_cache(std::size_t layer, int bits, KVPart part = KVPart::both) const {
        const kv::AttentionShape shape = m_->attention_shape();
        if (bits == kv_bits_f32) return model::f32_cache_factory()(layer, shape, m_->sequences());
        kv::KVCacheOptions<> o;
        o.batch = m_->sequences();
        o.seed = opt_.seed;
        return kv::make_kv_cache(layer_config(layer, bits, part), shape, o);
    }

    /// The parts measured per layer: {both}, or {keys, values} with separate_kv.
    [[nodiscard]] std::vector<KVPart> parts() const {
        return opt_.separate_kv ? std::vector<KVPart>{KVPart::keys, KVPart::values} : std::vector<KVPart>{KVPart::both};
    }

    /// KL(p || q) in nats of the softmax distributions of two logit rows, in double; a result
    /// below 0 (rounding when p and q nearly agree) is returned as 0.
    [[nodiscard]] static double logits_kl(std::span<const float> p_logits, std::span<const float> q_logits) {
        if (p_logits.size() != q_logits.size() || p_logits.empty())
            optiq::detail::fail<shape_error>("KVKLSensitivity: KL of logit rows of ", p_logits.size(), " and ",
                                             q_logits.size(), " values");
        const auto lse = [](std::span<const float> l) {
            double mx = l[0];
            for (float v : l) mx = std::max<double>(mx, v);
            double z = 0;
            for (float v : l) z += std::exp(static_cast<double>(v) - mx);
            return mx + std::log(z);
        };
        const double lp = lse(p_logits), lq = lse(q_logits);
        double kl = 0;
        for (std::size_t i = 0; i < p_logits.size(); ++i) {
            const double a = static_cast<double>(p_logits[i]) - lp, b = static_cast<double>(q_logits[i]) - lq;
            kl += std::exp(a) * (a - b);
        }
        return std::max(kl, 0.0);
    }

    /// Whether the perturbed run of layer `layer` starts from its stored input.
    [[nodiscard]] bool reuses_prefix(std::size_t layer, std::size_t n_tokens) const {
        if (opt_.reuse == PrefixReuse::always) return true;
        if (opt_.reuse == PrefixReuse::never) return false;
        if (opt_.positions == KLPositions::all) return true;
        // Multiply-adds per token of one layer's linears and of the head.
        const auto& c = m_->config();
        const double per_layer = static_cast<double>(c.dim * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.dim +
                                                     3 * c.dim * c.hidden_dim);
        const double head = static_cast<double>(c.vocab_size * c.dim), n = static_cast<double>(n_tokens);
        const double reuse = static_cast<double>(c.n_layers - layer) * per_layer * n + head * n;
        const double full = static_cast<double>(c.n_layers) * per_layer * n + head;
        return reuse < full;
    }

    /// cost[unit][bits] = mean KL over the calibration positions (the last of each sequence, or
    /// all of them); units are the layers, or each layer's keys then values with separate_kv.
    [[nodiscard]] CostTable measure(std::span<const int> candidate_bits) const {
        CostTable t(std::vector<int>(candidate_bits.begin(), candidate_bits.end()));
        for (int b : candidate_bits) (void)make_cache(0, b);  // bad bits / group size fail before any run
        model::Transformer& m = *m_;
        const auto& c = m.config();
        const std::vector<KVPart> part = parts();
        const std::size_t L = c.n_layers, nb = candidate_bits.size(), V = c.vocab_size, np = part.size();
        m.set_cache_factory(model::f32_cache_factory());
        std::vector<std::vector<double>> sum(L * np, std::vector<double>(nb, 0.0));
        std::size_t rows_total = 0;
        ProgressBar bar("kv sensitivity (" + opt_.method + ")", calib_.size() * L * np * nb, stderr, opt_.progress);
        std::vector<double> row_kl;
        for (const auto& tokens : calib_) {
            const std::size_t n = tokens.size();
            const bool last = opt_.positions == KLPositions::last;
            const std::size_t rows = last ? 1 : n;
            const std::vector<std::vector<float>> hidden = m.layer_inputs(tokens);
            // One reference per path, computed as that path computes the perturbed logits (same
            // chunks, same head rows), so an f32 candidate reproduces it bit for bit.
            std::vector<float> ref_reuse = m.logits_from_layer(L, hidden[L], n), ref_full;
            if (last) ref_reuse.erase(ref_reuse.begin(), ref_reuse.end() - static_cast<std::ptrdiff_t>(V));
            for (std::size_t l = 0; l < L; ++l) {
                const bool reuse = reuses_prefix(l, n);
                if (!reuse && ref_full.empty()) ref_full = last ? m.forward(tokens, 0) : m.logits_all(tokens);
                const std::vector<float>& ref = reuse ? ref_reuse : ref_full;
                for (std::size_t p = 0; p < np; ++p)
                for (std::size_t b = 0; b < nb; ++b) {
                    m.set_cache(l, make_cache(l, candidate_bits[b], part[p]));
                    std::vector<float> out;
                    if (reuse) {
                        out = m.logits_from_layer(l, hidden[l], n);
                        if (last) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(V));
                    } else {
                        out = last ? m.forward(tokens, 0) : m.logits_all(tokens);
                    }
                    row_kl.assign(rows, 0.0);
                    m.pool().parallel_for(rows, [&](std::size_t r0, std::size_t r1, std::size_t) {
                        for (std::size_t r = r0; r < r1; ++r)
                            row_kl[r] = logits_kl({ref.data() + r * V, V}, {out.data() + r * V, V});
                    });
                    for (double k : row_kl) sum[l * np + p][b] += k;
                    bar.advance();
                }
                m.set_cache(l, make_cache(l, kv_bits_f32));
            }
            rows_total += rows;
        }
        bar.finish();
        m.reset();
        const std::uint64_t per_token = 2 * static_cast<std::uint64_t>(c.kv_dim()) / np;
        for (std::size_t l = 0; l < L; ++l)
            for (std::size_t p = 0; p < np; ++p) {
                Unit u;
                u.name = kv_unit_name(l, part[p]);
                u.kind = UnitKind::kv_layer;
                u.block = static_cast<int>(l);
                u.param_count = per_token;
                std::vector<double> cost(nb);
                for (std::size_t b = 0; b < nb; ++b) cost[b] = sum[l * np + p][b] / static_cast<double>(rows_total);
                t.add(std::move(u), std::move(cost));
            }
        return t;
    }

private:
    static void check_bits(int bits) {
        if (!((bits >= 1 && bits <= kv::kv_max_bits) || bits == kv_bits_f16 || bits == kv_bits_f32))
            optiq::detail::fail<config_error>("KVKLSensitivity: candidate bits ", bits, " (need 1..", kv::kv_max_bits,
                                              ", 16 for f16 or 32 for f32)");
    }

    model::Transformer* m_;
    std::string model_id_;
    std::vector<std::vector<TokenId>> calib_;
    Options opt_;
};

/// The kv_config.json of an allocation over a KV table (units named by kv_unit_name): one entry per
/// layer, bits 16 and 32 written as 0 (full precision). "method" is omitted for affine so that
/// mlx-optiq reads the file as its own. A layer's ".keys" and ".values" units become one entry with
/// "k_bits" / "v_bits" and "bits" = the larger of the two (what mlx-optiq, which reads only "bits",
/// then uses for both).
[[nodiscard]] inline kv::KVConfig kv_config_from_allocation(const CostTable& t, const Allocation& a,
                                                            std::string_view method, std::size_t group_size) {
    if (a.bits.size() != t.size())
        optiq::detail::fail<shape_error>("kv_config_from_allocation: ", a.bits.size(), " bit-widths for ", t.size(),
                                         " units");
    kv::KVConfig cfg;
    const auto width = [](int bits) { return bits > kv::kv_max_bits ? 0 : bits; };
    for (std::size_t i = 0; i < t.size(); ++i) {
        const std::string& name = t.unit(i).name;
        const int layer = block_index(name);
        if (layer < 0)
            optiq::detail::fail<config_error>("kv_config_from_allocation: unit '", name,
                                              "' is not named like model.layers.N.self_attn");
        const KVPart part = kv_unit_part(name);
        kv::KVLayerConfig* e = nullptr;
        if (part != KVPart::both)
            for (kv::KVLayerConfig& x : cfg.layers)
                if (x.layer_idx == layer && (x.k_bits || x.v_bits)) e = &x;
        if (e == nullptr) {
            cfg.layers.emplace_back();
            e = &cfg.layers.back();
            e->layer_idx = layer;
            e->group_size = group_size;
            if (method != "affine") e->method = std::string(method);
        } else if (part == KVPart::keys ? e->k_bits.has_value() : e->v_bits.has_value()) {
            optiq::detail::fail<config_error>("kv_config_from_allocation: unit '", name, "' appears twice");
        }
        const int w = width(a.bits[i]);
        if (part == KVPart::both) {
            e->bits = w;
            continue;
        }
        (part == KVPart::keys ? e->k_bits : e->v_bits) = w;
    }
    for (kv::KVLayerConfig& e : cfg.layers) {
        if (!e.k_bits && !e.v_bits) continue;
        if (e.k_bits.has_value() != e.v_bits.has_value())
            optiq::detail::fail<config_error>("kv_config_from_allocation: layer ", e.layer_idx, " has a ",
                                              e.k_bits ? "keys" : "values", " unit without its ",
                                              e.k_bits ? "values" : "keys", " unit");
        // "bits": the wider part, full precision (0) above any width.
        e.bits = *e.k_bits == 0 || *e.v_bits == 0 ? 0 : std::max(*e.k_bits, *e.v_bits);
    }
    return cfg;
}

/// kv_sensitivity.json (mlx-optiq): {"<layer_idx>": {"<bits>": KL, ...}, ...} in layer order
/// ("<layer_idx>.keys" / ".values" for separate key and value units).
[[nodiscard]] inline nlohmann::ordered_json kv_sensitivity_json(const CostTable& t) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < t.size(); ++i) {
        nlohmann::ordered_json row = nlohmann::ordered_json::object();
        for (std::size_t c = 0; c < t.n_choices(); ++c) row[std::to_string(t.candidate_bits()[c])] = t.cost(i, c);
        const std::string& name = t.unit(i).name;
        const KVPart part = kv_unit_part(name);
        std::string key = std::to_string(block_index(name) >= 0 ? block_index(name) : static_cast<int>(i));
        if (part != KVPart::both) key += part == KVPart::keys ? ".keys" : ".values";
        doc[key] = std::move(row);
    }
    return doc;
}

/// How unevenly the layers react to one bit-width: the largest cost over the median (the mean of
/// the two middle values for an even count). mlx-optiq reports layer 0 at ~56x the median.
struct KVSpread {
    double max = 0.0, median = 0.0, ratio = 0.0;  ///< ratio: max / median (infinite when the median is 0)
    std::size_t max_unit = 0;
};

[[nodiscard]] inline KVSpread kv_sensitivity_spread(const CostTable& t, std::size_t choice = 0) {
    if (t.empty()) optiq::detail::fail<value_error>("kv_sensitivity_spread: empty table");
    if (choice >= t.n_choices())
        optiq::detail::fail<value_error>("kv_sensitivity_spread: choice ", choice, " of ", t.n_choices());
    std::vector<double> v(t.size());
    KVSpread s;
    for (std::size_t i = 0; i < t.size(); ++i) {
        v[i] = t.cost(i, choice);
        if (i == 0 || v[i] > s.max) s.max = v[i], s.max_unit = i;
    }
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    s.ratio = s.median > 0 ? s.max / s.median : HUGE_VAL;
    return s;
}

}  // namespace optiq::alloc

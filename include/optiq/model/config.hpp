#pragma once
// The hyperparameters of a decoder-only transformer of the Llama family (Llama, Mistral, SmolLM),
// Qwen2 (q/k/v bias) and Qwen3 (q/k RMSNorm), read from an HF config.json, a GGUF file's metadata
// or a llama2.c header.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"

namespace optiq::model {

enum class Arch { llama, qwen2, qwen3 };

[[nodiscard]] constexpr std::string_view arch_name(Arch a) noexcept {
    switch (a) {
        case Arch::llama: return "llama";
        case Arch::qwen2: return "qwen2";
        case Arch::qwen3: return "qwen3";
    }
    return "?";
}

/// Architecture from an HF model_type / GGUF general.architecture; config_error naming `source`
/// for anything else.
[[nodiscard]] inline Arch arch_from_name(std::string_view name, std::string_view source) {
    if (name == "llama" || name == "mistral" || name == "smollm" || name == "smollm2") return Arch::llama;
    if (name == "qwen2") return Arch::qwen2;
    if (name == "qwen3") return Arch::qwen3;
    optiq::detail::fail<config_error>(source, ": unknown architecture '", name,
                                      "' (supported: llama, mistral, qwen2, qwen3)");
}

/// Llama 3's rope_scaling {"rope_type": "llama3", factor, low_freq_factor, high_freq_factor,
/// original_max_position_embeddings} (HF modeling_rope_utils._compute_llama3_parameters).
struct RopeScaling {
    float factor = 1.0f;
    float low_freq_factor = 1.0f;
    float high_freq_factor = 4.0f;
    float original_max_position = 8192.0f;
};

/// The largest size field a config may give (dims, heads, layers, vocabulary, context). Products of
/// two such sizes fit in 64 bits and token ids in int32; real models stay far below (hidden sizes
/// ~2^14, vocabularies ~2^18, contexts ~2^24).
inline constexpr std::size_t kMaxConfigSize = static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max());
/// The most layers a config may give: the loaders allocate one layer record per layer before they
/// meet its tensors, so a tiny model must not ask for 2^31 of them (the deepest released models have
/// ~128).
inline constexpr std::size_t kMaxLayers = std::size_t{1} << 14;

struct ModelConfig {
    Arch arch = Arch::llama;
    std::size_t dim = 0;         ///< hidden_size
    std::size_t hidden_dim = 0;  ///< intermediate_size
    std::size_t n_layers = 0;
    std::size_t n_heads = 0;
    std::size_t n_kv_heads = 0;
    std::size_t head_dim = 0;  ///< dim / n_heads unless the config says otherwise (Qwen3)
    std::size_t vocab_size = 0;
    std::size_t max_seq_len = 0;  ///< 0: unknown
    /// Sliding-window attention (Mistral's "sliding_window", Qwen2's with "use_sliding_window"):
    /// each token sees the last `sliding_window` positions; 0: none. optiq attends the whole
    /// cache, which is the same attention only while a sequence fits in the window, so the
    /// config's max_seq_len is clamped to it and the Transformer refuses positions beyond.
    std::size_t sliding_window = 0;
    float rope_theta = 10000.0f;
    float rms_norm_eps = 1e-5f;
    /// Rotary on adjacent pairs (2i, 2i+1): llama2.c and GGUF "llama" files (rows kept in GGUF
    /// order); false: rotate-half (HF / MLX order, GGUF qwen2/qwen3).
    bool rope_interleaved = false;
    bool tie_word_embeddings = false;
    bool attention_bias = false;  ///< q/k/v projections have biases (Qwen2)
    bool qk_norm = false;         ///< RMSNorm over each head of q and k before RoPE (Qwen3)
    bool has_rope_scaling = false;
    RopeScaling rope_scaling;
    std::vector<int> eos_token_ids;
    int bos_token_id = -1;

    [[nodiscard]] std::size_t q_dim() const noexcept { return n_heads * head_dim; }
    [[nodiscard]] std::size_t kv_dim() const noexcept { return n_kv_heads * head_dim; }

    /// Elements of all weights (embedding, per-layer projections and norms, final norm, untied head);
    /// nullopt when the count overflows 64 bits.
    [[nodiscard]] std::optional<std::uint64_t> weight_elements() const noexcept {
        bool overflow = false;
        auto mul = [&](std::uint64_t a, std::uint64_t b) {
            if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) overflow = true;
            return a * b;
        };
        auto add = [&](std::uint64_t a, std::uint64_t b) {
            if (a > std::numeric_limits<std::uint64_t>::max() - b) overflow = true;
            return a + b;
        };
        const std::uint64_t d = dim, q = mul(n_heads, head_dim), kv = mul(n_kv_heads, head_dim);
        std::uint64_t layer = add(mul(2, mul(d, q)), mul(2, mul(d, kv)));  // q, o; k, v
        layer = add(layer, add(mul(3, mul(d, hidden_dim)), mul(2, d)));     // gate, up, down; two norms
        if (attention_bias) layer = add(layer, add(q, mul(2, kv)));
        if (qk_norm) layer = add(layer, mul(2, head_dim));
        std::uint64_t total = add(mul(tie_word_embeddings ? 1 : 2, mul(vocab_size, d)), mul(n_layers, layer));
        total = add(total, d);
        if (overflow) return std::nullopt;
        return total;
    }

    /// Throws config_error naming `source` when the numbers cannot form a model.
    void validate(std::string_view source) const {
        auto need = [&](bool ok, auto&&... what) {
            if (!ok) optiq::detail::fail<config_error>(source, ": ", what...);
        };
        const std::pair<const char*, std::size_t> sizes[] = {
            {"dim", dim},         {"hidden_dim", hidden_dim}, {"n_layers", n_layers},       {"n_heads", n_heads},
            {"n_kv_heads", n_kv_heads}, {"head_dim", head_dim}, {"vocab_size", vocab_size}, {"max_seq_len", max_seq_len},
            {"sliding_window", sliding_window}};
        for (const auto& [name, v] : sizes) need(v <= kMaxConfigSize, name, " ", v, " exceeds ", kMaxConfigSize);
        need(n_layers <= kMaxLayers, "n_layers ", n_layers, " exceeds ", kMaxLayers);
        need(dim > 0 && hidden_dim > 0 && n_layers > 0 && vocab_size > 0, "dim ", dim, ", hidden_dim ", hidden_dim,
             ", n_layers ", n_layers, ", vocab_size ", vocab_size, " must all be positive");
        need(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, "n_heads ", n_heads,
             " is not a positive multiple of n_kv_heads ", n_kv_heads);
        need(head_dim > 0 && head_dim % 2 == 0, "head_dim ", head_dim, " must be positive and even");
        need(weight_elements().has_value(), "the weights' element count overflows 64 bits");
        // The inverse frequencies theta^(-2i/head_dim) lie in (1/theta, 1] or [1, 1/theta): finite when 1/theta is.
        need(std::isfinite(rope_theta) && rope_theta > 0.0f && std::isfinite(1.0f / rope_theta), "rope_theta ",
             rope_theta, " must be positive, with a finite reciprocal");
        need(std::isfinite(rms_norm_eps) && rms_norm_eps >= 0.0f, "rms_norm_eps ", rms_norm_eps, " is invalid");
        if (has_rope_scaling) {
            const auto& s = rope_scaling;
            auto positive = [](float x) { return std::isfinite(x) && x > 0.0f; };
            need(positive(s.factor) && positive(s.low_freq_factor) && positive(s.high_freq_factor) &&
                     positive(s.original_max_position),
                 "rope_scaling: factor ", s.factor, ", low_freq_factor ", s.low_freq_factor, ", high_freq_factor ",
                 s.high_freq_factor, ", original_max_position_embeddings ", s.original_max_position,
                 " must all be finite and positive");
            // The smoothing divides by high - low (HF's _validate_llama3_parameters asks the same).
            need(s.high_freq_factor > s.low_freq_factor, "rope_scaling: high_freq_factor ", s.high_freq_factor,
                 " must be greater than low_freq_factor ", s.low_freq_factor);
        }
        for (const int id : eos_token_ids) need(id >= 0, "eos token id ", id, " is negative");
        need(bos_token_id >= -1, "bos token id ", bos_token_id, " is invalid (-1: none)");
    }

    /// Inverse frequencies of the rotary pairs, theta^(-2i/head_dim), with Llama 3 scaling.
    [[nodiscard]] std::vector<float> rope_inv_freq() const {
        const std::size_t half = head_dim / 2;
        std::vector<float> f(half);
        for (std::size_t i = 0; i < half; ++i) {
            // llama2.c: 1 / powf(10000, (2i) / head_size), in float.
            f[i] = 1.0f / std::pow(rope_theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
            if (has_rope_scaling) {
                const auto& s = rope_scaling;
                const float low_wavelen = s.original_max_position / s.low_freq_factor;
                const float high_wavelen = s.original_max_position / s.high_freq_factor;
                const float wavelen = 2.0f * std::numbers::pi_v<float> / f[i];
                if (wavelen > low_wavelen) {
                    f[i] /= s.factor;
                } else if (wavelen >= high_wavelen) {
                    const float smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                                         (s.high_freq_factor - s.low_freq_factor);
                    f[i] = (1.0f - smooth) * f[i] / s.factor + smooth * f[i];
                }
            }
        }
        return f;
    }
};

namespace detail {

/// Field `key` of `j` as T, or `fallback` when absent or null. A wrong JSON type or a value outside
/// T's range is a format_error naming the field: nlohmann's get<int>() of 1e10 or of 2^40 would be
/// undefined or wrap, and its type_error must not escape.
template <class T>
T json_get(const nlohmann::json& j, const char* key, T fallback, std::string_view source) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    auto wrong = [&](const char* expected) {
        optiq::detail::fail<format_error>(source, ": field '", key, "' must be ", expected, ", got ",
                                          it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).substr(0, 80));
    };
    if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) wrong("a boolean");
        return it->template get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
        if (it->is_number_unsigned()) {
            const auto v = it->template get<std::uint64_t>();
            if (std::in_range<T>(v)) return static_cast<T>(v);
        } else if (it->is_number_integer()) {
            const auto v = it->template get<std::int64_t>();
            if (std::in_range<T>(v)) return static_cast<T>(v);
        }
        wrong(std::is_signed_v<T> ? "an integer in range" : "a non-negative integer in range");
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!it->is_number()) wrong("a number");
        const double v = it->template get<double>();
        if (!(std::fabs(v) <= static_cast<double>(std::numeric_limits<T>::max()))) wrong("a finite number in range");
        return static_cast<T>(v);
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) wrong("a string");
        return it->template get<std::string>();
    } else {
        try {
            return it->template get<T>();
        } catch (const nlohmann::json::exception&) {
            optiq::detail::fail<format_error>(source, ": field '", key, "' has the wrong type");
        }
    }
    return fallback;  // not reached: wrong() throws
}

/// A non-negative integer at full width (no narrowing); nullopt for anything else.
[[nodiscard]] inline std::optional<std::uint64_t> json_uint(const nlohmann::json& v) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
    return std::nullopt;
}

inline std::size_t json_size(const nlohmann::json& j, const char* key, std::string_view source, bool required = true) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) optiq::detail::fail<format_error>(source, ": field '", key, "' is missing");
        return 0;
    }
    const auto v = json_uint(*it);
    if (!v) optiq::detail::fail<format_error>(source, ": field '", key, "' is not a non-negative integer");
    // validate() bounds every size by kMaxConfigSize; here only what a size_t holds.
    if (*v > std::numeric_limits<std::size_t>::max())
        optiq::detail::fail<config_error>(source, ": field '", key, "' = ", *v, " is too large");
    return static_cast<std::size_t>(*v);
}

/// An eos / bos token id: an integer in [0, 2^31), checked before narrowing (2^32 + 2 is not token 2).
[[nodiscard]] inline int json_token_id(const nlohmann::json& v, const char* key, std::string_view source) {
    if (!v.is_number_integer())
        optiq::detail::fail<format_error>(source, ": field '", key, "' must hold integer token ids, got ", v.type_name());
    const auto id = json_uint(v);
    if (!id || *id > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
        optiq::detail::fail<config_error>(source, ": field '", key, "' = ", v.dump(), " is not a token id (0 .. 2^31-1)");
    return static_cast<int>(*id);
}

}  // namespace detail

/// From an HF config.json object (the text_config of a multimodal config is used when present).
[[nodiscard]] inline ModelConfig config_from_hf_json(const nlohmann::json& root, std::string_view source) {
    if (!root.is_object()) optiq::detail::fail<format_error>(source, ": not a JSON object");
    const nlohmann::json& j = root.contains("text_config") && root["text_config"].is_object() ? root["text_config"] : root;
    ModelConfig c;
    const std::string model_type = detail::json_get<std::string>(j, "model_type", "", source);
    if (model_type.empty()) optiq::detail::fail<format_error>(source, ": field 'model_type' is missing");
    c.arch = arch_from_name(model_type, source);
    c.dim = detail::json_size(j, "hidden_size", source);
    c.hidden_dim = detail::json_size(j, "intermediate_size", source);
    c.n_layers = detail::json_size(j, "num_hidden_layers", source);
    c.n_heads = detail::json_size(j, "num_attention_heads", source);
    c.n_kv_heads = detail::json_size(j, "num_key_value_heads", source, false);
    if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
    c.head_dim = detail::json_size(j, "head_dim", source, false);
    if (c.head_dim == 0 && c.n_heads > 0) c.head_dim = c.dim / c.n_heads;
    c.vocab_size = detail::json_size(j, "vocab_size", source);
    c.max_seq_len = detail::json_size(j, "max_position_embeddings", source, false);
    c.rope_theta = detail::json_get<float>(j, "rope_theta", 10000.0f, source);
    c.rms_norm_eps = detail::json_get<float>(j, "rms_norm_eps", 1e-6f, source);
    // Qwen2 declares a window but turns it off with use_sliding_window: false (its default).
    if (detail::json_get<bool>(j, "use_sliding_window", c.arch != Arch::qwen2, source)) {
        if (const auto sw = j.find("sliding_window"); sw != j.end() && !sw->is_null()) {
            c.sliding_window = detail::json_size(j, "sliding_window", source);
            if (c.sliding_window == 0)
                optiq::detail::fail<config_error>(source, ": field 'sliding_window' must be positive or null");
            if (c.max_seq_len == 0 || c.sliding_window < c.max_seq_len) c.max_seq_len = c.sliding_window;
        }
    }
    c.tie_word_embeddings = detail::json_get<bool>(root, "tie_word_embeddings",
                                                   detail::json_get<bool>(j, "tie_word_embeddings", false, source), source);
    c.attention_bias = c.arch == Arch::qwen2 || detail::json_get<bool>(j, "attention_bias", false, source);
    c.qk_norm = c.arch == Arch::qwen3;
    if (const auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null() && !rs->is_object())
        optiq::detail::fail<format_error>(source, ": field 'rope_scaling' must be an object or null, got ", rs->type_name());
    if (const auto rs = j.find("rope_scaling"); rs != j.end() && rs->is_object()) {
        const std::string type = detail::json_get<std::string>(*rs, "rope_type", detail::json_get<std::string>(*rs, "type", "", source), source);
        if (type == "llama3") {
            c.has_rope_scaling = true;
            c.rope_scaling.factor = detail::json_get<float>(*rs, "factor", 1.0f, source);
            c.rope_scaling.low_freq_factor = detail::json_get<float>(*rs, "low_freq_factor", 1.0f, source);
            c.rope_scaling.high_freq_factor = detail::json_get<float>(*rs, "high_freq_factor", 4.0f, source);
            c.rope_scaling.original_max_position =
                detail::json_get<float>(*rs, "original_max_position_embeddings", 8192.0f, source);
        } else if (!type.empty() && type != "default") {
            optiq::detail::fail<config_error>(source, ": rope_scaling type '", type, "' is not supported (llama3 only)");
        }
    }
    if (const auto e = j.find("eos_token_id"); e != j.end() && !e->is_null()) {
        if (e->is_array())
            for (const auto& v : *e) c.eos_token_ids.push_back(detail::json_token_id(v, "eos_token_id", source));
        else
            c.eos_token_ids.push_back(detail::json_token_id(*e, "eos_token_id", source));
    }
    if (const auto b = j.find("bos_token_id"); b != j.end() && !b->is_null())
        c.bos_token_id = detail::json_token_id(*b, "bos_token_id", source);
    c.validate(source);
    return c;
}

}  // namespace optiq::model

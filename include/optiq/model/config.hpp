#pragma once
// The hyperparameters of a decoder-only transformer of the Llama family (Llama, Mistral, SmolLM),
// Qwen2 (q/k/v bias) and Qwen3 (q/k RMSNorm), read from an HF config.json, a GGUF file's metadata
// or a llama2.c header.
#include <cmath>
#include <cstddef>
#include <numbers>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
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

    /// Throws config_error naming `source` when the numbers cannot form a model.
    void validate(std::string_view source) const {
        auto need = [&](bool ok, auto&&... what) {
            if (!ok) optiq::detail::fail<config_error>(source, ": ", what...);
        };
        need(dim > 0 && hidden_dim > 0 && n_layers > 0 && vocab_size > 0, "dim ", dim, ", hidden_dim ", hidden_dim,
             ", n_layers ", n_layers, ", vocab_size ", vocab_size, " must all be positive");
        need(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, "n_heads ", n_heads,
             " is not a positive multiple of n_kv_heads ", n_kv_heads);
        need(head_dim > 0 && head_dim % 2 == 0, "head_dim ", head_dim, " must be positive and even");
        need(std::isfinite(rope_theta) && rope_theta > 0.0f, "rope_theta ", rope_theta, " must be positive");
        need(std::isfinite(rms_norm_eps) && rms_norm_eps >= 0.0f, "rms_norm_eps ", rms_norm_eps, " is invalid");
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

template <class T>
T json_get(const nlohmann::json& j, const char* key, T fallback, std::string_view source) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const nlohmann::json::exception&) {
        optiq::detail::fail<format_error>(source, ": field '", key, "' has the wrong type");
    }
}

inline std::size_t json_size(const nlohmann::json& j, const char* key, std::string_view source, bool required = true) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) optiq::detail::fail<format_error>(source, ": field '", key, "' is missing");
        return 0;
    }
    if (!it->is_number_integer() || it->get<long long>() < 0)
        optiq::detail::fail<format_error>(source, ": field '", key, "' is not a non-negative integer");
    return static_cast<std::size_t>(it->get<long long>());
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
    if (const auto e = j.find("eos_token_id"); e != j.end()) {
        if (e->is_number_integer()) c.eos_token_ids.push_back(e->get<int>());
        else if (e->is_array())
            for (const auto& v : *e)
                if (v.is_number_integer()) c.eos_token_ids.push_back(v.get<int>());
    }
    if (const auto b = j.find("bos_token_id"); b != j.end() && b->is_number_integer()) c.bos_token_id = b->get<int>();
    c.validate(source);
    return c;
}

}  // namespace optiq::model

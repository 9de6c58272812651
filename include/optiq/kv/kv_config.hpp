#pragma once
// kv_config.json: mlx-optiq's per-layer KV-cache bit map (reference-spec C, "KV allocation";
// optiq/core/kv_cache.py), a JSON list of
//   {"layer_idx": 3, "bits": 8, "group_size": 64}
// where layer_idx is the model-layer index (sparse on hybrid models) and bits 0 means full
// precision. optiq reads and writes three optional fields on top:
//   "k_bits", "v_bits"  separate widths for keys and values (default: "bits");
//   "method"            the quantizer: "affine" (mlx-lm's QuantizedKVCache, the default when
//                       absent, as mlx-optiq serves it), "tq_mse", "tq_prod", "rvq", "polar",
//                       "qjl", "kivi".
// Files written by mlx-optiq read unchanged; files written here stay readable by mlx-optiq as
// long as no optional field is set (it ignores unknown keys).
// Errors name the file, the entry and the field: format_error for malformed JSON or wrong types,
// config_error for values out of range and duplicate layers.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/core/error.hpp"

namespace optiq::kv {

/// Method names a kv_config.json entry may carry.
inline constexpr std::string_view kv_methods[] = {"affine", "tq_mse", "tq_prod", "rvq", "polar", "qjl", "kivi"};
inline constexpr int kv_max_bits = 8;

struct KVLayerConfig {
    int layer_idx = 0;
    int bits = 0;  ///< 0: full precision
    std::size_t group_size = 64;
    std::optional<int> k_bits;  ///< overrides bits for keys
    std::optional<int> v_bits;  ///< overrides bits for values
    std::optional<std::string> method;

    [[nodiscard]] int key_bits() const noexcept { return k_bits.value_or(bits); }
    [[nodiscard]] int value_bits() const noexcept { return v_bits.value_or(bits); }
    [[nodiscard]] std::string method_or_default() const { return method.value_or("affine"); }
    friend bool operator==(const KVLayerConfig&, const KVLayerConfig&) = default;
};

struct KVConfig {
    std::vector<KVLayerConfig> layers;  ///< in file order

    /// The entry of a model layer, or nullptr (layers without an entry keep a full-precision cache).
    [[nodiscard]] const KVLayerConfig* find(int layer_idx) const noexcept {
        for (const auto& l : layers)
            if (l.layer_idx == layer_idx) return &l;
        return nullptr;
    }
    /// Mean of (key bits + value bits) / 2 over the entries (full precision counted as 16).
    [[nodiscard]] double mean_bits() const noexcept {
        if (layers.empty()) return 0.0;
        double s = 0.0;
        for (const auto& l : layers) {
            const int k = l.key_bits() == 0 ? 16 : l.key_bits(), v = l.value_bits() == 0 ? 16 : l.value_bits();
            s += 0.5 * (k + v);
        }
        return s / static_cast<double>(layers.size());
    }
    friend bool operator==(const KVConfig&, const KVConfig&) = default;
};

namespace detail {

inline std::string entry_name(std::string_view source, std::size_t i) {
    return optiq::detail::concat(source, ": entry ", i);
}

inline int config_int(const nlohmann::json& e, const char* field, std::string_view source, std::size_t i, int lo,
                      int hi) {
    const auto& v = e.at(field);
    if (!v.is_number_integer())
        optiq::detail::fail<format_error>(entry_name(source, i), ": field \"", field, "\" must be an integer, got ",
                                          v.dump());
    // Unsigned values above INT64_MAX would read back negative through get<long long>().
    const bool huge = v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX);
    const std::int64_t x = huge ? INT64_MAX : v.get<std::int64_t>();
    if (huge || x < lo || x > hi)
        optiq::detail::fail<config_error>(entry_name(source, i), ": field \"", field, "\" = ", v.dump(),
                                          " is out of range (", lo, "..", hi, ")");
    return static_cast<int>(x);
}

}  // namespace detail

/// Parses the text of a kv_config.json; `source` names it in errors (the file path).
[[nodiscard]] inline KVConfig parse_kv_config(std::string_view text, std::string_view source = "kv_config.json") {
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
        optiq::detail::fail<format_error>(source, ": not valid JSON (", e.what(), ")");
    }
    if (!doc.is_array())
        optiq::detail::fail<format_error>(source,
                                          ": expected a JSON list of {\"layer_idx\", \"bits\", \"group_size\"} "
                                          "entries, got a JSON ",
                                          doc.type_name());
    KVConfig cfg;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const auto& e = doc[i];
        if (!e.is_object())
            optiq::detail::fail<format_error>(detail::entry_name(source, i), ": expected an object, got ", e.dump());
        for (const char* required : {"layer_idx", "bits"})
            if (!e.contains(required))
                optiq::detail::fail<format_error>(detail::entry_name(source, i), ": missing field \"", required, "\"");
        KVLayerConfig l;
        l.layer_idx = detail::config_int(e, "layer_idx", source, i, 0, 1 << 30);
        l.bits = detail::config_int(e, "bits", source, i, 0, kv_max_bits);
        if (e.contains("group_size"))
            l.group_size = static_cast<std::size_t>(detail::config_int(e, "group_size", source, i, 1, 1 << 20));
        if (e.contains("k_bits")) l.k_bits = detail::config_int(e, "k_bits", source, i, 0, kv_max_bits);
        if (e.contains("v_bits")) l.v_bits = detail::config_int(e, "v_bits", source, i, 0, kv_max_bits);
        if (e.contains("method")) {
            const auto& m = e.at("method");
            if (!m.is_string())
                optiq::detail::fail<format_error>(detail::entry_name(source, i),
                                                  ": field \"method\" must be a string, got ", m.dump());
            const auto name = m.get<std::string>();
            if (std::find(std::begin(kv_methods), std::end(kv_methods), name) == std::end(kv_methods))
                optiq::detail::fail<config_error>(
                    detail::entry_name(source, i), ": field \"method\" = \"", name,
                    "\" is not a KV method (affine, tq_mse, tq_prod, rvq, polar, qjl, kivi)");
            l.method = name;
        }
        if (cfg.find(l.layer_idx) != nullptr)
            optiq::detail::fail<config_error>(detail::entry_name(source, i), ": field \"layer_idx\" = ", l.layer_idx,
                                              " appears twice");
        cfg.layers.push_back(std::move(l));
    }
    return cfg;
}

[[nodiscard]] inline KVConfig read_kv_config(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) optiq::detail::fail<format_error>(path.string(), ": cannot open kv_config file");
    std::ostringstream text;
    text << in.rdbuf();
    return parse_kv_config(text.str(), path.string());
}

/// The JSON text: one entry per layer in the config's order, optional fields only when set.
[[nodiscard]] inline std::string to_json(const KVConfig& cfg) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::array();
    for (const auto& l : cfg.layers) {
        nlohmann::ordered_json e;
        e["layer_idx"] = l.layer_idx;
        e["bits"] = l.bits;
        e["group_size"] = l.group_size;
        if (l.k_bits) e["k_bits"] = *l.k_bits;
        if (l.v_bits) e["v_bits"] = *l.v_bits;
        if (l.method) e["method"] = *l.method;
        doc.push_back(std::move(e));
    }
    return doc.dump(2) + "\n";
}

inline void write_kv_config(const std::filesystem::path& path, const KVConfig& cfg) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) optiq::detail::fail<format_error>(path.string(), ": cannot open for writing");
    out << to_json(cfg);
    if (!out) optiq::detail::fail<format_error>(path.string(), ": write failed");
}

}  // namespace optiq::kv

#pragma once
// The allocation cost table: units (weight matrices, KV layers, LoRA targets) with their parameter
// counts, a shared ascending list of candidate bit-widths, and cost[unit][bits] (KL of the logits, a
// weight MSE, or a key-norm proxy). Solvers read it; the Allocator caches it on disk as JSON keyed by
// the model identity and the settings that produced it.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/core/error.hpp"

namespace optiq::alloc {

/// What a unit is; the greedy solver's block floor reserves slots for attention projections.
enum class UnitKind : std::uint8_t { attention, mlp, embedding, head, kv_layer, other };

[[nodiscard]] inline std::string_view unit_kind_name(UnitKind k) noexcept {
    switch (k) {
        case UnitKind::attention: return "attention";
        case UnitKind::mlp: return "mlp";
        case UnitKind::embedding: return "embedding";
        case UnitKind::head: return "head";
        case UnitKind::kv_layer: return "kv_layer";
        case UnitKind::other: break;
    }
    return "other";
}

[[nodiscard]] inline UnitKind parse_unit_kind(std::string_view s) {
    for (UnitKind k : {UnitKind::attention, UnitKind::mlp, UnitKind::embedding, UnitKind::head, UnitKind::kv_layer,
                       UnitKind::other})
        if (unit_kind_name(k) == s) return k;
    optiq::detail::fail<format_error>("cost table: unknown unit kind '", s, "'");
}

/// The N of the first "layers.N" component of a module path, or -1 when there is none
/// ("model.layers.12.mlp.up_proj" -> 12, "lm_head" -> -1).
[[nodiscard]] inline int block_index(std::string_view name) noexcept {
    for (std::size_t pos = name.find("layers."); pos != std::string_view::npos; pos = name.find("layers.", pos + 1)) {
        if (pos != 0 && name[pos - 1] != '.') continue;
        const char* b = name.data() + pos + 7;
        const char* e = name.data() + name.size();
        int v = 0;
        const auto r = std::from_chars(b, e, v);
        if (r.ec == std::errc() && r.ptr != b && (r.ptr == e || *r.ptr == '.') && v >= 0) return v;
    }
    return -1;
}

/// Kind guessed from HF / MLX module names.
[[nodiscard]] inline UnitKind guess_unit_kind(std::string_view name) noexcept {
    const auto has = [&](std::string_view s) { return name.find(s) != std::string_view::npos; };
    if (has("embed_tokens") || has("wte") || has("tok_embeddings")) return UnitKind::embedding;
    if (has("lm_head") || has("output")) return UnitKind::head;
    if (has("self_attn") || has("attention") || has("q_proj") || has("k_proj") || has("v_proj") || has("o_proj"))
        return UnitKind::attention;
    if (has("mlp") || has("gate_proj") || has("up_proj") || has("down_proj") || has("feed_forward")) return UnitKind::mlp;
    return UnitKind::other;
}

/// One allocation unit.
struct Unit {
    std::string name;              ///< module path, e.g. "model.layers.0.self_attn.q_proj"
    std::uint64_t param_count = 0; ///< weights it holds: the unit's share of the bpw budget
    UnitKind kind = UnitKind::other;
    bool is_protected = false;     ///< mlx-optiq: embeddings/head, anything outside layers.N, first/last block
    int block = -1;                ///< N of "layers.N", -1 outside the blocks
    double weight = 0.0;           ///< RateQuant's w_i when the sensitivity provides one (0 = derive from cost)
};

/// mlx-optiq's protection rule (reference-spec C): names outside `layers.N` (embeddings, lm_head,
/// final norm) and the first and last block.
[[nodiscard]] inline bool is_protected_name(std::string_view name, int n_blocks) noexcept {
    const int b = block_index(name);
    return b < 0 || b == 0 || (n_blocks > 0 && b == n_blocks - 1);
}

/// A unit named like an HF module, with kind, block and protection filled in.
[[nodiscard]] inline Unit make_unit(std::string name, std::uint64_t params, int n_blocks) {
    Unit u;
    u.kind = guess_unit_kind(name);
    u.block = block_index(name);
    u.is_protected = is_protected_name(name, n_blocks);
    u.param_count = params;
    u.name = std::move(name);
    return u;
}

/// cost[unit][bits index] for a shared ascending candidate list.
class CostTable {
public:
    CostTable() = default;
    explicit CostTable(std::vector<int> candidate_bits) : bits_(std::move(candidate_bits)) {
        if (bits_.empty()) optiq::detail::fail<config_error>("cost table: no candidate bits");
        for (std::size_t i = 0; i < bits_.size(); ++i) {
            if (bits_[i] <= 0 || bits_[i] > 32)
                optiq::detail::fail<config_error>("cost table: candidate bits ", bits_[i], " out of range 1..32");
            if (i && bits_[i] <= bits_[i - 1])
                optiq::detail::fail<config_error>("cost table: candidate bits must be strictly ascending (", bits_[i - 1],
                                           " then ", bits_[i], ")");
        }
    }

    /// Adds a unit with one cost per candidate bit-width. Returns its index.
    std::size_t add(Unit u, std::vector<double> cost) {
        if (cost.size() != bits_.size())
            optiq::detail::fail<shape_error>("cost table: unit '", u.name, "' has ", cost.size(), " costs for ", bits_.size(),
                                      " candidate bit-widths");
        if (u.param_count == 0) optiq::detail::fail<value_error>("cost table: unit '", u.name, "' has no parameters");
        for (double c : cost)
            if (!std::isfinite(c)) optiq::detail::fail<value_error>("cost table: unit '", u.name, "' has a non-finite cost");
        for (const Unit& v : units_)
            if (v.name == u.name) optiq::detail::fail<value_error>("cost table: unit '", u.name, "' added twice");
        units_.push_back(std::move(u));
        cost_.push_back(std::move(cost));
        return units_.size() - 1;
    }

    [[nodiscard]] std::size_t size() const noexcept { return units_.size(); }
    [[nodiscard]] bool empty() const noexcept { return units_.empty(); }
    [[nodiscard]] const std::vector<int>& candidate_bits() const noexcept { return bits_; }
    [[nodiscard]] std::size_t n_choices() const noexcept { return bits_.size(); }
    [[nodiscard]] const Unit& unit(std::size_t i) const { return units_.at(i); }
    [[nodiscard]] const std::vector<Unit>& units() const noexcept { return units_; }
    [[nodiscard]] double cost(std::size_t unit, std::size_t choice) const { return cost_.at(unit).at(choice); }
    [[nodiscard]] const std::vector<double>& costs(std::size_t unit) const { return cost_.at(unit); }
    [[nodiscard]] std::uint64_t total_params() const noexcept {
        std::uint64_t s = 0;
        for (const Unit& u : units_) s += u.param_count;
        return s;
    }
    /// Index of `bits` among the candidates; throws when it is not one.
    [[nodiscard]] std::size_t choice_of(int bits) const {
        const auto it = std::find(bits_.begin(), bits_.end(), bits);
        if (it == bits_.end()) optiq::detail::fail<config_error>("cost table: ", bits, " bits is not a candidate");
        return static_cast<std::size_t>(it - bits_.begin());
    }
    /// Largest block index + 1 (0 when no unit sits in a layers.N block).
    [[nodiscard]] int n_blocks() const noexcept {
        int n = 0;
        for (const Unit& u : units_) n = std::max(n, u.block + 1);
        return n;
    }

    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json units = nlohmann::json::array();
        for (std::size_t i = 0; i < units_.size(); ++i) {
            const Unit& u = units_[i];
            units.push_back({{"name", u.name},
                             {"params", u.param_count},
                             {"kind", unit_kind_name(u.kind)},
                             {"protected", u.is_protected},
                             {"block", u.block},
                             {"weight", u.weight},
                             {"cost", cost_[i]}});
        }
        return {{"candidate_bits", bits_}, {"units", units}};
    }

    [[nodiscard]] static CostTable from_json(const nlohmann::json& j) {
        try {
            CostTable t(j.at("candidate_bits").get<std::vector<int>>());
            for (const auto& u : j.at("units")) {
                Unit unit;
                unit.name = u.at("name").get<std::string>();
                unit.param_count = u.at("params").get<std::uint64_t>();
                unit.kind = parse_unit_kind(u.at("kind").get<std::string>());
                unit.is_protected = u.at("protected").get<bool>();
                unit.block = u.at("block").get<int>();
                unit.weight = u.value("weight", 0.0);
                t.add(std::move(unit), u.at("cost").get<std::vector<double>>());
            }
            return t;
        } catch (const nlohmann::json::exception& e) {
            optiq::detail::fail<format_error>("cost table JSON: ", e.what());
        }
    }

private:
    std::vector<int> bits_;
    std::vector<Unit> units_;
    std::vector<std::vector<double>> cost_;
};

/// A solver's answer: bits per unit (in table order), with the budget arithmetic.
struct Allocation {
    std::vector<int> bits;
    double bpw = 0.0;   ///< parameter-weighted mean bits
    double cost = 0.0;  ///< sum of table costs at the chosen bits

    /// {unit name: bits}.
    [[nodiscard]] std::map<std::string, int> bit_map(const CostTable& t) const {
        std::map<std::string, int> m;
        for (std::size_t i = 0; i < bits.size(); ++i) m[t.unit(i).name] = bits[i];
        return m;
    }
};

/// Parameter-weighted mean of `bits` over the table's units.
[[nodiscard]] inline double weighted_bpw(const CostTable& t, const std::vector<int>& bits) {
    if (bits.size() != t.size())
        optiq::detail::fail<shape_error>("allocation: ", bits.size(), " bit-widths for ", t.size(), " units");
    long double num = 0, den = 0;
    for (std::size_t i = 0; i < bits.size(); ++i) {
        num += static_cast<long double>(bits[i]) * static_cast<long double>(t.unit(i).param_count);
        den += static_cast<long double>(t.unit(i).param_count);
    }
    return den == 0 ? 0.0 : static_cast<double>(num / den);
}

/// Whether `bit_params` total bits over `params` weights is within `budget_bpw`, with the mean
/// computed exactly as weighted_bpw computes it (so a solver's check and its result agree).
[[nodiscard]] inline bool bpw_fits(std::uint64_t bit_params, std::uint64_t params, double budget_bpw) noexcept {
    return static_cast<double>(static_cast<long double>(bit_params) / static_cast<long double>(params)) <= budget_bpw;
}

/// Fills bpw and cost for `bits` (each must be a candidate).
[[nodiscard]] inline Allocation make_allocation(const CostTable& t, std::vector<int> bits) {
    Allocation a;
    a.bpw = weighted_bpw(t, bits);
    for (std::size_t i = 0; i < bits.size(); ++i) a.cost += t.cost(i, t.choice_of(bits[i]));
    a.bits = std::move(bits);
    return a;
}

namespace detail {

/// FNV-1a 64, as 16 hex digits: the settings hash in the cache file name and key.
[[nodiscard]] inline std::string fnv1a_hex(std::string_view s) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = digits[h & 0xF];
    return out;
}

}  // namespace detail

/// Cache file: {"optiq_cost_table": 1, "key": KEY, "hash": fnv1a(KEY), "table": {...}}.
inline void save_table_cache(const std::filesystem::path& path, std::string_view key, const CostTable& t) {
    nlohmann::json j = {{"optiq_cost_table", 1}, {"key", key}, {"hash", detail::fnv1a_hex(key)}, {"table", t.to_json()}};
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) optiq::detail::fail<format_error>(tmp.string(), ": cannot create");
        out << j.dump(1) << '\n';
        if (!out) optiq::detail::fail<format_error>(tmp.string(), ": write error");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        optiq::detail::fail<format_error>(path.string(), ": cannot rename the cost table cache into place");
    }
}

/// The cached table when `path` exists and was written for exactly `key`; nullopt otherwise.
[[nodiscard]] inline std::optional<CostTable> load_table_cache(const std::filesystem::path& path, std::string_view key) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        optiq::detail::fail<format_error>(path.string(), ": ", e.what());
    }
    if (!j.is_object() || j.value("optiq_cost_table", 0) != 1) optiq::detail::fail<format_error>(path.string(), ": not a cost table cache");
    if (j.value("hash", std::string()) != detail::fnv1a_hex(key) || j.value("key", std::string()) != key) return std::nullopt;
    return CostTable::from_json(j.at("table"));
}

}  // namespace optiq::alloc

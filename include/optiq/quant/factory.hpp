#pragma once
// A run-time factory from strings to quantizers, in the spirit of FAISS's index_factory, for
// drivers and config files (kv_config.json "method", optiq-quant-report --methods).
//
//   spec    := method [":" bits] {":" option}
//   tq_mse:B   [:haar|:hadamard] [:gauss|:sphere]   TurboQuant-MSE, B = 1..8
//   tq_prod:B  [:haar|:hadamard] [:mM]              TurboQuant-Prod, (B-1)-bit MSE + QJL with M rows (default d)
//   qjl[:B]    [:mM]                                QJL, M = B*d sketch rows (default B = 1)
//   rvq:B      [:haar|:hadamard]                    two-stage residual VQ, B bits per stage
//   polar:B | polar:b1,b2,..  [:lL]                 PolarQuant, L levels (default 4) at B bits or per-level bits
//                                                   (also b1/b2/.. where commas separate list items, as on a CLI)
//   kivi:B     [:gG] [:rR] [:keys|:values]          KIVI (default per-channel keys, G = 32, R = 0)
//   affine:B   [:gG]                                MLX affine, group G (default 64)
// Every spec also accepts :f32 / :f16 / :bf16 for the storage type of side data (default f16).
// Examples: "tq_mse:4", "tq_mse:3:haar", "tq_prod:4:m64", "polar:4,2,2,2", "affine:4:g32".
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/precondition/haar.hpp"
#include "optiq/precondition/hadamard.hpp"
#include "optiq/quant/any_quantizer.hpp"
#include "optiq/quant/methods/kivi.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"
#include "optiq/quant/methods/polar.hpp"
#include "optiq/quant/methods/qjl.hpp"
#include "optiq/quant/methods/rvq.hpp"
#include "optiq/quant/methods/turboquant.hpp"

namespace optiq {

/// The method names make_quantizer knows, comma separated.
[[nodiscard]] inline std::string method_names() { return "tq_mse,tq_prod,qjl,rvq,polar,kivi,affine"; }

namespace detail {

struct ParsedSpec {
    std::string spec;
    std::string method;
    std::vector<int> bits;             // one entry, or per-level bits for polar
    std::vector<std::string> options;  // the remaining ":" fields, each consumed once
};

[[nodiscard]] inline int parse_int_field(std::string_view text, const std::string& spec, const char* what) {
    int v = 0;
    const auto* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (text.empty() || r.ec != std::errc() || r.ptr != end)
        fail<config_error>("quantizer spec \"", spec, "\": ", what, " \"", text, "\" is not an integer");
    return v;
}

[[nodiscard]] inline ParsedSpec parse_spec(std::string_view spec_view) {
    ParsedSpec p;
    p.spec = std::string(spec_view);
    std::vector<std::string> fields;
    std::size_t start = 0;
    while (true) {
        const auto colon = spec_view.find(':', start);
        fields.emplace_back(spec_view.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
        if (colon == std::string_view::npos) break;
        start = colon + 1;
    }
    p.method = fields[0];
    if (p.method.empty()) fail<config_error>("quantizer spec \"", p.spec, "\": no method name");
    std::size_t next = 1;
    if (fields.size() > 1 && !fields[1].empty() && (std::isdigit(static_cast<unsigned char>(fields[1][0])) != 0)) {
        std::string_view b = fields[1];
        std::size_t s = 0;
        while (true) {
            const auto comma = b.find_first_of(",/", s);
            p.bits.push_back(parse_int_field(b.substr(s, comma == std::string_view::npos ? std::string_view::npos : comma - s),
                                             p.spec, "bits"));
            if (comma == std::string_view::npos) break;
            s = comma + 1;
        }
        next = 2;
    }
    p.options.assign(fields.begin() + static_cast<std::ptrdiff_t>(next), fields.end());
    return p;
}

/// Removes and returns a flag option ("haar") if present.
[[nodiscard]] inline bool take_flag(ParsedSpec& p, std::string_view flag) {
    for (auto it = p.options.begin(); it != p.options.end(); ++it) {
        if (*it == flag) {
            p.options.erase(it);
            return true;
        }
    }
    return false;
}

/// Removes and returns a prefixed integer option ("g64" -> 64) if present.
[[nodiscard]] inline std::optional<int> take_int(ParsedSpec& p, char prefix, const char* what) {
    for (auto it = p.options.begin(); it != p.options.end(); ++it) {
        if (it->size() > 1 && (*it)[0] == prefix && std::isdigit(static_cast<unsigned char>((*it)[1])) != 0) {
            const int v = parse_int_field(std::string_view(*it).substr(1), p.spec, what);
            p.options.erase(it);
            return v;
        }
    }
    return std::nullopt;
}

[[nodiscard]] inline SideType take_side_type(ParsedSpec& p) {
    if (take_flag(p, "f32")) return SideType::f32;
    if (take_flag(p, "bf16")) return SideType::bf16;
    (void)take_flag(p, "f16");
    return SideType::f16;
}

[[nodiscard]] inline int single_bits(const ParsedSpec& p, std::optional<int> fallback = std::nullopt) {
    if (p.bits.empty()) {
        if (fallback) return *fallback;
        fail<config_error>("quantizer spec \"", p.spec, "\": ", p.method, " needs a bit width, e.g. \"", p.method, ":4\"");
    }
    if (p.bits.size() != 1)
        fail<config_error>("quantizer spec \"", p.spec, "\": ", p.method, " takes one bit width, got ", p.bits.size());
    return p.bits[0];
}

inline void check_consumed(const ParsedSpec& p) {
    if (!p.options.empty())
        fail<config_error>("quantizer spec \"", p.spec, "\": unknown option \"", p.options.front(), "\" for ", p.method);
}

[[nodiscard]] inline std::size_t sketch_rows_option(ParsedSpec& p) {
    const auto m = take_int(p, 'm', "sketch rows");
    if (m && *m <= 0) fail<config_error>("quantizer spec \"", p.spec, "\": sketch rows must be positive");
    return m ? static_cast<std::size_t>(*m) : 0;
}

}  // namespace detail

/// Builds the quantizer a spec string names, for vectors of dimension dim; seed fixes every
/// random choice (rotation, signs, sketch). Throws config_error naming the spec and the field.
[[nodiscard]] inline AnyQuantizer make_quantizer(std::string_view spec, std::size_t dim, std::uint64_t seed) {
    using namespace detail;
    ParsedSpec p = parse_spec(spec);
    const SideType side = take_side_type(p);
    const std::string& s = p.spec;
    if (p.method == "tq_mse") {
        const int b = single_bits(p);
        const bool haar = take_flag(p, "haar");
        (void)take_flag(p, "hadamard");
        const bool gauss = take_flag(p, "gauss");
        (void)take_flag(p, "sphere");
        check_consumed(p);
        if (haar && gauss) return AnyQuantizer(TurboQuantMSE<dynamic_bits, HaarRotation, GaussianDensity>(dim, b, seed, side), s);
        if (haar) return AnyQuantizer(TurboQuantMSE<dynamic_bits, HaarRotation>(dim, b, seed, side), s);
        if (gauss) return AnyQuantizer(TurboQuantMSE<dynamic_bits, RandomizedHadamard, GaussianDensity>(dim, b, seed, side), s);
        return AnyQuantizer(TurboQuantMSE<>(dim, b, seed, side), s);
    }
    if (p.method == "tq_prod") {
        const int b = single_bits(p);
        const bool haar = take_flag(p, "haar");
        (void)take_flag(p, "hadamard");
        const std::size_t m = sketch_rows_option(p);
        check_consumed(p);
        if (haar) return AnyQuantizer(TurboQuantProd<HaarRotation>(dim, b, seed, m, side), s);
        return AnyQuantizer(TurboQuantProd<>(dim, b, seed, m, side), s);
    }
    if (p.method == "qjl") {
        const int b = single_bits(p, 1);
        if (b < 1) fail<config_error>("quantizer spec \"", s, "\": qjl bits must be >= 1");
        std::size_t m = sketch_rows_option(p);
        if (m == 0) m = static_cast<std::size_t>(b) * dim;
        check_consumed(p);
        return AnyQuantizer(QJL(dim, seed, m, side), s);
    }
    if (p.method == "rvq") {
        const int b = single_bits(p);
        const bool haar = take_flag(p, "haar");
        (void)take_flag(p, "hadamard");
        check_consumed(p);
        if (haar) return AnyQuantizer(RVQ<HaarRotation>(dim, b, seed, side), s);
        return AnyQuantizer(RVQ<>(dim, b, seed, side), s);
    }
    if (p.method == "polar") {
        if (p.bits.empty()) fail<config_error>("quantizer spec \"", s, "\": polar needs bits, e.g. polar:4,2,2,2 or polar:3");
        const auto levels = take_int(p, 'l', "levels");
        check_consumed(p);
        std::vector<int> level_bits = p.bits;
        if (level_bits.size() == 1) level_bits.assign(static_cast<std::size_t>(levels.value_or(4)), p.bits[0]);
        else if (levels && static_cast<std::size_t>(*levels) != level_bits.size())
            fail<config_error>("quantizer spec \"", s, "\": ", level_bits.size(), " per-level bit widths but l", *levels);
        return AnyQuantizer(PolarQuant<>(dim, std::move(level_bits), seed, side), s);
    }
    if (p.method == "kivi") {
        const int b = single_bits(p);
        const auto g = take_int(p, 'g', "group size");
        const auto r = take_int(p, 'r', "residual tokens");
        const bool values = take_flag(p, "values");
        (void)take_flag(p, "keys");
        check_consumed(p);
        if ((g && *g <= 0) || (r && *r < 0)) fail<config_error>("quantizer spec \"", s, "\": bad group size or residual");
        const auto group = static_cast<std::size_t>(g.value_or(32));
        const auto residual = static_cast<std::size_t>(r.value_or(0));
        if (values) return AnyQuantizer(KiviValues(dim, b, group, residual, side), s);
        return AnyQuantizer(KiviKeys(dim, b, group, residual, side), s);
    }
    if (p.method == "affine") {
        const int b = single_bits(p);
        const auto g = take_int(p, 'g', "group size");
        check_consumed(p);
        if (g && *g <= 0) fail<config_error>("quantizer spec \"", s, "\": group size must be positive");
        return AnyQuantizer(make_mlx_affine(dim, b, static_cast<std::size_t>(g.value_or(64)), side), s);
    }
    fail<config_error>("quantizer spec \"", s, "\": unknown method \"", p.method, "\" (known: ", method_names(), ")");
}

}  // namespace optiq

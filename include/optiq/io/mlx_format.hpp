#pragma once
// Writer of an MLX-format model directory, as mlx-lm's convert / save_model leaves it
// (reference-spec D, "Tensor names", "save_model", "config.json quantization"):
// - each module X chosen in the bit map (a Linear / Embedding with a 2-D X.weight) is quantized with
//   optiq::mlx::quantize into X.weight (uint32, [out, in*bits/32]), X.scales and X.biases ([out, in/g],
//   in the source dtype); every other tensor is copied as it is (after the optional dtype cast);
// - a module whose input dimension is not divisible by the group size, or whose bits are 16 / 0,
//   stays unquantized and gets `false` in the overrides (mlx-lm's convert skips such linears silently;
//   an explicit false keeps the file self-describing);
// - safetensors with metadata {"format": "mlx"}, one file or <= 5 GB shards plus
//   model.safetensors.index.json (SafetensorsWriter::write_sharded);
// - config.json: the source config plus "quantization" = "quantization_config" =
//   {"group_size", "bits", "mode": "affine"} with overrides keyed by MODULE PATH
//   ("model.layers.0.self_attn.q_proj", never "...q_proj.weight": mlx-vlm #1078/#1079), written for
//   every module whose bits or group size differ from the defaults, and `false` for unquantized ones;
// - optiq_metadata.json {"method", "target_bpw", "achieved_bpw", "per_layer": {path: {"bits", "kl"}}};
// - everything goes to a sibling temporary directory renamed onto the output when complete; an
//   existing output directory is refused, as mlx-lm's convert refuses it, unless overwrite is set
//   (then the old directory is replaced only after the new one is complete).
//
// achieved_bpw is the parameter-weighted mean of the nominal bits over the QUANTIZED modules, the
// quantity the allocator budgets (modules kept unquantized are listed in `unquantized` instead);
// effective_bpw is over every module of the bit map and adds the per-group scale and bias storage
// (2 * side bits / group size) and the kept modules' real dtype width.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/core/error.hpp"
#include "optiq/io/dtype.hpp"
#include "optiq/io/safetensors.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::io {

struct MlxWriteOptions {
    std::size_t group_size = 64;
    int default_bits = 4;                     ///< "quantization"."bits"; modules at other bits get overrides
    std::optional<DType> dtype;               ///< cast f32/f16/bf16 tensors to this (f16 / bf16 / f32) first
    std::uint64_t max_shard_bytes = kMlxShardBytes;
    std::string method = "optiq";
    double target_bpw = 0.0;
    std::map<std::string, double> kl;         ///< per-module KL for optiq_metadata.json (optional)
    std::vector<std::filesystem::path> extra_files;  ///< copied in as they are (tokenizer files ...)
    std::map<std::string, std::string> extra_texts;  ///< file name -> contents (generated tokenizer, report)
    bool overwrite = false;                   ///< replace an existing output directory
};

struct MlxWriteReport {
    double achieved_bpw = 0.0;
    double effective_bpw = 0.0;
    std::vector<std::string> quantized;    ///< module paths
    std::vector<std::string> unquantized;  ///< module paths of the bit map left as they were
    std::vector<std::filesystem::path> shards;
    nlohmann::json quantization;           ///< the config.json "quantization" object
};

namespace detail {

[[nodiscard]] inline bool is_float_dtype(DType t) noexcept {
    return t == DType::f32 || t == DType::f16 || t == DType::bf16;
}

/// Bytes of `values` stored as `dtype` (f32, f16 or bf16).
[[nodiscard]] inline std::vector<std::byte> float_bytes(std::span<const float> values, DType dtype) {
    std::vector<std::byte> out(values.size() * dtype_size(dtype));
    for (std::size_t i = 0; i < values.size(); ++i) {
        std::byte* p = out.data() + i * dtype_size(dtype);
        if (dtype == DType::f32) store_le<float>(p, values[i]);
        else if (dtype == DType::bf16) store_le<std::uint16_t>(p, float_to_bf16_bits(values[i]));
        else store_le<std::uint16_t>(p, float_to_f16_bits(values[i]));
    }
    return out;
}

[[nodiscard]] inline SideType side_type_of(DType t) {
    switch (t) {
        case DType::f32: return SideType::f32;
        case DType::f16: return SideType::f16;
        case DType::bf16: return SideType::bf16;
        default: break;
    }
    optiq::detail::fail<config_error>("mlx format: dtype ", dtype_name(t), " is not f32, f16 or bf16");
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) optiq::detail::fail<format_error>(path.string(), ": cannot create");
    out << text;
    if (!out) optiq::detail::fail<format_error>(path.string(), ": write error");
}

}  // namespace detail

/// Writes `out_dir` (which must not exist). `tensors` are the source model's tensors with the
/// names mlx-lm's model expects after sanitize; `bit_map` maps module paths to bits (2..8 as MLX
/// allows, 16 or 0 = keep). Throws config_error for a key spelled as a tensor ("X.weight") or naming
/// no 2-D X.weight, and for bits MLX does not support.
inline MlxWriteReport write_mlx_model(const std::filesystem::path& out_dir, std::span<const TensorView> tensors,
                                      const nlohmann::json& source_config, const std::map<std::string, int>& bit_map,
                                      const MlxWriteOptions& opt = {}) {
    namespace fs = std::filesystem;
    if (fs::exists(out_dir) && !opt.overwrite)
        optiq::detail::fail<config_error>("mlx format: output directory ", out_dir.string(),
                                          " already exists; refusing to overwrite it");
    for (const auto& [name, text] : opt.extra_texts)
        if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
            optiq::detail::fail<config_error>("mlx format: extra file name '", name, "' is not a plain file name");
    if (!source_config.is_object()) optiq::detail::fail<config_error>("mlx format: the source config is not a JSON object");
    if (opt.dtype && !detail::is_float_dtype(*opt.dtype))
        optiq::detail::fail<config_error>("mlx format: cast dtype ", dtype_name(*opt.dtype), " is not f32, f16 or bf16");
    if (!Affine::mlx_group_size(opt.group_size))
        optiq::detail::fail<config_error>("mlx format: group_size ", opt.group_size, " is not 32, 64 or 128");
    if (!Affine::mlx_bits(opt.default_bits))
        optiq::detail::fail<config_error>("mlx format: default bits ", opt.default_bits, " is not an MLX bit-width");

    std::map<std::string, const TensorView*> by_name;
    for (const TensorView& t : tensors) by_name[t.name] = &t;
    for (const auto& [path, bits] : bit_map) {
        if (path.size() >= 7 && path.compare(path.size() - 7, 7, ".weight") == 0)
            optiq::detail::fail<config_error>("mlx format: bit map key '", path,
                                              "' is a tensor name; use the module path (without '.weight')");
        const auto it = by_name.find(path + ".weight");
        if (it == by_name.end() || it->second->rank() != 2)
            optiq::detail::fail<config_error>("mlx format: bit map key '", path, "' names no module with a 2-D '", path,
                                              ".weight'");
        if (bits != 16 && bits != 0 && !Affine::mlx_bits(bits))
            optiq::detail::fail<config_error>("mlx format: module '", path, "' has bits = ", bits,
                                              " (MLX supports 2, 3, 4, 5, 6, 8; 16 or 0 keep it unquantized)");
    }

    MlxWriteReport report;
    SafetensorsWriter writer;
    writer.set_metadata("format", "mlx");
    nlohmann::json quant = {{"group_size", opt.group_size}, {"bits", opt.default_bits}, {"mode", "affine"}};
    nlohmann::json per_layer = nlohmann::json::object();
    long double nominal = 0, effective = 0, params = 0, quantized_params = 0;

    for (const TensorView& t : tensors) {
        const DType out_dtype = opt.dtype && detail::is_float_dtype(t.dtype) ? *opt.dtype : t.dtype;
        const bool is_weight = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
        const std::string module = is_weight ? t.name.substr(0, t.name.size() - 7) : std::string();
        const auto entry = is_weight ? bit_map.find(module) : bit_map.end();
        if (entry == bit_map.end()) {
            if (out_dtype == t.dtype) writer.add_borrowed(t);
            else writer.add(t.name, out_dtype, t.shape, detail::float_bytes(t.to_float(), out_dtype));
            continue;
        }
        if (!detail::is_float_dtype(t.dtype))
            optiq::detail::fail<config_error>("mlx format: module '", module, "' has dtype ", dtype_name(t.dtype),
                                              "; only f32, f16 and bf16 weights can be quantized");
        const int bits = entry->second;
        const auto n = static_cast<long double>(t.numel());
        params += n;
        const bool quantize = bits != 16 && bits != 0 && t.shape.back() % opt.group_size == 0;
        if (!quantize) {
            if (out_dtype == t.dtype) writer.add_borrowed(t);
            else writer.add(t.name, out_dtype, t.shape, detail::float_bytes(t.to_float(), out_dtype));
            quant[module] = false;
            report.unquantized.push_back(module);
            effective += static_cast<long double>(8 * dtype_size(out_dtype)) * n;
            per_layer[module] = {{"bits", 16}};
        } else {
            const SideType side = detail::side_type_of(out_dtype);
            mlx::QuantizedMatrix q;
            const std::vector<float> f = t.to_float();
            if (side == SideType::f32) {
                q = mlx::quantize(f, t.shape, opt.group_size, bits);
            } else {
                // Round to the output dtype first, as mx.quantize sees a bf16 / f16 array.
                const std::vector<std::uint16_t> h = mlx::to_bits16(f, side);
                q = mlx::quantize(std::span<const std::uint16_t>(h), side, t.shape, opt.group_size, bits);
            }
            std::vector<std::byte> words(q.words.size() * 4);
            for (std::size_t i = 0; i < q.words.size(); ++i) detail::store_le<std::uint32_t>(words.data() + 4 * i, q.words[i]);
            writer.add(module + ".weight", DType::u32, q.words_shape(), words);
            writer.add(module + ".scales", out_dtype, q.scales_shape(), detail::float_bytes(q.scales, out_dtype));
            writer.add(module + ".biases", out_dtype, q.scales_shape(), detail::float_bytes(q.biases, out_dtype));
            if (bits != opt.default_bits) quant[module] = {{"group_size", opt.group_size}, {"bits", bits}};
            report.quantized.push_back(module);
            nominal += static_cast<long double>(bits) * n;
            quantized_params += n;
            effective += (static_cast<long double>(bits) +
                          2.0L * static_cast<long double>(8 * dtype_size(out_dtype)) / static_cast<long double>(opt.group_size)) *
                         n;
            per_layer[module] = {{"bits", bits}};
        }
        if (const auto k = opt.kl.find(module); k != opt.kl.end()) per_layer[module]["kl"] = k->second;
    }
    report.achieved_bpw = quantized_params > 0 ? static_cast<double>(nominal / quantized_params) : 0.0;
    report.effective_bpw = params > 0 ? static_cast<double>(effective / params) : 0.0;
    report.quantization = quant;

    nlohmann::json config = source_config;
    config["quantization"] = quant;
    config["quantization_config"] = quant;
    const nlohmann::json metadata = {{"method", opt.method},
                                     {"target_bpw", opt.target_bpw},
                                     {"achieved_bpw", report.achieved_bpw},
                                     {"effective_bpw", report.effective_bpw},
                                     {"group_size", opt.group_size},
                                     {"unquantized", report.unquantized},
                                     {"per_layer", per_layer}};

    fs::path tmp = out_dir;
    tmp += ".optiq-tmp";
    std::error_code ec;
    fs::remove_all(tmp, ec);  // a leftover of an interrupted run of this writer
    fs::create_directories(tmp);
    try {
        const auto shards = writer.write_sharded(tmp, opt.max_shard_bytes);
        if (shards.size() == 1) fs::remove(tmp / "model.safetensors.index.json");  // mlx-lm writes none for one file
        detail::write_text(tmp / "config.json", config.dump(4) + "\n");
        detail::write_text(tmp / "optiq_metadata.json", metadata.dump(2) + "\n");
        for (const fs::path& f : opt.extra_files) fs::copy_file(f, tmp / f.filename());
        for (const auto& [name, text] : opt.extra_texts) detail::write_text(tmp / name, text);
        if (fs::exists(out_dir)) {  // overwrite: the old output goes only once the new one is whole
            fs::path old = out_dir;
            old += ".optiq-old";
            fs::remove_all(old, ec);
            fs::rename(out_dir, old);
            fs::rename(tmp, out_dir);
            fs::remove_all(old, ec);
        } else {
            fs::rename(tmp, out_dir);
        }
        for (const fs::path& s : shards) report.shards.push_back(out_dir / s.filename());
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
    return report;
}

}  // namespace optiq::io

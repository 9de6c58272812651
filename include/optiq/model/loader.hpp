#pragma once
// Builds a Transformer from a model on disk:
//   - a llama2.c checkpoint (.bin; f32; interleaved rotary),
//   - a GGUF file (general.architecture llama / mistral / qwen2 / qwen3): F32 tensors stay f32,
//     F16 / BF16 stay 16-bit, block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K) stay in the
//     mapped file and are multiplied in place (LoadOptions::gguf_weights), so a model occupies
//     about its file size. "llama" files keep llama.cpp's row order for attn_q / attn_k and
//     rotate adjacent pairs (reference-spec F); qwen2 / qwen3 rotate halves.
//   - an HF / MLX directory: config.json plus model.safetensors or a sharded index. f32 / f16 /
//     bf16 weights are kept in their dtype; MLX-quantized modules (X.weight uint32, X.scales,
//     X.biases, with config.json "quantization": {group_size, bits, "<module>": {group_size, bits}})
//     stay packed and are multiplied in that form.
// Errors name the file and the tensor: format_error for a missing tensor or unreadable file,
// shape_error for a tensor of the wrong shape, config_error for an unknown architecture.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/io/dtype.hpp"
#include "optiq/io/ggml_quants.hpp"
#include "optiq/io/gguf.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/io/safetensors.hpp"
#include "optiq/model/config.hpp"
#include "optiq/model/transformer.hpp"
#include "optiq/model/weights.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::model {

/// What the loader does with GGUF block-type (quantized) matrices.
enum class GgufWeights {
    in_place,    ///< used where they lie in the mapped file (the default: memory = file size)
    f32,         ///< dequantized to f32 at load (ggml's reference rule; ~7x the memory)
    mlx_affine,  ///< Q4_0 / Q4_1 / Q8_0 re-expressed as MLX affine matrices (group 32, f32 scale
                 ///< and bias: Q4_1 is d·q + m exactly; Q4_0 and Q8_0 become d·u − 8d / d·u − 128d,
                 ///< equal to ggml's values up to one rounding); other types as f32
};

[[nodiscard]] constexpr const char* gguf_weights_name(GgufWeights g) noexcept {
    switch (g) {
        case GgufWeights::in_place: return "in-place";
        case GgufWeights::f32: return "f32";
        case GgufWeights::mlx_affine: return "mlx";
    }
    return "?";
}

/// "in-place" / "f32" / "mlx" (a driver flag's value); throws config_error naming `what` otherwise.
[[nodiscard]] inline GgufWeights gguf_weights_from_name(std::string_view name, std::string_view what = "gguf weights") {
    for (const GgufWeights g : {GgufWeights::in_place, GgufWeights::f32, GgufWeights::mlx_affine})
        if (name == gguf_weights_name(g)) return g;
    optiq::detail::fail<config_error>(what, ": unknown value '", name, "' (in-place, f32, mlx)");
}

struct LoadOptions {
    TransformerOptions transformer{};
    CacheFactory caches = f32_cache_factory();
    GgufWeights gguf_weights = GgufWeights::in_place;
    /// Deprecated spelling of gguf_weights = GgufWeights::mlx_affine.
    bool gguf_keep_quantized = false;
};

namespace detail {

/// Where a loader finds tensors by HF name.
struct TensorSource {
    std::string file;                                                         // for messages
    std::function<bool(const std::string&)> has;                              // tensor present
    std::function<std::vector<float>(const std::string&, std::size_t)> floats;  // 1-D of n floats
    std::function<Linear(const std::string& module, std::size_t out, std::size_t in)> linear;
};

[[noreturn]] inline void missing(const std::string& file, const std::string& name) {
    optiq::detail::fail<format_error>(file, ": tensor '", name, "' is missing");
}

inline void check_shape(const std::string& file, const std::string& name, const std::vector<std::size_t>& got,
                        const std::vector<std::size_t>& want) {
    if (got != want)
        optiq::detail::fail<shape_error>(file, ": tensor '", name, "' has shape ", io::shape_string(got), ", expected ",
                                         io::shape_string(want));
}

/// f32 / f16 / bf16 view into a Linear (16-bit types kept as they are).
inline Linear linear_from_view(const io::TensorView& t, const std::string& file, std::size_t out, std::size_t in) {
    check_shape(file, t.name, t.shape, {out, in});
    if (t.dtype == io::DType::f16 || t.dtype == io::DType::bf16) {
        std::vector<std::uint16_t> bits(t.numel());
        for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = io::detail::load_le<std::uint16_t>(t.bytes.data() + 2 * i);
        return Linear::half(std::move(bits), t.dtype == io::DType::f16 ? SideType::f16 : SideType::bf16, out, in, t.name);
    }
    if (!io::is_floating(t.dtype))
        optiq::detail::fail<format_error>(file, ": tensor '", t.name, "' has dtype ", io::dtype_name(t.dtype),
                                          ", not a float type");
    return Linear::f32(t.to_float(), out, in, t.name);
}

inline TransformerWeights build_weights(const ModelConfig& c, const TensorSource& src) {
    TransformerWeights w;
    auto vec = [&](const std::string& name, std::size_t n) {
        if (!src.has(name)) missing(src.file, name);
        return src.floats(name, n);
    };
    auto lin = [&](const std::string& module, std::size_t out, std::size_t in, bool bias) {
        Linear l = src.linear(module, out, in);
        if (bias) l.set_bias(vec(module + ".bias", out));
        return l;
    };
    w.embed = src.linear("model.embed_tokens", c.vocab_size, c.dim);
    w.layers.resize(c.n_layers);
    for (std::size_t i = 0; i < c.n_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        auto& L = w.layers[i];
        L.attn_norm = vec(p + "input_layernorm.weight", c.dim);
        L.ffn_norm = vec(p + "post_attention_layernorm.weight", c.dim);
        L.q = lin(p + "self_attn.q_proj", c.q_dim(), c.dim, c.attention_bias);
        L.k = lin(p + "self_attn.k_proj", c.kv_dim(), c.dim, c.attention_bias);
        L.v = lin(p + "self_attn.v_proj", c.kv_dim(), c.dim, c.attention_bias);
        L.o = lin(p + "self_attn.o_proj", c.dim, c.q_dim(), false);
        L.gate = lin(p + "mlp.gate_proj", c.hidden_dim, c.dim, false);
        L.up = lin(p + "mlp.up_proj", c.hidden_dim, c.dim, false);
        L.down = lin(p + "mlp.down_proj", c.dim, c.hidden_dim, false);
        if (c.qk_norm) {
            L.q_norm = vec(p + "self_attn.q_norm.weight", c.head_dim);
            L.k_norm = vec(p + "self_attn.k_norm.weight", c.head_dim);
        }
    }
    w.final_norm = vec("model.norm.weight", c.dim);
    if (!c.tie_word_embeddings) w.lm_head = src.linear("lm_head", c.vocab_size, c.dim);
    return w;
}

}  // namespace detail

/// A llama2.c checkpoint (run.c's format; see io/llama2c.hpp).
[[nodiscard]] inline Transformer load_llama2c(const std::filesystem::path& path, const LoadOptions& opts = {}) {
    auto ck = std::make_shared<io::Llama2cCheckpoint>(io::Llama2cCheckpoint::open(path));
    const auto& h = ck->config();
    ModelConfig c;
    c.arch = Arch::llama;
    c.dim = h.dim;
    c.hidden_dim = h.hidden_dim;
    c.n_layers = h.n_layers;
    c.n_heads = h.n_heads;
    c.n_kv_heads = h.n_kv_heads;
    c.head_dim = h.head_dim();
    c.vocab_size = h.vocab_size;
    c.max_seq_len = h.seq_len;
    c.rope_theta = h.rope_theta;
    c.rms_norm_eps = h.rms_norm_eps;
    c.rope_interleaved = h.rope_interleaved;
    c.tie_word_embeddings = h.tie_word_embeddings;
    c.bos_token_id = 1;
    c.eos_token_ids = {1};  // run.c stops when BOS (the story delimiter) is generated
    c.validate(ck->path());
    detail::TensorSource src;
    src.file = ck->path();
    src.has = [&](const std::string& n) { return ck->contains(n); };
    src.floats = [&](const std::string& n, std::size_t len) {
        const auto& t = ck->at(n);
        detail::check_shape(src.file, n, t.shape, {len});
        return t.to_float();
    };
    src.linear = [&](const std::string& m, std::size_t out, std::size_t in) {
        const io::TensorView* t = ck->find(m + ".weight");
        if (!t) detail::missing(src.file, m + ".weight");
        return detail::linear_from_view(*t, src.file, out, in);
    };
    return Transformer(c, detail::build_weights(c, src), opts.caches, opts.transformer);
}

namespace detail {

/// A GGUF Q4_0 / Q4_1 / Q8_0 matrix [out, in] as an MLX affine matrix of group 32 (see
/// LoadOptions::gguf_keep_quantized); nullopt for other types.
inline std::optional<mlx::QuantizedMatrix> gguf_to_mlx_affine(const io::GgufTensor& t, std::size_t out, std::size_t in) {
    const auto type = t.type;
    if (type != io::GgmlType::q4_0 && type != io::GgmlType::q4_1 && type != io::GgmlType::q8_0) return std::nullopt;
    const int bits = type == io::GgmlType::q8_0 ? 8 : 4;
    const std::size_t block_bytes = type == io::GgmlType::q4_0 ? 18 : type == io::GgmlType::q4_1 ? 20 : 34;
    if (in % 32 != 0 || t.bytes.size() != out * (in / 32) * block_bytes) return std::nullopt;
    mlx::QuantizedMatrix q;
    q.shape = {out, in};
    q.group_size = 32;
    q.bits = bits;
    q.dtype = SideType::f32;
    const std::size_t gpr = in / 32, wpr = q.words_per_row();
    q.words.resize(out * wpr);
    q.scales.resize(out * gpr);
    q.biases.resize(out * gpr);
    std::vector<std::uint8_t> codes(in);
    const MlxStream<> packer(bits);
    for (std::size_t r = 0; r < out; ++r) {
        for (std::size_t g = 0; g < gpr; ++g) {
            const std::byte* b = t.bytes.data() + (r * gpr + g) * block_bytes;
            const float d = f16_bits_to_float(io::detail::load_le<std::uint16_t>(b));
            std::uint8_t* c = codes.data() + g * 32;
            q.scales[r * gpr + g] = d;
            if (type == io::GgmlType::q8_0) {
                q.biases[r * gpr + g] = -128.0f * d;
                for (std::size_t j = 0; j < 32; ++j)
                    c[j] = static_cast<std::uint8_t>(std::to_integer<std::uint8_t>(b[2 + j]) ^ 0x80u);  // int8 + 128
            } else {
                const std::size_t qs = type == io::GgmlType::q4_1 ? 4 : 2;
                q.biases[r * gpr + g] =
                    type == io::GgmlType::q4_1 ? f16_bits_to_float(io::detail::load_le<std::uint16_t>(b + 2)) : -8.0f * d;
                for (std::size_t j = 0; j < 16; ++j) {
                    const auto v = std::to_integer<std::uint8_t>(b[qs + j]);
                    c[j] = v & 0x0F;
                    c[j + 16] = v >> 4;
                }
            }
        }
        packer.pack(codes, {q.words.data() + r * wpr, wpr});
    }
    return q;
}

/// MLX quantization parameters of one module from config.json's "quantization" object.
inline std::optional<std::pair<std::size_t, int>> mlx_quant_params(const nlohmann::json& q, const std::string& module,
                                                                   const std::string& source) {
    if (!q.is_object()) return std::nullopt;
    std::size_t g = json_get<std::size_t>(q, "group_size", 64, source);
    int bits = json_get<int>(q, "bits", 4, source);
    if (const auto it = q.find(module); it != q.end()) {
        if (it->is_boolean() && !it->get<bool>()) return std::nullopt;
        if (it->is_object()) {
            g = json_get<std::size_t>(*it, "group_size", g, source);
            bits = json_get<int>(*it, "bits", bits, source);
        }
    }
    return std::pair{g, bits};
}

}  // namespace detail

/// The ModelConfig of a GGUF file's metadata.
[[nodiscard]] inline ModelConfig config_from_gguf(const io::GgufFile& f) {
    const auto& md = f.metadata();
    const std::string arch = f.architecture();
    if (arch.empty()) optiq::detail::fail<format_error>(f.path(), ": metadata key 'general.architecture' is missing");
    ModelConfig c;
    c.arch = arch_from_name(arch, f.path());
    const std::string a = arch + ".";
    auto u = [&](const std::string& k) { return static_cast<std::size_t>(md.get_int(a + k)); };
    c.dim = u("embedding_length");
    c.hidden_dim = u("feed_forward_length");
    c.n_layers = u("block_count");
    c.n_heads = u("attention.head_count");
    c.n_kv_heads = static_cast<std::size_t>(md.get_int_or(a + "attention.head_count_kv", static_cast<std::int64_t>(c.n_heads)));
    c.head_dim = static_cast<std::size_t>(
        md.get_int_or(a + "attention.key_length", static_cast<std::int64_t>(c.n_heads ? c.dim / c.n_heads : 0)));
    c.max_seq_len = static_cast<std::size_t>(md.get_int_or(a + "context_length", 0));
    c.rope_theta = static_cast<float>(md.get_float_or(a + "rope.freq_base", 10000.0));
    c.rms_norm_eps = static_cast<float>(md.get_float_or(a + "attention.layer_norm_rms_epsilon", 1e-5));
    c.rope_interleaved = c.arch == Arch::llama;  // llama.cpp's converter permuted q/k for its NORM rotary
    c.attention_bias = f.contains("blk.0.attn_q.bias");
    c.qk_norm = c.arch == Arch::qwen3;
    c.tie_word_embeddings = !f.contains("output.weight");
    const io::GgufTensor& emb = f.at("token_embd.weight");
    if (emb.shape.size() != 2)
        optiq::detail::fail<shape_error>(f.path(), ": tensor 'token_embd.weight' has shape ", io::shape_string(emb.shape),
                                         ", expected 2 dimensions");
    c.vocab_size = emb.shape[0];
    // Token ids are range-checked before narrowing: a corrupt 64-bit id must not wrap into a valid one.
    auto token_id = [&](const char* key) {
        const std::int64_t v = md.get_int(key);
        if (v < 0 || v > std::numeric_limits<int>::max())
            optiq::detail::fail<format_error>(f.path(), ": metadata '", key, "' = ", v, " is not a valid token id");
        return static_cast<int>(v);
    };
    if (md.contains("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {token_id("tokenizer.ggml.eos_token_id")};
    if (md.contains("tokenizer.ggml.bos_token_id")) c.bos_token_id = token_id("tokenizer.ggml.bos_token_id");
    c.validate(f.path());
    return c;
}

[[nodiscard]] inline Transformer load_gguf(const std::filesystem::path& path, const LoadOptions& opts = {}) {
    const io::GgufFile f = io::GgufFile::open(path);
    const ModelConfig c = config_from_gguf(f);
    std::map<std::string, const io::GgufTensor*, std::less<>> by_hf;
    for (const auto& t : f.tensors())
        if (auto hf = io::gguf_to_hf_name(t.name)) by_hf[*hf] = &t;
    auto get = [&](const std::string& hf) -> const io::GgufTensor& {
        const auto it = by_hf.find(hf);
        if (it == by_hf.end()) detail::missing(f.path(), hf);
        return *it->second;
    };
    detail::TensorSource src;
    src.file = f.path();
    src.has = [&](const std::string& n) { return by_hf.count(n) != 0; };
    src.floats = [&](const std::string& n, std::size_t len) {
        const auto& t = get(n);
        detail::check_shape(src.file, t.name, t.shape, {len});
        return t.to_float();
    };
    src.linear = [&](const std::string& m, std::size_t out, std::size_t in) {
        const auto& t = get(m + ".weight");
        detail::check_shape(src.file, t.name, t.shape, {out, in});
        if (auto v = t.view(); v && (v->dtype == io::DType::f16 || v->dtype == io::DType::bf16 || v->dtype == io::DType::f32))
            return detail::linear_from_view(*v, src.file, out, in);
        const GgufWeights mode = opts.gguf_keep_quantized ? GgufWeights::mlx_affine : opts.gguf_weights;
        if (mode == GgufWeights::mlx_affine)
            if (auto q = detail::gguf_to_mlx_affine(t, out, in)) return Linear::mlx_affine(std::move(*q), t.name);
        const auto tr = io::ggml_type_traits(static_cast<std::uint32_t>(t.type));
        if (mode == GgufWeights::in_place && tr && tr->dequantizable && tr->block_size > 1 && in % tr->block_size == 0)
            return Linear::ggml(t.type, t.bytes, f.file(), out, in, t.name);
        return Linear::f32(t.to_float(), out, in, t.name);
    };
    return Transformer(c, detail::build_weights(c, src), opts.caches, opts.transformer);
}


/// An HF / MLX model directory (config.json + safetensors).
[[nodiscard]] inline Transformer load_safetensors_dir(const std::filesystem::path& dir, const LoadOptions& opts = {}) {
    const auto cfg_path = dir / "config.json";
    std::ifstream in(cfg_path, std::ios::binary);
    if (!in) optiq::detail::fail<format_error>(cfg_path.string(), ": cannot open");
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) optiq::detail::fail<format_error>(cfg_path.string(), ": not valid JSON");
    const ModelConfig c = config_from_hf_json(j, cfg_path.string());
    nlohmann::json quant;
    if (auto it = j.find("quantization"); it != j.end() && it->is_object()) quant = *it;
    else if (auto it2 = j.find("quantization_config"); it2 != j.end() && it2->is_object()) quant = *it2;
    const io::SafetensorsModel st = io::SafetensorsModel::open(dir);
    const std::string file = dir.string();
    detail::TensorSource src;
    src.file = file;
    // MLX-converted checkpoints may prefix names ("language_model.model.layers..."): try both.
    auto find = [&](const std::string& n) -> const io::TensorView* {
        if (const auto* t = st.find(n)) return t;
        return st.find("language_model." + n);
    };
    src.has = [&](const std::string& n) { return find(n) != nullptr; };
    src.floats = [&](const std::string& n, std::size_t len) {
        const auto* t = find(n);
        if (!t) detail::missing(file, n);
        detail::check_shape(file, n, t->shape, {len});
        return t->to_float();
    };
    src.linear = [&](const std::string& m, std::size_t out, std::size_t in_f) -> Linear {
        const auto* w = find(m + ".weight");
        if (!w) detail::missing(file, m + ".weight");
        const auto* scales = find(m + ".scales");
        if (!scales) return detail::linear_from_view(*w, file, out, in_f);
        const auto* biases = find(m + ".biases");
        if (!biases) detail::missing(file, m + ".biases");
        const auto params = detail::mlx_quant_params(quant, m, cfg_path.string());
        if (!params)
            optiq::detail::fail<format_error>(file, ": tensor '", m, ".scales' present but config.json has no quantization for '", m, "'");
        mlx::QuantizedMatrix q;
        q.shape = {out, in_f};
        q.group_size = params->first;
        q.bits = params->second;
        if (q.bits < 1 || q.bits > 8 || q.group_size == 0 || in_f % q.group_size != 0 || in_f * static_cast<std::size_t>(q.bits) % 32 != 0)
            optiq::detail::fail<config_error>(file, ": module '", m, "': bits ", q.bits, " / group_size ", q.group_size,
                                              " do not fit ", in_f, " columns");
        detail::check_shape(file, w->name, w->shape, q.words_shape());
        detail::check_shape(file, scales->name, scales->shape, q.scales_shape());
        detail::check_shape(file, biases->name, biases->shape, q.scales_shape());
        if (w->dtype != io::DType::u32)
            optiq::detail::fail<format_error>(file, ": tensor '", w->name, "' is ", io::dtype_name(w->dtype), ", expected U32");
        q.dtype = scales->dtype == io::DType::bf16 ? SideType::bf16 : scales->dtype == io::DType::f16 ? SideType::f16 : SideType::f32;
        q.words.resize(w->numel());
        for (std::size_t i = 0; i < q.words.size(); ++i) q.words[i] = io::detail::load_le<std::uint32_t>(w->bytes.data() + 4 * i);
        q.scales = scales->to_float();
        q.biases = biases->to_float();
        return Linear::mlx_affine(std::move(q), w->name);
    };
    return Transformer(c, detail::build_weights(c, src), opts.caches, opts.transformer);
}

/// Any of the three, by what `path` is: a directory, a file starting with "GGUF", else a llama2.c
/// checkpoint.
[[nodiscard]] inline Transformer load(const std::filesystem::path& path, const LoadOptions& opts = {}) {
    namespace fs = std::filesystem;
    if (fs::is_directory(path)) return load_safetensors_dir(path, opts);
    std::ifstream in(path, std::ios::binary);
    if (!in) optiq::detail::fail<format_error>(path.string(), ": cannot open");
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return load_gguf(path, opts);
    if (path.extension() == ".gguf")
        optiq::detail::fail<format_error>(path.string(), ": bad magic, not a GGUF file");
    return load_llama2c(path, opts);
}

}  // namespace optiq::model

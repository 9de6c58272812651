#pragma once
// llama2.c checkpoints (karpathy/llama2.c, the legacy "version 0" export that run.c reads) and
// llama2.c tokenizer.bin files.
//
// Checkpoint: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means the classifier is not tied to the embedding), then float32
// arrays: token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
// wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden],
// w3 [L, hidden, dim], rms_final [dim], freq_cis_real and freq_cis_imag [seq_len, head_dim/2] each
// (legacy, skipped), then wcls [vocab, dim] when untied. The file size must match exactly.
//
// Tensors get Hugging Face Llama names so a runtime treats every format alike. Rotary layout: the
// models llama2.c trains (stories*) rotate adjacent pairs (2i, 2i+1) like Meta's Llama and GGUF
// "llama" files, not HF's halves; Llama2cConfig::rope_interleaved says so, and
// permute_qk_rows_gguf_to_hf (gguf.hpp) converts q_proj / k_proj to HF order when needed.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/io/dtype.hpp"
#include "optiq/io/mmap.hpp"

namespace optiq::io {

struct Llama2cConfig {
    std::size_t dim = 0;
    std::size_t hidden_dim = 0;
    std::size_t n_layers = 0;
    std::size_t n_heads = 0;
    std::size_t n_kv_heads = 0;
    std::size_t vocab_size = 0;
    std::size_t seq_len = 0;
    bool tie_word_embeddings = true;  // false when the header's vocab_size was negative
    bool rope_interleaved = true;     // q/k rows are in llama2.c's (Meta's) order, see the file comment
    float rope_theta = 10000.0f;      // run.c's fixed base
    float rms_norm_eps = 1e-5f;       // run.c's fixed epsilon

    [[nodiscard]] std::size_t head_dim() const noexcept { return n_heads ? dim / n_heads : 0; }
    [[nodiscard]] std::size_t kv_dim() const noexcept { return head_dim() * n_kv_heads; }
};

/// A llama2.c checkpoint: config plus F32 tensor views with HF names, in file order:
/// model.embed_tokens.weight, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj,
/// post_attention_layernorm, mlp.{gate,down,up}_proj}.weight, model.norm.weight, and
/// lm_head.weight only when the classifier is untied.
class Llama2cCheckpoint {
public:
    Llama2cCheckpoint() = default;

    [[nodiscard]] static Llama2cCheckpoint open(const std::filesystem::path& path,
                                                MappedFile::Mode mode = MappedFile::Mode::automatic) {
        return Llama2cCheckpoint(MappedFile::open_shared(path, mode));
    }
    [[nodiscard]] static Llama2cCheckpoint from_bytes(std::vector<std::byte> bytes, std::string name) {
        return Llama2cCheckpoint(std::make_shared<const MappedFile>(MappedFile::from_bytes(std::move(bytes), std::move(name))));
    }
    /// Parses and validates; throws format_error naming the file and the field or tensor.
    explicit Llama2cCheckpoint(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) { parse(); }

    [[nodiscard]] const std::string& path() const noexcept { return file_->path(); }
    [[nodiscard]] const Llama2cConfig& config() const noexcept { return config_; }
    [[nodiscard]] std::span<const TensorView> tensors() const noexcept { return tensors_; }
    [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }
    [[nodiscard]] const TensorView* find(std::string_view name) const noexcept {
        auto it = by_name_.find(name);
        return it == by_name_.end() ? nullptr : &tensors_[it->second];
    }
    [[nodiscard]] bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
    [[nodiscard]] const TensorView& at(std::string_view name) const {
        if (const TensorView* t = find(name)) return *t;
        detail::fail<format_error>(path(), ": no tensor named '", name, "'");
    }

    /// The exact file size a header implies (with the legacy freq_cis tables); nullopt when it
    /// overflows 64 bits.
    [[nodiscard]] static std::optional<std::uint64_t> expected_file_bytes(const Llama2cConfig& c) noexcept {
        bool overflow = false;
        auto mul = [&](std::uint64_t a, std::uint64_t b) {
            std::uint64_t r = 0;
            overflow = overflow || detail::mul_overflows(a, b, r);
            return r;
        };
        auto add = [&](std::uint64_t a, std::uint64_t b) {
            overflow = overflow || a > std::numeric_limits<std::uint64_t>::max() - b;
            return a + b;
        };
        const std::uint64_t d = c.dim, kv = c.kv_dim();
        std::uint64_t per_layer = add(mul(2, d), mul(2, mul(d, d)));
        per_layer = add(per_layer, add(mul(2, mul(kv, d)), mul(3, mul(c.hidden_dim, d))));
        std::uint64_t floats = add(mul(c.vocab_size, d), mul(c.n_layers, per_layer));  // embedding, layers
        floats = add(floats, add(d, mul(c.seq_len, c.head_dim())));                     // rms_final, freq_cis
        if (!c.tie_word_embeddings) floats = add(floats, mul(c.vocab_size, d));
        const std::uint64_t total = add(28, mul(4, floats));
        if (overflow) return std::nullopt;
        return total;
    }

private:
    void parse() {
        const std::string& file = file_->path();
        const auto bytes = file_->bytes();
        if (bytes.size() < 28)
            detail::fail<format_error>(file, ": file of ", bytes.size(), " bytes is too small for the 7-int32 header");
        static constexpr const char* fields[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
        std::int32_t h[7];
        for (int i = 0; i < 7; ++i) h[i] = detail::load_le<std::int32_t>(bytes.data() + 4 * i);
        for (int i = 0; i < 7; ++i) {
            if (i == 5) continue;
            if (h[i] <= 0) detail::fail<format_error>(file, ": header field '", fields[i], "' = ", h[i], " is not positive");
        }
        if (h[5] == 0 || h[5] == std::numeric_limits<std::int32_t>::min())
            detail::fail<format_error>(file, ": header field 'vocab_size' = ", h[5], " is invalid");
        Llama2cConfig& c = config_;
        c.dim = static_cast<std::size_t>(h[0]);
        c.hidden_dim = static_cast<std::size_t>(h[1]);
        c.n_layers = static_cast<std::size_t>(h[2]);
        c.n_heads = static_cast<std::size_t>(h[3]);
        c.n_kv_heads = static_cast<std::size_t>(h[4]);
        c.tie_word_embeddings = h[5] > 0;
        c.vocab_size = static_cast<std::size_t>(h[5] > 0 ? h[5] : -h[5]);
        c.seq_len = static_cast<std::size_t>(h[6]);
        if (c.dim % c.n_heads != 0 || c.head_dim() % 2 != 0)
            detail::fail<format_error>(file, ": header field 'n_heads' = ", c.n_heads, " does not split dim ", c.dim,
                                       " into heads of even size");
        if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0)
            detail::fail<format_error>(file, ": header field 'n_kv_heads' = ", c.n_kv_heads, " does not divide n_heads ",
                                       c.n_heads);
        const auto want = expected_file_bytes(c);
        if (!want || *want != bytes.size())
            detail::fail<format_error>(file, ": size ", bytes.size(), " bytes does not match the header (dim ", c.dim,
                                       ", hidden_dim ", c.hidden_dim, ", n_layers ", c.n_layers, ", n_heads ", c.n_heads,
                                       ", n_kv_heads ", c.n_kv_heads, ", vocab_size ", h[5], ", seq_len ", c.seq_len,
                                       " need ", want ? std::to_string(*want) : std::string("more than 2^64"), " bytes)");

        std::size_t pos = 28;
        auto take = [&](std::string name, std::vector<std::size_t> shape) {
            const std::size_t n = numel(shape) * 4;
            by_name_.emplace(name, tensors_.size());
            tensors_.push_back(TensorView{std::move(name), DType::f32, std::move(shape), bytes.subspan(pos, n)});
            pos += n;
        };
        auto layer = [](std::size_t l, std::string_view rest) {
            return "model.layers." + std::to_string(l) + "." + std::string(rest);
        };
        const std::size_t d = c.dim, kv = c.kv_dim(), hid = c.hidden_dim, L = c.n_layers;
        take("model.embed_tokens.weight", {c.vocab_size, d});
        // Each stacked array [L, ...] becomes L per-layer tensors, in the file's order.
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "input_layernorm.weight"), {d});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "self_attn.q_proj.weight"), {d, d});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "self_attn.k_proj.weight"), {kv, d});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "self_attn.v_proj.weight"), {kv, d});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "self_attn.o_proj.weight"), {d, d});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "post_attention_layernorm.weight"), {d});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "mlp.gate_proj.weight"), {hid, d});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "mlp.down_proj.weight"), {d, hid});
        for (std::size_t l = 0; l < L; ++l) take(layer(l, "mlp.up_proj.weight"), {hid, d});
        take("model.norm.weight", {d});
        pos += c.seq_len * c.head_dim() * 4;  // freq_cis_real + freq_cis_imag, [seq_len, head_dim/2] each
        if (!c.tie_word_embeddings) take("lm_head.weight", {c.vocab_size, d});
    }

    std::shared_ptr<const MappedFile> file_;
    Llama2cConfig config_;
    std::vector<TensorView> tensors_;
    std::map<std::string, std::size_t, std::less<>> by_name_;
};

/// A llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 byte
/// length, the bytes. The token count is not stored: pass the model's vocab_size to check it, or
/// 0 to read until the end of the file.
struct Llama2cTokenizer {
    std::size_t max_token_length = 0;
    std::vector<std::string> vocab;
    std::vector<float> scores;

    [[nodiscard]] std::size_t size() const noexcept { return vocab.size(); }

    [[nodiscard]] static Llama2cTokenizer parse(std::span<const std::byte> bytes, const std::string& file,
                                                std::size_t vocab_size = 0) {
        Llama2cTokenizer t;
        if (bytes.size() < 4) detail::fail<format_error>(file, ": truncated at 'max_token_length'");
        const auto m = detail::load_le<std::int32_t>(bytes.data());
        if (m <= 0) detail::fail<format_error>(file, ": field 'max_token_length' = ", m, " is not positive");
        t.max_token_length = static_cast<std::size_t>(m);
        std::size_t pos = 4;
        while (vocab_size ? t.vocab.size() < vocab_size : pos < bytes.size()) {
            const std::size_t i = t.vocab.size();
            if (bytes.size() - pos < 8) detail::fail<format_error>(file, ": truncated at token ", i, " (score and length)");
            const float score = detail::load_le<float>(bytes.data() + pos);
            const auto len = detail::load_le<std::int32_t>(bytes.data() + pos + 4);
            pos += 8;
            if (len < 0 || static_cast<std::size_t>(len) > t.max_token_length)
                detail::fail<format_error>(file, ": token ", i, ": length ", len, " is outside [0, max_token_length ",
                                           t.max_token_length, "]");
            if (bytes.size() - pos < static_cast<std::size_t>(len))
                detail::fail<format_error>(file, ": truncated at token ", i, " (", len, " bytes)");
            t.vocab.emplace_back(reinterpret_cast<const char*>(bytes.data() + pos), static_cast<std::size_t>(len));
            t.scores.push_back(score);
            pos += static_cast<std::size_t>(len);
        }
        if (pos != bytes.size())
            detail::fail<format_error>(file, ": ", bytes.size() - pos, " bytes left after ", t.vocab.size(), " tokens");
        return t;
    }

    [[nodiscard]] static Llama2cTokenizer open(const std::filesystem::path& path, std::size_t vocab_size = 0) {
        const MappedFile f = MappedFile::open(path);
        return parse(f.bytes(), f.path(), vocab_size);
    }
};

}  // namespace optiq::io

#pragma once
// Linear: one weight matrix W [out, in] (row-major, HF orientation) in its stored format, plus an
// optional bias, and the matmul y[n][out] = x[n][in] · Wᵀ + b that reads that format directly:
//   f32          plain rows
//   f16, bf16    16-bit patterns, each row widened to f32 in a per-thread buffer
//   mlx_affine   mx.quantize output (uint32 words, per-group scale and bias, 1..8 bits); a row is
//                unpacked to its integer codes only, and a group's contribution is
//                scale · Σ q_i x_i + bias · Σ x_i (as mx.quantized_matmul computes it), so no
//                dequantized row is ever formed.
// A Linear is a value: sensitivity replaces one module of a Transformer by assigning another
// Linear (e.g. Linear::mlx_affine(mlx::quantize(...))) and reruns the forward pass.
// Matmuls split the output rows over a ThreadPool when one is given.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/encoded.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::model {

enum class WeightFormat { f32, f16, bf16, mlx_affine };

[[nodiscard]] constexpr const char* weight_format_name(WeightFormat f) noexcept {
    switch (f) {
        case WeightFormat::f32: return "f32";
        case WeightFormat::f16: return "f16";
        case WeightFormat::bf16: return "bf16";
        case WeightFormat::mlx_affine: return "mlx_affine";
    }
    return "?";
}

namespace detail {

/// Σ a_i b_i with eight partial sums (vectorisable without reassociating a single chain).
[[nodiscard]] inline float dot(const float* a, const float* b, std::size_t n) noexcept {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

}  // namespace detail

class Linear {
public:
    Linear() = default;

    [[nodiscard]] static Linear f32(std::vector<float> w, std::size_t out, std::size_t in, std::string name = {}) {
        check_size(w.size(), out, in, name);
        Linear l(WeightFormat::f32, out, in, std::move(name));
        l.f32_ = std::move(w);
        return l;
    }
    /// 16-bit patterns of an f16 or bf16 matrix.
    [[nodiscard]] static Linear half(std::vector<std::uint16_t> bits, SideType type, std::size_t out, std::size_t in,
                                     std::string name = {}) {
        if (type == SideType::f32) optiq::detail::fail<config_error>("model::Linear '", name, "': half() needs f16 or bf16");
        check_size(bits.size(), out, in, name);
        Linear l(type == SideType::f16 ? WeightFormat::f16 : WeightFormat::bf16, out, in, std::move(name));
        l.h16_ = std::move(bits);
        return l;
    }
    /// An mx.quantize result for a 2-D matrix.
    [[nodiscard]] static Linear mlx_affine(mlx::QuantizedMatrix q, std::string name = {}) {
        if (q.shape.size() != 2)
            optiq::detail::fail<shape_error>("model::Linear '", name, "': quantized weight has ", q.shape.size(),
                                             " dimensions, needs 2");
        const std::size_t out = q.shape[0], in = q.shape[1];
        if (q.bits < 1 || q.bits > 8 || q.group_size == 0 || in % q.group_size != 0 || in * q.bits % 32 != 0)
            optiq::detail::fail<config_error>("model::Linear '", name, "': bits ", q.bits, " / group_size ", q.group_size,
                                              " do not fit ", in, " columns");
        if (q.words.size() != out * q.words_per_row() || q.scales.size() != out * q.groups_per_row() ||
            q.biases.size() != q.scales.size())
            optiq::detail::fail<shape_error>("model::Linear '", name, "': ", q.words.size(), " words, ", q.scales.size(),
                                             " scales, ", q.biases.size(), " biases do not match shape [", out, ", ", in,
                                             "] at ", q.bits, " bits, group ", q.group_size);
        Linear l(WeightFormat::mlx_affine, out, in, std::move(name));
        l.q_ = std::move(q);
        return l;
    }

    [[nodiscard]] bool empty() const noexcept { return out_ == 0; }
    [[nodiscard]] std::size_t out_features() const noexcept { return out_; }
    [[nodiscard]] std::size_t in_features() const noexcept { return in_; }
    [[nodiscard]] WeightFormat format() const noexcept { return format_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::vector<float>& bias() const noexcept { return bias_; }
    [[nodiscard]] const mlx::QuantizedMatrix* quantized() const noexcept {
        return format_ == WeightFormat::mlx_affine ? &q_ : nullptr;
    }
    [[nodiscard]] std::span<const float> f32_data() const noexcept { return f32_; }

    void set_bias(std::vector<float> b) {
        if (!b.empty() && b.size() != out_)
            optiq::detail::fail<shape_error>("model::Linear '", name_, "': bias of ", b.size(), " values, needs ", out_);
        bias_ = std::move(b);
    }

    /// "f32", "bf16", "mlx_affine:4:g64".
    [[nodiscard]] std::string describe() const {
        std::string s = weight_format_name(format_);
        if (format_ == WeightFormat::mlx_affine) {
            // Appended piece by piece: "x" + std::string trips GCC 12's -Wrestrict false positive at -O3.
            s.append(":").append(std::to_string(q_.bits)).append(":g").append(std::to_string(q_.group_size));
        }
        return s;
    }
    /// Bytes the weight occupies (biases of the layer excluded).
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        switch (format_) {
            case WeightFormat::f32: return f32_.size() * 4;
            case WeightFormat::f16:
            case WeightFormat::bf16: return h16_.size() * 2;
            case WeightFormat::mlx_affine:
                return q_.words.size() * 4 + (q_.scales.size() + q_.biases.size()) * (q_.dtype == SideType::f32 ? 4 : 2);
        }
        return 0;
    }

    /// Row r of W as floats (an embedding lookup): MLX rows as mx.dequantize gives them.
    void row(std::size_t r, std::span<float> out) const {
        if (r >= out_ || out.size() != in_)
            optiq::detail::fail<shape_error>("model::Linear '", name_, "': row ", r, " into ", out.size(),
                                             " floats (weight [", out_, ", ", in_, "])");
        switch (format_) {
            case WeightFormat::f32: std::copy_n(f32_.data() + r * in_, in_, out.data()); break;
            case WeightFormat::f16:
            case WeightFormat::bf16: widen_row(r, out.data()); break;
            case WeightFormat::mlx_affine: {
                std::vector<std::uint8_t> codes(in_);
                unpack_row(r, codes.data());
                const std::size_t g = q_.group_size, gpr = q_.groups_per_row();
                for (std::size_t j = 0; j < in_; ++j) {
                    const float s = q_.scales[r * gpr + j / g], b = q_.biases[r * gpr + j / g];
                    out[j] = round_side(round_side(s * static_cast<float>(codes[j]), q_.dtype) + b, q_.dtype);
                }
                break;
            }
        }
    }
    /// The whole matrix as floats [out][in].
    [[nodiscard]] std::vector<float> dequantize() const {
        std::vector<float> w(out_ * in_);
        for (std::size_t r = 0; r < out_; ++r) row(r, {w.data() + r * in_, in_});
        return w;
    }

    /// y[n][out] = x[n][in] · Wᵀ (+ bias). Output rows are split over `pool` when given.
    void matmul(std::span<const float> x, std::size_t n, std::span<float> y, ThreadPool* pool = nullptr) const {
        if (empty()) optiq::detail::fail<config_error>("model::Linear '", name_, "': no weight assigned");
        if (x.size() != n * in_ || y.size() != n * out_)
            optiq::detail::fail<shape_error>("model::Linear '", name_, "': matmul of ", x.size(), " inputs / ", y.size(),
                                             " outputs for ", n, " tokens of [", out_, ", ", in_, "]");
        std::vector<float> xsum;  // MLX: Σ x over each group of each token
        if (format_ == WeightFormat::mlx_affine) {
            const std::size_t g = q_.group_size, gpr = q_.groups_per_row();
            xsum.resize(n * gpr);
            for (std::size_t t = 0; t < n; ++t)
                for (std::size_t k = 0; k < gpr; ++k) {
                    float s = 0.0f;
                    for (std::size_t i = 0; i < g; ++i) s += x[t * in_ + k * g + i];
                    xsum[t * gpr + k] = s;
                }
        }
        const auto rows = [&](std::size_t begin, std::size_t end, std::size_t) { run_rows(x, n, y, xsum, begin, end); };
        // Chunks of at least 16 rows: below that a thread hand-off costs more than it saves.
        if (pool) pool->parallel_for(out_, rows, 16);
        else rows(0, out_, 0);
    }

private:
    Linear(WeightFormat f, std::size_t out, std::size_t in, std::string name)
        : format_(f), out_(out), in_(in), name_(std::move(name)) {}

    static void check_size(std::size_t got, std::size_t out, std::size_t in, const std::string& name) {
        if (out == 0 || in == 0 || got != out * in)
            optiq::detail::fail<shape_error>("model::Linear '", name, "': ", got, " values for shape [", out, ", ", in, "]");
    }

    void widen_row(std::size_t r, float* out) const noexcept {
        const std::uint16_t* h = h16_.data() + r * in_;
        if (format_ == WeightFormat::bf16)
            for (std::size_t j = 0; j < in_; ++j) out[j] = bf16_bits_to_float(h[j]);
        else
            for (std::size_t j = 0; j < in_; ++j) out[j] = f16_bits_to_float(h[j]);
    }
    void unpack_row(std::size_t r, std::uint8_t* codes) const {
        const std::size_t wpr = q_.words_per_row();
        MlxStream<>(q_.bits).unpack({q_.words.data() + r * wpr, wpr}, {codes, in_});
    }

    void run_rows(std::span<const float> x, std::size_t n, std::span<float> y, const std::vector<float>& xsum,
                  std::size_t begin, std::size_t end) const {
        const float* b = bias_.empty() ? nullptr : bias_.data();
        switch (format_) {
            case WeightFormat::f32:
                for (std::size_t r = begin; r < end; ++r) {
                    const float* w = f32_.data() + r * in_;
                    for (std::size_t t = 0; t < n; ++t)
                        y[t * out_ + r] = detail::dot(w, x.data() + t * in_, in_) + (b ? b[r] : 0.0f);
                }
                break;
            case WeightFormat::f16:
            case WeightFormat::bf16: {
                std::vector<float> w(in_);
                for (std::size_t r = begin; r < end; ++r) {
                    widen_row(r, w.data());
                    for (std::size_t t = 0; t < n; ++t)
                        y[t * out_ + r] = detail::dot(w.data(), x.data() + t * in_, in_) + (b ? b[r] : 0.0f);
                }
                break;
            }
            case WeightFormat::mlx_affine: {
                // Codes widened to float once per row (exact: small integers), reused by every token.
                std::vector<std::uint8_t> codes(in_);
                std::vector<float> qf(in_);
                const std::size_t g = q_.group_size, gpr = q_.groups_per_row();
                for (std::size_t r = begin; r < end; ++r) {
                    unpack_row(r, codes.data());
                    for (std::size_t j = 0; j < in_; ++j) qf[j] = static_cast<float>(codes[j]);
                    const float* s = q_.scales.data() + r * gpr;
                    const float* bi = q_.biases.data() + r * gpr;
                    for (std::size_t t = 0; t < n; ++t) {
                        const float* xt = x.data() + t * in_;
                        const float* xs = xsum.data() + t * gpr;
                        float acc = 0.0f;
                        for (std::size_t k = 0; k < gpr; ++k)
                            acc += s[k] * detail::dot(qf.data() + k * g, xt + k * g, g) + bi[k] * xs[k];
                        y[t * out_ + r] = acc + (b ? b[r] : 0.0f);
                    }
                }
                break;
            }
        }
    }

    WeightFormat format_ = WeightFormat::f32;
    std::size_t out_ = 0, in_ = 0;
    std::string name_;
    std::vector<float> f32_;
    std::vector<std::uint16_t> h16_;
    mlx::QuantizedMatrix q_;
    std::vector<float> bias_;
};

}  // namespace optiq::model

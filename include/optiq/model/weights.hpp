#pragma once
// Linear: one weight matrix W [out, in] (row-major, HF orientation) in its stored format, plus an
// optional bias, and the matmul y[n][out] = x[n][in] · Wᵀ + b that reads that format directly:
//   f32          plain rows
//   f16, bf16    16-bit patterns, widened to f32 inside the dot product
//   mlx_affine   mx.quantize output (uint32 words, per-group scale and bias, 1..8 bits); codes are
//                unpacked inside the dot product and a group's contribution is
//                scale · Σ q_i x_i + bias · Σ x_i (as mx.quantized_matmul computes it), so no
//                dequantized row is ever formed.
// The kernels are backend/simd/matmul*.hpp: AVX-512 / AVX2 where the CPU has them (chosen once per
// call; OPTIQ_SIMD_MAX caps it), the scalar reference elsewhere and on request (matmul(..., arch)).
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

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/matmul.hpp"
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
        matmul(x, n, y, pool, backend::arch::best_arch());
    }
    /// As above on architecture `arch` (narrowed to what the CPU runs): Arch::scalar is the
    /// reference every vector kernel is tested against.
    void matmul(std::span<const float> x, std::size_t n, std::span<float> y, ThreadPool* pool,
                backend::arch::Arch arch) const {
        if (empty()) optiq::detail::fail<config_error>("model::Linear '", name_, "': no weight assigned");
        if (x.size() != n * in_ || y.size() != n * out_)
            optiq::detail::fail<shape_error>("model::Linear '", name_, "': matmul of ", x.size(), " inputs / ", y.size(),
                                             " outputs for ", n, " tokens of [", out_, ", ", in_, "]");
        namespace mm = backend::matmul;
        const float* b = bias_.empty() ? nullptr : bias_.data();
        switch (format_) {
            case WeightFormat::f32: mm::run(mm::F32Weights{f32_.data(), in_}, out_, x, n, y, b, pool, arch); break;
            case WeightFormat::f16:
            case WeightFormat::bf16:
                mm::run(mm::HalfWeights{h16_.data(), in_, format_ == WeightFormat::bf16}, out_, x, n, y, b, pool, arch);
                break;
            case WeightFormat::mlx_affine:
                mm::run(mm::AffineWeights{q_.words.data(), q_.words.size(), q_.scales.data(), q_.biases.data(), in_,
                                          q_.group_size, q_.bits},
                        out_, x, n, y, b, pool, arch);
                break;
        }
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

    WeightFormat format_ = WeightFormat::f32;
    std::size_t out_ = 0, in_ = 0;
    std::string name_;
    std::vector<float> f32_;
    std::vector<std::uint16_t> h16_;
    mlx::QuantizedMatrix q_;
    std::vector<float> bias_;
};

}  // namespace optiq::model

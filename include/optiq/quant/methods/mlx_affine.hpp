#pragma once
// MLX affine quantization (reference-spec D), in two forms:
//  - MlxAffine: the vector quantizer Quantizer<Affine, Identity, MlxStream<>> for the zoo (KV
//    vectors, per-vector experiments), made by make_mlx_affine(dim, bits, group_size).
//  - mlx::quantize / mlx::dequantize: the matrix operations mx.quantize(w, group_size, bits) and
//    mx.dequantize, bit for bit as MLX's CPU backend computes them, for f32, f16 and bf16 weights.
//
// What MLX does, and what is mirrored here (checked against mlx 0.32 by tests/interop):
//  - the group's min/max, scale and bias are computed in fp32 from the (exactly widened) input
//    values; codes use that fp32 scale and bias, which are only then rounded to the input dtype
//    for storage (mlx/backend/cpu/quantized.cpp, quantize<T, U>);
//  - dequantize is two element-wise ops in the scales' dtype: round(round(scale * q) + bias)
//    (ops.cpp, affine_dequantize fallback: multiply, then add; no fused multiply-add).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "optiq/codebook/affine.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/identity.hpp"
#include "optiq/quant/encoded.hpp"
#include "optiq/quant/quantizer.hpp"

namespace optiq {

/// MLX affine quantization of d-vectors: each group of g coordinates gets a {scale, bias} pair,
/// stored at side_type; codes are MLX's continuous bit stream.
using MlxAffine = Quantizer<Affine, Identity, MlxStream<>>;

[[nodiscard]] inline MlxAffine make_mlx_affine(std::size_t dim, int bits, std::size_t group_size = 64,
                                               SideType side_type = SideType::f16) {
    return MlxAffine(Affine(bits, group_size), Identity(dim), MlxStream<>(bits), side_type);
}

namespace mlx {

/// An mx.quantize result: words [..., cols*bits/32] (uint32), scales and biases [..., cols/g] in
/// the input's dtype (held here as floats whose values that dtype represents exactly).
struct QuantizedMatrix {
    std::vector<std::size_t> shape;  ///< shape of the original matrix, ndim >= 2
    std::size_t group_size = 64;
    int bits = 4;
    SideType dtype = SideType::f32;  ///< dtype of the original matrix, and of scales/biases
    std::vector<std::uint32_t> words;
    std::vector<float> scales;
    std::vector<float> biases;

    [[nodiscard]] std::size_t cols() const noexcept { return shape.empty() ? 0 : shape.back(); }
    [[nodiscard]] std::size_t rows() const noexcept {
        std::size_t r = 1;
        for (std::size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
        return shape.empty() ? 0 : r;
    }
    [[nodiscard]] std::size_t words_per_row() const noexcept { return cols() * static_cast<std::size_t>(bits) / 32; }
    [[nodiscard]] std::size_t groups_per_row() const noexcept { return group_size == 0 ? 0 : cols() / group_size; }
    /// Shape of the packed weight, as MLX reports it.
    [[nodiscard]] std::vector<std::size_t> words_shape() const {
        auto s = shape;
        if (!s.empty()) s.back() = words_per_row();
        return s;
    }
    /// Shape of scales and of biases.
    [[nodiscard]] std::vector<std::size_t> scales_shape() const {
        auto s = shape;
        if (!s.empty()) s.back() = groups_per_row();
        return s;
    }
};

namespace detail {

inline std::size_t check_mlx_args(const std::vector<std::size_t>& shape, std::size_t group_size, int bits,
                                  const char* what) {
    if (!Affine::mlx_bits(bits))
        optiq::detail::fail<config_error>(what, ": bits = ", bits, " is not supported by MLX (1, 2, 3, 4, 5, 6, 8)");
    if (!Affine::mlx_group_size(group_size))
        optiq::detail::fail<config_error>(what, ": group_size = ", group_size, " is not supported by MLX (32, 64, 128)");
    if (shape.size() < 2)
        optiq::detail::fail<shape_error>(what, ": the matrix must have at least 2 dimensions, it has ", shape.size());
    std::size_t n = 1;
    for (const std::size_t d : shape) n *= d;
    if (n == 0) optiq::detail::fail<value_error>(what, ": the matrix is empty");
    if (shape.back() % group_size != 0)
        optiq::detail::fail<shape_error>(what, ": last dimension ", shape.back(), " is not divisible by group_size ",
                                         group_size);
    return n;
}

/// Widens one input element to float: T is float (f32) or the uint16 bits of f16/bf16.
[[nodiscard]] inline float widen(float v, SideType) noexcept { return v; }
[[nodiscard]] inline float widen(std::uint16_t v, SideType t) noexcept {
    return t == SideType::bf16 ? bf16_bits_to_float(v) : f16_bits_to_float(v);
}

template <class T>
[[nodiscard]] QuantizedMatrix quantize_impl(std::span<const T> w, SideType dtype, const std::vector<std::size_t>& shape,
                                            std::size_t group_size, int bits) {
    const std::size_t n = check_mlx_args(shape, group_size, bits, "mlx::quantize");
    if (w.size() != n)
        optiq::detail::fail<shape_error>("mlx::quantize: input holds ", w.size(), " values, shape needs ", n);
    QuantizedMatrix q;
    q.shape = shape;
    q.group_size = group_size;
    q.bits = bits;
    q.dtype = dtype;
    const std::size_t rows = q.rows(), cols = q.cols(), wpr = q.words_per_row(), gpr = q.groups_per_row();
    q.words.assign(rows * wpr, 0u);
    q.scales.assign(rows * gpr, 0.0f);
    q.biases.assign(rows * gpr, 0.0f);

    const Affine codebook(bits, group_size);
    const MlxStream<> packer(bits);
    std::vector<float> row(cols);
    std::vector<std::uint8_t> codes(cols);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            row[c] = widen(w[r * cols + c], dtype);
            if (!std::isfinite(row[c]))
                optiq::detail::fail<value_error>("mlx::quantize: non-finite value ", row[c], " at row ", r, ", column ",
                                                 c);
        }
        for (std::size_t g = 0; g < gpr; ++g) {
            const auto group = std::span<const float>(row.data() + g * group_size, group_size);
            const auto side = codebook.fit(group);
            for (std::size_t i = 0; i < group_size; ++i)
                codes[g * group_size + i] = static_cast<std::uint8_t>(codebook.encode(group[i], side));
            q.scales[r * gpr + g] = round_side(side[0], dtype);
            q.biases[r * gpr + g] = round_side(side[1], dtype);
        }
        packer.pack(codes, std::span<std::uint32_t>(q.words.data() + r * wpr, wpr));
    }
    return q;
}

}  // namespace detail

/// Shapes mx.quantize returns for a matrix of this shape: {words, scales (= biases)}.
struct QuantizedShapes {
    std::vector<std::size_t> words;
    std::vector<std::size_t> scales;
};

[[nodiscard]] inline QuantizedShapes quantized_shapes(const std::vector<std::size_t>& shape, std::size_t group_size = 64,
                                                      int bits = 4) {
    detail::check_mlx_args(shape, group_size, bits, "mlx::quantized_shapes");
    QuantizedShapes s{shape, shape};
    s.words.back() = shape.back() * static_cast<std::size_t>(bits) / 32;
    s.scales.back() = shape.back() / group_size;
    return s;
}

/// mx.quantize(w, group_size, bits) for a float32 matrix (row-major, shape.size() >= 2).
[[nodiscard]] inline QuantizedMatrix quantize(std::span<const float> w, const std::vector<std::size_t>& shape,
                                              std::size_t group_size = 64, int bits = 4) {
    return detail::quantize_impl<float>(w, SideType::f32, shape, group_size, bits);
}

/// mx.quantize for a float16 or bfloat16 matrix given as its raw 16-bit patterns.
[[nodiscard]] inline QuantizedMatrix quantize(std::span<const std::uint16_t> w, SideType dtype,
                                              const std::vector<std::size_t>& shape, std::size_t group_size = 64,
                                              int bits = 4) {
    if (dtype == SideType::f32)
        optiq::detail::fail<config_error>("mlx::quantize: 16-bit input needs dtype f16 or bf16, got f32");
    return detail::quantize_impl<std::uint16_t>(w, dtype, shape, group_size, bits);
}

/// mx.dequantize: out[i] = scale * q + bias computed in q.dtype (values returned as floats that
/// q.dtype represents exactly). out.size() must be the matrix's element count.
inline void dequantize(const QuantizedMatrix& q, std::span<float> out) {
    const std::size_t n = detail::check_mlx_args(q.shape, q.group_size, q.bits, "mlx::dequantize");
    const std::size_t rows = q.rows(), cols = q.cols(), wpr = q.words_per_row(), gpr = q.groups_per_row();
    if (q.words.size() != rows * wpr)
        optiq::detail::fail<shape_error>("mlx::dequantize: ", q.words.size(), " words, shape needs ", rows * wpr);
    if (q.scales.size() != rows * gpr || q.biases.size() != rows * gpr)
        optiq::detail::fail<shape_error>("mlx::dequantize: ", q.scales.size(), " scales and ", q.biases.size(),
                                         " biases, shape needs ", rows * gpr);
    if (out.size() != n) optiq::detail::fail<shape_error>("mlx::dequantize: output holds ", out.size(), ", needs ", n);
    const MlxStream<> packer(q.bits);
    std::vector<std::uint8_t> codes(cols);
    for (std::size_t r = 0; r < rows; ++r) {
        packer.unpack(std::span<const std::uint32_t>(q.words.data() + r * wpr, wpr), codes);
        float* o = out.data() + r * cols;
        for (std::size_t g = 0; g < gpr; ++g) {
            const float s = q.scales[r * gpr + g], b = q.biases[r * gpr + g];
            for (std::size_t i = g * q.group_size; i < (g + 1) * q.group_size; ++i) {
                // Each op rounds to the dtype; f32 products and sums of f16/bf16 values are then
                // rounded once more, which is exact (24 >= 2*11 + 2 bits, so no double rounding).
                const float scaled = round_side(s * static_cast<float>(codes[i]), q.dtype);
                o[i] = round_side(scaled + b, q.dtype);
            }
        }
    }
}

[[nodiscard]] inline std::vector<float> dequantize(const QuantizedMatrix& q) {
    std::size_t n = 1;
    for (const std::size_t d : q.shape) n *= d;
    std::vector<float> out(n);
    dequantize(q, out);
    return out;
}

/// The raw 16-bit patterns of values that dtype (f16 or bf16) represents, e.g. scales to write to
/// a safetensors file.
[[nodiscard]] inline std::vector<std::uint16_t> to_bits16(std::span<const float> v, SideType dtype) {
    if (dtype == SideType::f32) optiq::detail::fail<config_error>("mlx::to_bits16: dtype is f32");
    std::vector<std::uint16_t> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        out[i] = dtype == SideType::bf16 ? float_to_bf16_bits(v[i]) : float_to_f16_bits(v[i]);
    return out;
}

}  // namespace mlx
}  // namespace optiq

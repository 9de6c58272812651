#pragma once
// Affine: MLX's per-group affine codebook, value = scale * code + bias (reference-spec D
// "Per-group scale and bias"). For 2..8 bits fit() is MLX's "zero-exact" rule (ml-explore/mlx
// #1925): the group edge with the larger magnitude is hit exactly and 0 is representable, so
// scales may be negative. For 1 bit MLX uses scale = max - min, bias = min instead (checked
// against mlx 0.32.4 by tests/interop).
// fit/encode use the float operations of MLX's CPU quantizer, in its order (mlx/backend/cpu/
// quantized.cpp, quantize<T, U>): min/max by std::min/std::max, the scale (max - min) / n floored
// at 1e-7, the edge divided by the scale, rint (ties to even) for q0 and for codes, codes from a
// division by the fp32 scale (not a multiplication by its inverse).
//
// Side data per group: {scale, bias}. Codes are computed with the fp32 scale and bias even when
// the caller stores them rounded to f16/bf16 afterwards; that is what MLX does for f16 and bf16
// weights too (quantize<T, U> keeps `float scale` and only casts when storing).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "optiq/codebook/concepts.hpp"
#include "optiq/core/error.hpp"

namespace optiq {

class Affine {
public:
    static constexpr std::size_t side_floats = 2;
    using side_type = std::array<float, side_floats>;  ///< {scale, bias}
    static constexpr bool wants_unit_norm = false;

    /// MLX's own bit widths (mx.quantize accepts 1..6 and 8 in mlx 0.32; 7 is rejected).
    [[nodiscard]] static constexpr bool mlx_bits(int bits) noexcept { return bits >= 1 && bits <= 8 && bits != 7; }
    /// MLX's group sizes.
    [[nodiscard]] static constexpr bool mlx_group_size(std::size_t g) noexcept { return g == 32 || g == 64 || g == 128; }

    /// bits in 1..8; any group size g >= 1 (a vector's dimension must be a multiple of it).
    explicit Affine(int bits, std::size_t group_size = 64) : bits_(bits), group_(group_size) {
        if (bits < 1 || bits > 8) detail::fail<config_error>("Affine: bits = ", bits, " is not in 1..8");
        if (group_size == 0) detail::fail<config_error>("Affine: group_size is 0");
        levels_ = static_cast<float>((1 << bits) - 1);
    }

    [[nodiscard]] int bits() const noexcept { return bits_; }
    [[nodiscard]] std::size_t group_size() const noexcept { return group_; }
    /// The group size does not depend on the vector's dimension; the Quantizer checks d % g == 0.
    [[nodiscard]] std::size_t group_size(std::size_t /*dim*/) const noexcept { return group_; }
    /// Largest code, 2^b - 1.
    [[nodiscard]] std::uint32_t max_code() const noexcept { return (std::uint32_t{1} << bits_) - 1u; }
    /// Whether mx.quantize accepts this (bits, group size) pair.
    [[nodiscard]] bool mlx_compatible() const noexcept { return mlx_bits(bits_) && mlx_group_size(group_); }

    /// MLX's zero-exact scale and bias for one group (any non-empty length, finite values).
    [[nodiscard]] side_type fit(std::span<const float> group) const {
        if (group.empty()) detail::fail<shape_error>("Affine::fit: empty group");
        float w_min = std::numeric_limits<float>::infinity();
        float w_max = -w_min;
        bool finite = true;
        for (const float v : group) {
            w_max = std::max(w_max, v);
            w_min = std::min(w_min, v);
            finite = finite && std::isfinite(v);
        }
        if (!finite) detail::fail<value_error>("Affine::fit: group holds a non-finite value");
        constexpr float eps = 1e-7f;
        if (bits_ == 1) {
            // 1 bit (ml-explore/mlx #3161 / #3478, in mlx 0.32.x): plain min/max, the two levels
            // are min and max; zero-exactness would waste one of only two levels.
            return {std::max((w_max - w_min) / levels_, eps), w_min};
        }
        const bool min_is_edge = std::abs(w_min) > std::abs(w_max);
        float scale = std::max((w_max - w_min) / levels_, eps);
        scale = min_is_edge ? scale : -scale;
        const float edge = min_is_edge ? w_min : w_max;
        const float q0 = std::rint(edge / scale);
        float bias = 0.0f;
        if (q0 != 0.0f) {
            scale = edge / q0;
            bias = edge;
        }
        return {scale, bias};
    }

    /// clip(rint((x - bias) / scale), 0, 2^b - 1). x must be finite.
    [[nodiscard]] std::uint32_t encode(float x, const side_type& side) const noexcept {
        float q = std::rint((x - side[1]) / side[0]);
        q = std::min(std::max(q, 0.0f), levels_);
        return static_cast<std::uint32_t>(q);
    }

    /// scale * code + bias, as two rounded float operations (MLX multiplies, then adds, as
    /// separate element-wise ops; kept as two statements so no compiler contracts them to an FMA).
    [[nodiscard]] float decode(std::uint32_t code, const side_type& side) const noexcept {
        const float scaled = side[0] * static_cast<float>(code);
        return scaled + side[1];
    }

private:
    int bits_;
    std::size_t group_;
    float levels_ = 0.0f;
};

static_assert(Codebook<Affine>);

}  // namespace optiq

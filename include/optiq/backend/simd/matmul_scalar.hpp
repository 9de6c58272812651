#pragma once
// The reference (arch::scalar) weight-format matmul kernels: plain portable loops, the ground truth
// every vector kernel (matmul_avx2.hpp, matmul_avx512.hpp) is tested against, and the fallback of
// any tag without a kernel of its own (arch::neon). A kernel computes rows [r0, r1) of W for tokens
// [t0, t0 + nt) of x:
//   f32          Σ w x with eight partial sums
//   f16, bf16    each row widened to f32 first (exact), then as f32
//   mlx_affine   a row unpacked to its integer codes (exact as floats), and a group's contribution
//                scale · Σ q x + bias · Σ x, as mx.quantized_matmul computes it: no dequantized row.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/matmul_types.hpp"
#include "optiq/core/half.hpp"
#include "optiq/pack/mlx_stream.hpp"

namespace optiq::backend::matmul {

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

/// One row of f32 weights against nt tokens.
inline void f32_row(const float* w, const Input& x, const Output& y, std::size_t r, std::size_t t0, std::size_t nt) {
    for (std::size_t t = t0; t < t0 + nt; ++t)
        y.y[t * y.ld + r] = dot(w, x.x + t * x.in, x.in) + (y.bias ? y.bias[r] : 0.0f);
}

}  // namespace detail

/// Tokens one kernel call should take: the scalar kernels widen or unpack a row once for all.
[[nodiscard]] constexpr std::size_t max_tokens(arch::scalar) noexcept { return std::numeric_limits<std::size_t>::max(); }

/// Whether the kernels of this tag run affine weights of this bits / group size (else a narrower tag does).
[[nodiscard]] constexpr bool affine_supported(arch::scalar, int, std::size_t) noexcept { return true; }

/// The chunk (in codes) within which the tag's affine kernel wants x permuted, nibble-split:
/// the chunk's even codes first, then its odd ones; 0 = x in its natural order.
[[nodiscard]] constexpr std::size_t affine_nibble_chunk(arch::scalar, int, std::size_t) noexcept { return 0; }

inline void rows(arch::scalar, const F32Weights& w, const Input& x, const Output& y, std::size_t r0, std::size_t r1,
                 std::size_t t0, std::size_t nt) {
    for (std::size_t r = r0; r < r1; ++r) detail::f32_row(w.w + r * w.in, x, y, r, t0, nt);
}

inline void rows(arch::scalar, const HalfWeights& w, const Input& x, const Output& y, std::size_t r0, std::size_t r1,
                 std::size_t t0, std::size_t nt) {
    std::vector<float> row(w.in);
    for (std::size_t r = r0; r < r1; ++r) {
        const std::uint16_t* h = w.w + r * w.in;
        if (w.bf16)
            for (std::size_t j = 0; j < w.in; ++j) row[j] = bf16_bits_to_float(h[j]);
        else
            for (std::size_t j = 0; j < w.in; ++j) row[j] = f16_bits_to_float(h[j]);
        detail::f32_row(row.data(), x, y, r, t0, nt);
    }
}

inline void rows(arch::scalar, const AffineWeights& w, const Input& x, const Output& y, std::size_t r0, std::size_t r1,
                 std::size_t t0, std::size_t nt) {
    const std::size_t in = w.in, g = w.group, gpr = w.groups(), wpr = in * static_cast<std::size_t>(w.bits) / 32;
    std::vector<std::uint8_t> codes(in);
    std::vector<float> qf(in);  // codes widened once per row (exact: small integers), reused by every token
    const MlxStream<> stream(w.bits);
    for (std::size_t r = r0; r < r1; ++r) {
        stream.unpack({w.words + r * wpr, wpr}, {codes.data(), in});
        for (std::size_t j = 0; j < in; ++j) qf[j] = static_cast<float>(codes[j]);
        const float* s = w.scales + r * gpr;
        const float* bi = w.biases + r * gpr;
        for (std::size_t t = t0; t < t0 + nt; ++t) {
            const float* xt = x.x + t * in;
            const float* xs = x.xsum + t * gpr;
            float acc = 0.0f;
            for (std::size_t k = 0; k < gpr; ++k) acc += s[k] * detail::dot(qf.data() + k * g, xt + k * g, g) + bi[k] * xs[k];
            y.y[t * y.ld + r] = acc + (y.bias ? y.bias[r] : 0.0f);
        }
    }
}

}  // namespace optiq::backend::matmul

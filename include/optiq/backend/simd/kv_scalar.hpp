#pragma once
// The reference (arch::scalar) KV-attention kernels: portable loops over whole runs of records
// (kv_types.hpp), the ground truth the vector kernels (kv_avx2.hpp, kv_avx512.hpp) are tested
// against and the fallback of any tag without kernels of its own (arch::neon). Words are read as
// integers, never reinterpreted as bytes, so these loops are independent of the byte order.
//
//   dot_run      out[k·os + j] (+)= ts(j) · Σ_i q_k[i] x_j[i]          (key scores, n ≤ max_states)
//   axpy_run     acc_k[i] += (w[k·ws + j] · ts(j)) · x_j[i]             (values weighted by p)
//   softmax_row  the reference order of kv/attention.hpp: scale, max, exp, divide by the sum
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_types.hpp"
#include "optiq/core/half.hpp"

namespace optiq::backend::kv {

namespace scalar_detail {

/// Code i of an LSB-first b-bit stream in little-endian words.
[[nodiscard]] inline std::uint32_t stream_code(const std::uint32_t* w, int bits, std::size_t i) noexcept {
    const std::size_t pos = i * static_cast<std::size_t>(bits), word = pos / 32, shift = pos % 32;
    std::uint32_t v = w[word] >> shift;
    if (shift + static_cast<std::size_t>(bits) > 32) v |= w[word + 1] << (32 - shift);
    return v & ((std::uint32_t{1} << bits) - 1u);
}

/// Coordinate i of the vector a record stands for.
[[nodiscard]] inline float decode_at(const VectorCoding& c, const std::uint32_t* rec, const float* side,
                                     std::size_t i) noexcept {
    const std::uint32_t* w = rec + c.word_offset;
    switch (c.coding) {
        case Coding::codebook: return c.table[stream_code(w, c.bits, i)];
        case Coding::affine: {
            const float* gs = side + c.side_offset + 2 * (i / c.group);
            const float scaled = gs[0] * static_cast<float>(stream_code(w, c.bits, i));
            return scaled + gs[1];
        }
        case Coding::integer: return static_cast<float>(stream_code(w, c.bits, i));
        case Coding::f16: return f16_bits_to_float(static_cast<std::uint16_t>(w[i / 2] >> (16 * (i % 2))));
        case Coding::bf16: return bf16_bits_to_float(static_cast<std::uint16_t>(w[i / 2] >> (16 * (i % 2))));
        case Coding::f32: return std::bit_cast<float>(w[i]);
        case Coding::signs: return ((w[i / 32] >> (i % 32)) & 1u) != 0 ? 1.0f : -1.0f;
    }
    return 0.0f;
}

}  // namespace scalar_detail

inline void dot_run(arch::scalar, const VectorCoding& c, const Records& r, const TokenScale& ts,
                    const float* const* q, std::size_t n, float* out, std::size_t os, bool add) noexcept {
    for (std::size_t j = 0; j < r.count; ++j) {
        const std::uint32_t* rec = r.words + j * r.word_stride;
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        const float s = ts.at(j);
        for (std::size_t k = 0; k < n; ++k) {
            float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (std::size_t i = 0; i < c.dim; ++i) a[i % 4] += q[k][i] * scalar_detail::decode_at(c, rec, side, i);
            const float v = s * ((a[0] + a[1]) + (a[2] + a[3]));
            out[k * os + j] = add ? out[k * os + j] + v : v;
        }
    }
}

inline void axpy_run(arch::scalar, const VectorCoding& c, const Records& r, const TokenScale& ts, const float* w,
                     std::size_t ws, std::size_t n, float* acc, std::size_t as) noexcept {
    for (std::size_t j = 0; j < r.count; ++j) {
        const std::uint32_t* rec = r.words + j * r.word_stride;
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        const float s = ts.at(j);
        for (std::size_t k = 0; k < n; ++k) {
            const float wk = w[k * ws + j] * s;
            float* a = acc + k * as;
            for (std::size_t i = 0; i < c.dim; ++i) a[i] += wk * scalar_detail::decode_at(c, rec, side, i);
        }
    }
}

/// In place: row = softmax(scale · row), in the reference order (kv/attention.hpp).
inline void softmax_row(arch::scalar, float* row, std::size_t n, float scale) noexcept {
    float m = -std::numeric_limits<float>::infinity();
    for (std::size_t j = 0; j < n; ++j) {
        row[j] *= scale;
        m = std::max(m, row[j]);
    }
    float z = 0.0f;
    for (std::size_t j = 0; j < n; ++j) {
        row[j] = std::exp(row[j] - m);
        z += row[j];
    }
    for (std::size_t j = 0; j < n; ++j) row[j] = row[j] / z;
}

}  // namespace optiq::backend::kv

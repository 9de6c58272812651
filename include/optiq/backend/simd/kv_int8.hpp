#pragma once
// Int8 attention arithmetic for 4-bit codebook records (VectorCoding::int8; TurboQuant-MSE at 4
// bits, the "+int8" KV methods). Opt-in and approximate: it trades exactness for integer dot
// products (AVX-512 VNNI vpdpbusd: 64 multiply-adds per instruction where an f32 FMA does 16), the
// way llama.cpp scores quantized caches with q8 queries. The rules below define the result; the
// kernels compute exactly these integers and the same final float operations, and these scalar
// loops are what they are tested against:
//   kv_avx512_int8.hpp  keys and values, AVX-512 VNNI (vpdpbusd)
//   kv_neon_int8.hpp    keys, AArch64 with the dot-product extension (sdot; Apple Silicon)
// Where no int8 kernel runs (AVX2-only x86, AArch64 without dot products, NEON values, the scalar
// tag) the flag is ignored and that side of attention is exact: int8 is a permission, not a
// requirement.
//
//   table    c8[i] = round(table[i] · 127 / max|table|) ∈ [−127, 127],   t = max|table| / 127
//   keys     per query: q8[i] = round(q[i] · 127 / max|q|),  sq = max|q| / 127
//            score_j = ((float) Σ_i q8[i] c8[code_j,i] · (sq · t)) · ts(j)
//   values   per tile of 64 tokens of a run and per query: w_j = w[j] · ts(j) (≥ 0: softmax
//            probabilities times norms), w8_j = round(w_j · 255 / max_tile w) ∈ [0, 255],
//            acc[i] += (float) Σ_j w8_j c8[code_j,i] · ((max_tile w / 255) · t)
//            (a tile with a negative or non-finite weight is accumulated exactly instead)
// round is round-half-to-even (the SSE/AVX conversion). The added error is small next to the
// 4-bit code's own: rounding the centroids and the query to 8 bits adds about 1% to the score
// error variance of 4-bit TurboQuant (docs/benchmarks.md, tests/kv).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "optiq/backend/simd/kv_types.hpp"

namespace optiq::backend::kv {

/// Tokens per weight tile of the int8 value accumulation.
inline constexpr std::size_t int8_tile = 64;
/// The largest d the int8 kernels take.
inline constexpr std::size_t max_int8_dim = 512;

/// Whether a coding asks for, and can take, int8 arithmetic.
[[nodiscard]] inline bool int8_coding(const VectorCoding& c) noexcept {
    return c.int8 && c.coding == Coding::codebook && c.bits == 4 && c.table != nullptr && c.dim % 64 == 0 &&
           c.dim != 0 && c.dim <= max_int8_dim;
}

/// The codebook at 8 bits: c8 and its step t.
struct Int8Table {
    std::int8_t c8[16] = {};
    float step = 0.0f;
};

/// x[0, n) at 8 bits, symmetric: out[i] = round(x[i] · 127 / max|x|); returns max|x| / 127.
inline float quantize_s8(const float* x, std::size_t n, std::int8_t* out) noexcept {
    float m = 0.0f;
    for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
    const float inv = m > 0.0f ? 127.0f / m : 0.0f;
    for (std::size_t i = 0; i < n; ++i)
        out[i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(x[i] * inv), -127.0f, 127.0f));
    return m / 127.0f;
}

[[nodiscard]] inline Int8Table int8_table(const float* table) noexcept {
    Int8Table t;
    t.step = quantize_s8(table, 16, t.c8);
    return t;
}

/// w[0, n) at 8 bits, unsigned: out[i] = round(w[i] · 255 / max w); returns max w / 255, or −1
/// when some weight is negative or not finite (the tile then goes the exact way).
inline float quantize_u8(const float* w, std::size_t n, std::uint8_t* out) noexcept {
    float m = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        if (!(w[i] >= 0.0f) || !std::isfinite(w[i])) return -1.0f;
        m = std::max(m, w[i]);
    }
    const float inv = m > 0.0f ? 255.0f / m : 0.0f;
    for (std::size_t i = 0; i < n; ++i)
        out[i] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(w[i] * inv), 0.0f, 255.0f));
    return m / 255.0f;
}

namespace int8_detail {

/// Code i of a 4-bit record (MLX's LSB-first stream: byte i/2, low nibble first).
[[nodiscard]] inline unsigned code4(const std::uint32_t* rec, std::size_t i) noexcept {
    return (rec[i / 8] >> (4 * (i % 8))) & 15u;
}

}  // namespace int8_detail

/// The int8 rule for key scores (dot_run's contract otherwise), n ≤ max_states.
inline void dot_run_int8_reference(const VectorCoding& c, const Records& r, const TokenScale& ts,
                                   const float* const* q, std::size_t n, float* out, std::size_t os,
                                   bool add) noexcept {
    const Int8Table t = int8_table(c.table);
    std::int8_t q8[max_states][max_int8_dim];
    float qt[max_states];
    for (std::size_t k = 0; k < n; ++k) qt[k] = quantize_s8(q[k], c.dim, q8[k]) * t.step;
    for (std::size_t j = 0; j < r.count; ++j) {
        const std::uint32_t* rec = r.words + j * r.word_stride + c.word_offset;
        const float f = ts.at(j);
        for (std::size_t k = 0; k < n; ++k) {
            std::int32_t dot = 0;
            for (std::size_t i = 0; i < c.dim; ++i) dot += q8[k][i] * t.c8[int8_detail::code4(rec, i)];
            const float v = static_cast<float>(dot) * qt[k] * f;
            out[k * os + j] = add ? out[k * os + j] + v : v;
        }
    }
}

/// The int8 rule for value accumulation (axpy_run's contract otherwise), n ≤ max_states. The
/// tiles' float sums are added up first and to acc at the end (exact tiles go to acc at once).
inline void axpy_run_int8_reference(const VectorCoding& c, const Records& r, const TokenScale& ts, const float* w,
                                    std::size_t ws, std::size_t n, float* acc, std::size_t as) noexcept {
    const Int8Table t = int8_table(c.table);
    for (std::size_t k = 0; k < n; ++k) {
        float sums[max_int8_dim] = {};
        float* a = acc + k * as;
        for (std::size_t j0 = 0; j0 < r.count; j0 += int8_tile) {
            const std::size_t m = std::min(int8_tile, r.count - j0);
            float wt[int8_tile];
            std::uint8_t w8[int8_tile];
            for (std::size_t j = 0; j < m; ++j) wt[j] = w[k * ws + j0 + j] * ts.at(j0 + j);
            const float step = quantize_u8(wt, m, w8);
            if (step < 0.0f) {
                for (std::size_t j = 0; j < m; ++j) {
                    const std::uint32_t* rec = r.words + (j0 + j) * r.word_stride + c.word_offset;
                    for (std::size_t i = 0; i < c.dim; ++i) a[i] += wt[j] * c.table[int8_detail::code4(rec, i)];
                }
                continue;
            }
            const float s = step * t.step;
            for (std::size_t i = 0; i < c.dim; ++i) {
                std::int32_t sum = 0;
                for (std::size_t j = 0; j < m; ++j)
                    sum += w8[j] * t.c8[int8_detail::code4(r.words + (j0 + j) * r.word_stride + c.word_offset, i)];
                sums[i] += static_cast<float>(sum) * s;
            }
        }
        for (std::size_t i = 0; i < c.dim; ++i) a[i] += sums[i];
    }
}

}  // namespace optiq::backend::kv

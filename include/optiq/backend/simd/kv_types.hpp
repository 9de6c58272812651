#pragma once
// The plain types of the KV-attention kernels (kv_scalar.hpp, kv_avx2.hpp, kv_avx512.hpp): how a
// run of consecutive token records of one head is laid out, and how one vector is coded inside a
// record. A KV codec (include/optiq/kv/policies/) describes its records once with a VectorCoding;
// the kernels then score or accumulate a whole run without calling back into the codec.
//
// Codings (x the vector a record stands for, in the codec's space; c_i its i-th code):
//   codebook   x_i = table[c_i]           (one scalar codebook for every coordinate: TurboQuant,
//                                          whose Lloyd-Max table is shared by all rotated coordinates)
//   affine     x_i = s_g c_i + b_g        (MLX affine, KIVI values: {s_g, b_g} side floats per group)
//   integer    x_i = c_i                  (KIVI keys: the per-channel scales are folded into the query)
//   f16, bf16  x_i = the i-th 16-bit value, widened exactly
//   f32        x_i = the i-th float
//   signs      x_i = +1 if bit i is set, else −1   (QJL and TurboQuant-Prod sketches)
// Codes are MLX's LSB-first bit stream in little-endian uint32 words (pack/mlx_stream.hpp).
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace optiq::backend::kv {

enum class Coding : std::uint8_t { codebook, affine, integer, f16, bf16, f32, signs };

/// How one vector is stored inside a record.
struct VectorCoding {
    Coding coding = Coding::f32;
    int bits = 0;                  ///< codebook, affine, integer: bits per code (1..8)
    std::size_t dim = 0;           ///< coordinates (signs: sketch rows)
    std::size_t word_offset = 0;   ///< first word of the vector inside its record
    std::size_t group = 0;         ///< affine: coordinates per {scale, bias} pair
    std::size_t side_offset = 0;   ///< affine: index of the first group's scale among the side floats
    const float* table = nullptr;  ///< codebook: the centroids, at least max(16, 2^bits) floats
    bool int8 = false;             ///< 4-bit codebook: kernels may use int8 arithmetic (kv_int8.hpp)
};

/// `count` records of consecutive tokens: record j's words at words + j * word_stride, its side
/// floats at side + j * side_stride.
struct Records {
    const std::uint32_t* words = nullptr;
    std::size_t word_stride = 0;
    const float* side = nullptr;
    std::size_t side_stride = 0;
    std::size_t count = 0;
};

/// A per-token factor: factor · a[j · stride] · b[j · stride] (a missing pointer counts as 1).
/// TurboQuant's ‖x‖ is side[0]; TurboQuant-Prod's sketch term is ‖x‖ · γ · sqrt(π/2)/m.
struct TokenScale {
    const float* a = nullptr;
    const float* b = nullptr;
    std::size_t stride = 0;
    float factor = 1.0f;

    [[nodiscard]] float at(std::size_t j) const noexcept {
        float s = factor;
        if (a != nullptr) s *= a[j * stride];
        if (b != nullptr) s *= b[j * stride];
        return s;
    }
};

/// Bytes [0, N) at p as an integer (little-endian machines: the x86 kernels), through loads of 1, 2 and 4 bytes combined in
/// registers: a memcpy of 3, 5, 6 or 7 bytes into a stack word becomes partial stores that the
/// 64-bit reload cannot forward from (a stall of some 15 cycles per read).
template <int N>
inline std::uint64_t load_bytes(const std::uint8_t* p) noexcept {
    static_assert(N >= 1 && N <= 7);
    std::uint64_t v = 0;
    int at = 0;
    if constexpr (N >= 4) {
        std::uint32_t w;
        std::memcpy(&w, p, 4);
        v = w;
        at = 4;
    }
    if constexpr ((N - (N >= 4 ? 4 : 0)) >= 2) {
        std::uint16_t h;
        std::memcpy(&h, p + at, 2);
        v |= static_cast<std::uint64_t>(h) << (8 * at);
        at += 2;
    }
    if constexpr ((N - (N >= 4 ? 4 : 0)) % 2 == 1) v |= static_cast<std::uint64_t>(p[at]) << (8 * at);
    return v;
}

/// The coordinate order of the split decoders (kv_avx2.hpp, kv_avx512.hpp): in a block of S
/// registers of W lanes, lane i of register s holds coordinate S·i + s. Copies a vector of dim
/// coordinates into that order (dst[(b·S + s)·W + i] = src[W·S·b + S·i + s]), or back when `back`.
inline void permute_split(const float* src, float* dst, std::size_t dim, std::size_t S, std::size_t W,
                          bool back) noexcept {
    for (std::size_t b = 0; b < dim / (W * S); ++b)
        for (std::size_t s = 0; s < S; ++s)
            for (std::size_t i = 0; i < W; ++i) {
                const std::size_t split = (b * S + s) * W + i, natural = W * S * b + S * i + s;
                if (back) dst[natural] = src[split];
                else dst[split] = src[natural];
            }
}

/// At most this many query states go through one kernel call (their accumulators stay in registers).
inline constexpr std::size_t max_states = 4;

}  // namespace optiq::backend::kv

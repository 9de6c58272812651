#pragma once
// ggml tensor types: block sizes, and reference dequantizers for the block formats of
// ggml-common.h (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K) plus the plain F32/F16/BF16/F64/I* types.
//
// Each kernel performs the same float32 operations in the same order as the PyPI `gguf` package's
// numpy dequantizers (gguf/quants.py), so results are equal bit for bit (tests/interop checks it).
// Fused multiply-add contraction cannot change a result: every product that is followed by an
// addition multiplies an f16 scale (11 significant bits) by integers of at most 6 + 6 bits, which is
// exact in float32; the only inexact products (Q6_K's, Q3_K's last step) are not followed by one.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/io/mmap.hpp"

namespace optiq::io {

/// ggml_type ids as stored in GGUF tensor infos (ggml.h).
enum class GgmlType : std::uint32_t {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q4_1 = 3,
    q5_0 = 6,
    q5_1 = 7,
    q8_0 = 8,
    q8_1 = 9,
    q2_k = 10,
    q3_k = 11,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    q8_k = 15,
    iq2_xxs = 16,
    iq2_xs = 17,
    iq3_xxs = 18,
    iq1_s = 19,
    iq4_nl = 20,
    iq3_s = 21,
    iq2_s = 22,
    iq4_xs = 23,
    i8 = 24,
    i16 = 25,
    i32 = 26,
    i64 = 27,
    f64 = 28,
    iq1_m = 29,
    bf16 = 30,
    tq1_0 = 34,
    tq2_0 = 35,
    mxfp4 = 39,
};

struct GgmlTypeTraits {
    std::string_view name;
    std::uint32_t block_size;  // elements per block
    std::uint32_t type_size;   // bytes per block
    bool dequantizable;        // optiq has a dequantizer for it
};

/// Traits of a ggml type id, or nullopt for an id optiq does not know.
[[nodiscard]] constexpr std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t id) noexcept {
    switch (id) {
        case 0: return GgmlTypeTraits{"F32", 1, 4, true};
        case 1: return GgmlTypeTraits{"F16", 1, 2, true};
        case 2: return GgmlTypeTraits{"Q4_0", 32, 18, true};
        case 3: return GgmlTypeTraits{"Q4_1", 32, 20, true};
        case 6: return GgmlTypeTraits{"Q5_0", 32, 22, true};
        case 7: return GgmlTypeTraits{"Q5_1", 32, 24, true};
        case 8: return GgmlTypeTraits{"Q8_0", 32, 34, true};
        case 9: return GgmlTypeTraits{"Q8_1", 32, 36, false};
        case 10: return GgmlTypeTraits{"Q2_K", 256, 84, true};
        case 11: return GgmlTypeTraits{"Q3_K", 256, 110, true};
        case 12: return GgmlTypeTraits{"Q4_K", 256, 144, true};
        case 13: return GgmlTypeTraits{"Q5_K", 256, 176, true};
        case 14: return GgmlTypeTraits{"Q6_K", 256, 210, true};
        case 15: return GgmlTypeTraits{"Q8_K", 256, 292, false};
        case 16: return GgmlTypeTraits{"IQ2_XXS", 256, 66, false};
        case 17: return GgmlTypeTraits{"IQ2_XS", 256, 74, false};
        case 18: return GgmlTypeTraits{"IQ3_XXS", 256, 98, false};
        case 19: return GgmlTypeTraits{"IQ1_S", 256, 50, false};
        case 20: return GgmlTypeTraits{"IQ4_NL", 32, 18, false};
        case 21: return GgmlTypeTraits{"IQ3_S", 256, 110, false};
        case 22: return GgmlTypeTraits{"IQ2_S", 256, 82, false};
        case 23: return GgmlTypeTraits{"IQ4_XS", 256, 136, false};
        case 24: return GgmlTypeTraits{"I8", 1, 1, true};
        case 25: return GgmlTypeTraits{"I16", 1, 2, true};
        case 26: return GgmlTypeTraits{"I32", 1, 4, true};
        case 27: return GgmlTypeTraits{"I64", 1, 8, true};
        case 28: return GgmlTypeTraits{"F64", 1, 8, true};
        case 29: return GgmlTypeTraits{"IQ1_M", 256, 56, false};
        case 30: return GgmlTypeTraits{"BF16", 1, 2, true};
        case 34: return GgmlTypeTraits{"TQ1_0", 256, 54, false};
        case 35: return GgmlTypeTraits{"TQ2_0", 256, 66, false};
        case 39: return GgmlTypeTraits{"MXFP4", 32, 17, false};
        default: return std::nullopt;
    }
}

[[nodiscard]] constexpr std::string_view ggml_type_name(GgmlType t) noexcept {
    const auto tr = ggml_type_traits(static_cast<std::uint32_t>(t));
    return tr ? tr->name : std::string_view("?");
}

namespace detail {

[[nodiscard]] inline float f16_at(const std::byte* p) noexcept { return f16_bits_to_float(load_le<std::uint16_t>(p)); }
[[nodiscard]] inline std::uint8_t u8_at(const std::byte* p) noexcept { return std::to_integer<std::uint8_t>(*p); }

// One block of each format: `b` points at its bytes, `y` receives block_size floats.
inline void dequant_block_q4_0(const std::byte* b, float* y) noexcept {
    const float d = f16_at(b);
    const std::byte* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>((u8_at(qs + j) & 0x0F) - 8);
        y[j + 16] = d * static_cast<float>((u8_at(qs + j) >> 4) - 8);
    }
}

inline void dequant_block_q4_1(const std::byte* b, float* y) noexcept {
    const float d = f16_at(b);
    const float m = f16_at(b + 2);
    const std::byte* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        const float lo = d * static_cast<float>(u8_at(qs + j) & 0x0F);
        const float hi = d * static_cast<float>(u8_at(qs + j) >> 4);
        y[j] = lo + m;
        y[j + 16] = hi + m;
    }
}

inline void dequant_block_q5_0(const std::byte* b, float* y) noexcept {
    const float d = f16_at(b);
    const std::uint32_t qh = load_le<std::uint32_t>(b + 2);
    const std::byte* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        const int lo = (u8_at(qs + j) & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
        const int hi = (u8_at(qs + j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
        y[j] = d * static_cast<float>(lo - 16);
        y[j + 16] = d * static_cast<float>(hi - 16);
    }
}

inline void dequant_block_q5_1(const std::byte* b, float* y) noexcept {
    const float d = f16_at(b);
    const float m = f16_at(b + 2);
    const std::uint32_t qh = load_le<std::uint32_t>(b + 4);
    const std::byte* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        const int lo = (u8_at(qs + j) & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
        const int hi = (u8_at(qs + j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
        const float a = d * static_cast<float>(lo);
        const float c = d * static_cast<float>(hi);
        y[j] = a + m;
        y[j + 16] = c + m;
    }
}

inline void dequant_block_q8_0(const std::byte* b, float* y) noexcept {
    const float d = f16_at(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(u8_at(b + 2 + j))) * d;
}

// K-quants: super-blocks of 256 (QK_K).
inline void dequant_block_q2_k(const std::byte* b, float* y) noexcept {
    const std::byte* scales = b;    // 16: low nibble scale, high nibble min
    const std::byte* qs = b + 16;   // 64: 2-bit codes
    const float d = f16_at(b + 80);
    const float dmin = f16_at(b + 82);
    for (int i = 0; i < 256; ++i) {
        const int half = i / 128, r = i % 128, shift = 2 * (r / 32);
        const int q = (u8_at(qs + half * 32 + r % 32) >> shift) & 3;
        const int sc = u8_at(scales + i / 16);
        const float dl = d * static_cast<float>(sc & 0xF);
        const float ml = dmin * static_cast<float>(sc >> 4);
        const float p = dl * static_cast<float>(q);
        y[i] = p - ml;
    }
}

inline void dequant_block_q3_k(const std::byte* b, float* y) noexcept {
    const std::byte* hmask = b;    // 32
    const std::byte* qs = b + 32;  // 64
    const std::byte* sc = b + 96;  // 12: 16 six-bit scales
    const float d = f16_at(b + 108);
    int scales[16];
    for (int j = 0; j < 16; ++j) {
        const int lo = j < 8 ? (u8_at(sc + j) & 0xF) : (u8_at(sc + j - 8) >> 4);
        const int hi = (u8_at(sc + 8 + j % 4) >> (2 * (j / 4))) & 3;
        scales[j] = (lo | (hi << 4)) - 32;
    }
    for (int i = 0; i < 256; ++i) {
        const int half = i / 128, r = i % 128, shift = 2 * (r / 32);
        const int ql = (u8_at(qs + half * 32 + r % 32) >> shift) & 3;
        const int qh = (u8_at(hmask + i % 32) >> (i / 32)) & 1;
        const int q = ql - ((qh ^ 1) << 2);
        const float dl = d * static_cast<float>(scales[i / 16]);
        y[i] = dl * static_cast<float>(q);
    }
}

// The 6-bit scales and mins of Q4_K / Q5_K, 8 of each packed in 12 bytes (get_scale_min_k4).
inline void k4_scale_min(const std::byte* s, int* sc, int* mn) noexcept {
    for (int j = 0; j < 4; ++j) {
        sc[j] = u8_at(s + j) & 0x3F;
        mn[j] = u8_at(s + 4 + j) & 0x3F;
        sc[j + 4] = (u8_at(s + 8 + j) & 0x0F) | ((u8_at(s + j) >> 2) & 0x30);
        mn[j + 4] = (u8_at(s + 8 + j) >> 4) | ((u8_at(s + 4 + j) >> 2) & 0x30);
    }
}

inline void dequant_block_q4_k(const std::byte* b, float* y) noexcept {
    const float d = f16_at(b);
    const float dmin = f16_at(b + 2);
    int sc[8], mn[8];
    k4_scale_min(b + 4, sc, mn);
    const std::byte* qs = b + 16;  // 128
    for (int i = 0; i < 256; ++i) {
        const int s = i / 32;
        const int q = (u8_at(qs + (i / 64) * 32 + i % 32) >> (4 * (s % 2))) & 0xF;
        const float ds = d * static_cast<float>(sc[s]);
        const float dm = dmin * static_cast<float>(mn[s]);
        const float p = ds * static_cast<float>(q);
        y[i] = p - dm;
    }
}

inline void dequant_block_q5_k(const std::byte* b, float* y) noexcept {
    const float d = f16_at(b);
    const float dmin = f16_at(b + 2);
    int sc[8], mn[8];
    k4_scale_min(b + 4, sc, mn);
    const std::byte* qh = b + 16;  // 32
    const std::byte* qs = b + 48;  // 128
    for (int i = 0; i < 256; ++i) {
        const int s = i / 32;
        const int lo = (u8_at(qs + (i / 64) * 32 + i % 32) >> (4 * (s % 2))) & 0xF;
        const int hi = (u8_at(qh + i % 32) >> s) & 1;
        const float ds = d * static_cast<float>(sc[s]);
        const float dm = dmin * static_cast<float>(mn[s]);
        const float p = ds * static_cast<float>(lo | (hi << 4));
        y[i] = p - dm;
    }
}

inline void dequant_block_q6_k(const std::byte* b, float* y) noexcept {
    const std::byte* ql = b;         // 128: low 4 bits
    const std::byte* qh = b + 128;   // 64: high 2 bits
    const std::byte* sc = b + 192;   // 16 int8 scales
    const float d = f16_at(b + 208);
    for (int i = 0; i < 256; ++i) {
        const int half = i / 128, r = i % 128;
        const int lo = (u8_at(ql + half * 64 + r % 64) >> (4 * (r / 64))) & 0xF;
        const int hi = (u8_at(qh + half * 32 + r % 32) >> (2 * (r / 32))) & 3;
        const int q = (lo | (hi << 4)) - 32;
        const float ds = d * static_cast<float>(static_cast<std::int8_t>(u8_at(sc + i / 16)));
        y[i] = ds * static_cast<float>(q);
    }
}

}  // namespace detail

/// Bytes that `n` elements of `type` occupy; nullopt when the type is unknown, `n` is not a
/// whole number of blocks or the byte count overflows size_t (F32 with n = 2^62 would wrap to 0).
[[nodiscard]] constexpr std::optional<std::size_t> ggml_row_bytes(GgmlType type, std::size_t n) noexcept {
    const auto tr = ggml_type_traits(static_cast<std::uint32_t>(type));
    if (!tr || n % tr->block_size != 0) return std::nullopt;
    const std::size_t blocks = n / tr->block_size;
    if (blocks > SIZE_MAX / tr->type_size) return std::nullopt;
    return blocks * tr->type_size;
}

/// Dequantizes `out.size()` elements of `type` from `src` (exactly ggml_row_bytes(type, out.size())
/// bytes). Throws shape_error on a size mismatch and config_error for a type without a dequantizer.
inline void dequantize(GgmlType type, std::span<const std::byte> src, std::span<float> out) {
    const auto tr = ggml_type_traits(static_cast<std::uint32_t>(type));
    if (!tr) detail::fail<config_error>("ggml type id ", static_cast<std::uint32_t>(type), " is unknown");
    if (!tr->dequantizable) detail::fail<config_error>("ggml type ", tr->name, " has no dequantizer in optiq");
    const auto need = ggml_row_bytes(type, out.size());
    if (!need) detail::fail<shape_error>(tr->name, ": ", out.size(), " elements are not whole blocks of ", tr->block_size);
    if (*need != src.size())
        detail::fail<shape_error>(tr->name, ": ", out.size(), " elements need ", *need, " bytes, got ", src.size());
    const std::size_t blocks = out.size() / tr->block_size;
    const std::byte* s = src.data();
    float* y = out.data();
    auto each_block = [&](auto kernel) {
        for (std::size_t i = 0; i < blocks; ++i) kernel(s + i * tr->type_size, y + i * tr->block_size);
    };
    using detail::load_le;
    switch (type) {
        case GgmlType::f32:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = load_le<float>(s + 4 * i);
            return;
        case GgmlType::f16:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = f16_bits_to_float(load_le<std::uint16_t>(s + 2 * i));
            return;
        case GgmlType::bf16:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = bf16_bits_to_float(load_le<std::uint16_t>(s + 2 * i));
            return;
        case GgmlType::f64:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = static_cast<float>(load_le<double>(s + 8 * i));
            return;
        case GgmlType::i8:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = static_cast<float>(static_cast<std::int8_t>(detail::u8_at(s + i)));
            return;
        case GgmlType::i16:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = static_cast<float>(load_le<std::int16_t>(s + 2 * i));
            return;
        case GgmlType::i32:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = static_cast<float>(load_le<std::int32_t>(s + 4 * i));
            return;
        case GgmlType::i64:
            for (std::size_t i = 0; i < blocks; ++i) y[i] = static_cast<float>(load_le<std::int64_t>(s + 8 * i));
            return;
        case GgmlType::q4_0: each_block(detail::dequant_block_q4_0); return;
        case GgmlType::q4_1: each_block(detail::dequant_block_q4_1); return;
        case GgmlType::q5_0: each_block(detail::dequant_block_q5_0); return;
        case GgmlType::q5_1: each_block(detail::dequant_block_q5_1); return;
        case GgmlType::q8_0: each_block(detail::dequant_block_q8_0); return;
        case GgmlType::q2_k: each_block(detail::dequant_block_q2_k); return;
        case GgmlType::q3_k: each_block(detail::dequant_block_q3_k); return;
        case GgmlType::q4_k: each_block(detail::dequant_block_q4_k); return;
        case GgmlType::q5_k: each_block(detail::dequant_block_q5_k); return;
        case GgmlType::q6_k: each_block(detail::dequant_block_q6_k); return;
        default: detail::fail<config_error>("ggml type ", tr->name, " has no dequantizer in optiq");
    }
}

}  // namespace optiq::io

#pragma once
// Element types of tensors stored in model files, and a non-owning view of one stored tensor
// (name, dtype, shape, raw little-endian bytes) with conversion to float.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/io/mmap.hpp"

namespace optiq::io {

namespace detail {
/// a * b into out; true (and out untouched) when the product overflows 64 bits.
[[nodiscard]] inline bool mul_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return true;
    out = a * b;
    return false;
}

}  // namespace detail

/// Element types of the safetensors format (names as the format spells them: dtype_name()).
enum class DType : std::uint8_t {
    boolean,
    u8,
    i8,
    f8_e4m3,  // "F8_E4M3": OCP E4M3FN (no infinities; S.1111.111 is NaN)
    f8_e5m2,  // "F8_E5M2": IEEE-like, bias 15
    u16,
    i16,
    f16,
    bf16,
    u32,
    i32,
    f32,
    u64,
    i64,
    f64,
};

inline constexpr DType kAllDTypes[] = {DType::boolean, DType::u8,  DType::i8,  DType::f8_e4m3, DType::f8_e5m2,
                                       DType::u16,     DType::i16, DType::f16, DType::bf16,    DType::u32,
                                       DType::i32,     DType::f32, DType::u64, DType::i64,     DType::f64};

[[nodiscard]] constexpr std::size_t dtype_size(DType t) noexcept {
    switch (t) {
        case DType::boolean:
        case DType::u8:
        case DType::i8:
        case DType::f8_e4m3:
        case DType::f8_e5m2: return 1;
        case DType::u16:
        case DType::i16:
        case DType::f16:
        case DType::bf16: return 2;
        case DType::u32:
        case DType::i32:
        case DType::f32: return 4;
        case DType::u64:
        case DType::i64:
        case DType::f64: return 8;
    }
    return 0;
}

/// The safetensors spelling: "BOOL", "U8", "F16", "BF16", "F8_E4M3", ...
[[nodiscard]] constexpr std::string_view dtype_name(DType t) noexcept {
    switch (t) {
        case DType::boolean: return "BOOL";
        case DType::u8: return "U8";
        case DType::i8: return "I8";
        case DType::f8_e4m3: return "F8_E4M3";
        case DType::f8_e5m2: return "F8_E5M2";
        case DType::u16: return "U16";
        case DType::i16: return "I16";
        case DType::f16: return "F16";
        case DType::bf16: return "BF16";
        case DType::u32: return "U32";
        case DType::i32: return "I32";
        case DType::f32: return "F32";
        case DType::u64: return "U64";
        case DType::i64: return "I64";
        case DType::f64: return "F64";
    }
    return "?";
}

[[nodiscard]] constexpr std::optional<DType> dtype_from_name(std::string_view s) noexcept {
    for (DType t : kAllDTypes)
        if (dtype_name(t) == s) return t;
    return std::nullopt;
}

[[nodiscard]] constexpr bool is_floating(DType t) noexcept {
    return t == DType::f16 || t == DType::bf16 || t == DType::f32 || t == DType::f64 || t == DType::f8_e4m3 ||
           t == DType::f8_e5m2;
}

/// OCP FP8 E4M3FN: bias 7, no infinities, exponent and mantissa all ones is NaN.
[[nodiscard]] inline float f8_e4m3_to_float(std::uint8_t v) noexcept {
    const bool neg = (v & 0x80u) != 0;
    const int e = (v >> 3) & 0xF;
    const int m = v & 0x7;
    float r;
    if (e == 0xF && m == 0x7) return std::numeric_limits<float>::quiet_NaN();
    if (e == 0) r = std::ldexp(static_cast<float>(m), -9);  // subnormal: m/8 * 2^-6
    else r = std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
    return neg ? -r : r;
}

/// FP8 E5M2: the top byte of an IEEE binary16.
[[nodiscard]] inline float f8_e5m2_to_float(std::uint8_t v) noexcept {
    return f16_bits_to_float(static_cast<std::uint16_t>(v << 8));
}

/// Converts `n` stored elements of type `t` at `src` (little-endian, any alignment) to float.
/// 64-bit integers beyond 2^24 lose precision, as any float conversion does.
inline void convert_to_float(DType t, const std::byte* src, std::size_t n, float* out) noexcept {
    using detail::load_le;
    for (std::size_t i = 0; i < n; ++i) {
        const std::byte* p = src + i * dtype_size(t);
        float v = 0.0f;
        switch (t) {
            case DType::boolean: v = std::to_integer<std::uint8_t>(*p) != 0 ? 1.0f : 0.0f; break;
            case DType::u8: v = static_cast<float>(std::to_integer<std::uint8_t>(*p)); break;
            case DType::i8: v = static_cast<float>(static_cast<std::int8_t>(std::to_integer<std::uint8_t>(*p))); break;
            case DType::f8_e4m3: v = f8_e4m3_to_float(std::to_integer<std::uint8_t>(*p)); break;
            case DType::f8_e5m2: v = f8_e5m2_to_float(std::to_integer<std::uint8_t>(*p)); break;
            case DType::u16: v = static_cast<float>(load_le<std::uint16_t>(p)); break;
            case DType::i16: v = static_cast<float>(load_le<std::int16_t>(p)); break;
            case DType::f16: v = f16_bits_to_float(load_le<std::uint16_t>(p)); break;
            case DType::bf16: v = bf16_bits_to_float(load_le<std::uint16_t>(p)); break;
            case DType::u32: v = static_cast<float>(load_le<std::uint32_t>(p)); break;
            case DType::i32: v = static_cast<float>(load_le<std::int32_t>(p)); break;
            case DType::f32: v = load_le<float>(p); break;
            case DType::u64: v = static_cast<float>(load_le<std::uint64_t>(p)); break;
            case DType::i64: v = static_cast<float>(load_le<std::int64_t>(p)); break;
            case DType::f64: v = static_cast<float>(load_le<double>(p)); break;
        }
        out[i] = v;
    }
}

/// Product of the dimensions (1 for a scalar, shape {}).
[[nodiscard]] inline std::size_t numel(std::span<const std::size_t> shape) noexcept {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;
    return n;
}

/// One tensor stored in a file: a view, valid while the file object that produced it lives.
/// Shapes are row-major, outermost first (HF / numpy order) for every format.
struct TensorView {
    std::string name;
    DType dtype = DType::f32;
    std::vector<std::size_t> shape;
    std::span<const std::byte> bytes;

    [[nodiscard]] std::size_t numel() const noexcept { return io::numel(shape); }
    [[nodiscard]] std::size_t rank() const noexcept { return shape.size(); }

    /// All elements converted to float.
    [[nodiscard]] std::vector<float> to_float() const {
        std::vector<float> out(numel());
        to_float(out);
        return out;
    }
    /// Converts into `out`, which must hold exactly numel() floats.
    void to_float(std::span<float> out) const {
        if (out.size() != numel())
            detail::fail<shape_error>("tensor '", name, "': to_float needs ", numel(), " floats, got ", out.size());
        convert_to_float(dtype, bytes.data(), out.size(), out.data());
    }
};

/// "[2, 3, 4]" for messages.
[[nodiscard]] inline std::string shape_string(std::span<const std::size_t> shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

}  // namespace optiq::io

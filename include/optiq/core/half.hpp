#pragma once
// IEEE binary16 and bfloat16 conversions (round to nearest, ties to even), portable C++.
#include <bit>
#include <cstdint>

namespace optiq {

[[nodiscard]] inline std::uint16_t float_to_f16_bits(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t abs = x & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) {  // inf or nan
        return static_cast<std::uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
    }
    if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to inf
    if (abs < 0x38800000u) {  // subnormal f16 (or zero)
        // value = abs_float; f16 subnormal unit = 2^-24
        const std::uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
        const int exp = static_cast<int>(abs >> 23);
        const int shift = 126 - exp;  // bring to units of 2^-24: mant * 2^(exp-150) / 2^-24
        if (shift > 24) return static_cast<std::uint16_t>(sign);
        const std::uint32_t q = mant >> shift;
        const std::uint32_t rem = mant & ((1u << shift) - 1u);
        const std::uint32_t half = 1u << (shift - 1);
        std::uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
        return static_cast<std::uint16_t>(sign | r);
    }
    std::uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
    r = (r + 0x0FFFu + ((r >> 13) & 1u)) >> 13;
    return static_cast<std::uint16_t>(sign | r);
}

[[nodiscard]] inline float f16_bits_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1Fu;
    const std::uint32_t mant = h & 0x3FFu;
    if (exp == 0) {
        const float v = static_cast<float>(mant) * 0x1.0p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

[[nodiscard]] inline std::uint16_t float_to_bf16_bits(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet nan
    const std::uint32_t r = x + 0x7FFFu + ((x >> 16) & 1u);
    return static_cast<std::uint16_t>(r >> 16);
}

[[nodiscard]] inline float bf16_bits_to_float(std::uint16_t b) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

/// Rounds a float to the nearest f16 value (the value an f16 store would keep).
[[nodiscard]] inline float round_to_f16(float f) noexcept { return f16_bits_to_float(float_to_f16_bits(f)); }
[[nodiscard]] inline float round_to_bf16(float f) noexcept { return bf16_bits_to_float(float_to_bf16_bits(f)); }

}  // namespace optiq

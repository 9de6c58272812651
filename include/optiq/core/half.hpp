#pragma once
// IEEE binary16 and bfloat16 conversions (round to nearest, ties to even), portable C++.
#include <bit>
#include <cstdint>

namespace optiq {

// f16 <-> f32 without data-dependent branches (selects the compiler can turn into blends, so
// loops over arrays vectorise), after F. Giesen's float_to_half_fast3_rtne / half_to_float.
// Exact: round to nearest even, subnormals, infinities, NaN -> quiet NaN with the sign kept.

[[nodiscard]] inline std::uint16_t float_to_f16_bits(float f) noexcept {
    constexpr std::uint32_t f32_inf = 255u << 23;
    constexpr std::uint32_t f16_overflow = (127u + 16u) << 23;  // 65536: at or above, inf (or nan)
    constexpr std::uint32_t denorm_magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;  // 0.5
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t abs = x & 0x7FFFFFFFu;
    // Below 2^-14 (f16 subnormal or zero): adding 0.5 lines the f16 subnormal unit 2^-24 up with
    // the last mantissa bit of the sum, and the float addition rounds to nearest even.
    const float denorm_sum = std::bit_cast<float>(abs) + std::bit_cast<float>(denorm_magic_bits);
    const std::uint32_t denorm = std::bit_cast<std::uint32_t>(denorm_sum) - denorm_magic_bits;
    // Normal: rebias the exponent, round the 13 dropped bits to nearest even (a carry into the
    // exponent is the correct result, up to inf at 65520).
    const std::uint32_t normal = (abs + ((15u - 127u) << 23) + 0x0FFFu + ((abs >> 13) & 1u)) >> 13;
    const std::uint32_t special = 0x7C00u | (static_cast<std::uint32_t>(abs > f32_inf) << 9);
    // All-ones masks rather than ?: so that no branch is left for the vectoriser to trip on.
    const std::uint32_t is_denorm = 0u - static_cast<std::uint32_t>(abs < (113u << 23));
    const std::uint32_t is_special = 0u - static_cast<std::uint32_t>(abs >= f16_overflow);
    std::uint32_t r = (denorm & is_denorm) | (normal & ~is_denorm);
    r = (special & is_special) | (r & ~is_special);
    return static_cast<std::uint16_t>(sign | r);
}

[[nodiscard]] inline float f16_bits_to_float(std::uint16_t h) noexcept {
    constexpr std::uint32_t shifted_exp = 0x7C00u << 13;
    constexpr float magic = std::bit_cast<float>(113u << 23);  // 2^-14
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t o = (static_cast<std::uint32_t>(h & 0x7FFFu) << 13) + ((127u - 15u) << 23);
    const std::uint32_t exp = (static_cast<std::uint32_t>(h) << 13) & shifted_exp;
    // Subnormal (exp 0): 2^-14 (1 + m/1024) - 2^-14 = m 2^-24, exact.
    const float sub = std::bit_cast<float>(o + (1u << 23)) - magic;
    const std::uint32_t inf_nan = o + ((128u - 16u) << 23);
    const std::uint32_t is_special = 0u - static_cast<std::uint32_t>(exp == shifted_exp);
    const std::uint32_t is_sub = 0u - static_cast<std::uint32_t>(exp == 0);
    std::uint32_t r = (inf_nan & is_special) | (o & ~is_special);
    r = (std::bit_cast<std::uint32_t>(sub) & is_sub) | (r & ~is_sub);
    return std::bit_cast<float>(r | sign);
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

#pragma once
// The Packer slot: writes n b-bit codes (one per uint8) into uint32 words and reads them back.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "optiq/core/error.hpp"

namespace optiq {

/// Bits chosen at run time (per-layer mixed precision) rather than as a template argument.
inline constexpr int dynamic_bits = 0;

namespace detail {

/// Calls f(std::integral_constant<int, b>) for a run-time b in 1..8: the bit width is dispatched
/// once per call, and the packing loop inside f is compiled for a constant b.
template <class F>
inline void with_bits(int bits, const char* who, F&& f) {
    switch (bits) {
        case 1: f(std::integral_constant<int, 1>{}); break;
        case 2: f(std::integral_constant<int, 2>{}); break;
        case 3: f(std::integral_constant<int, 3>{}); break;
        case 4: f(std::integral_constant<int, 4>{}); break;
        case 5: f(std::integral_constant<int, 5>{}); break;
        case 6: f(std::integral_constant<int, 6>{}); break;
        case 7: f(std::integral_constant<int, 7>{}); break;
        case 8: f(std::integral_constant<int, 8>{}); break;
        default: fail<config_error>(who, ": bits = ", bits, " is not in 1..8");
    }
}

}  // namespace detail

template <class P>
concept Packer = std::copy_constructible<P> &&
    requires(const P& p, std::span<const std::uint8_t> codes, std::span<std::uint32_t> words,
             std::span<const std::uint32_t> cwords, std::span<std::uint8_t> out) {
        { p.bits() } -> std::convertible_to<int>;
        { p.words_for(std::size_t{}) } -> std::convertible_to<std::size_t>;  // words for n codes
        p.pack(codes, words);     // words.size() == words_for(codes.size())
        p.unpack(cwords, out);    // fills out.size() codes
    };

}  // namespace optiq

#pragma once
// The Packer slot: writes n b-bit codes (one per uint8) into uint32 words and reads them back.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace optiq {

/// Bits chosen at run time (per-layer mixed precision) rather than as a template argument.
inline constexpr int dynamic_bits = 0;

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

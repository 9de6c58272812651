#pragma once
// Aligned<Bits>: floor(32/b) codes per uint32 word, LSB first, never crossing a word; the top
// 32 mod b bits of each word are zero. This is the layout of KIVI's and VeloxQuant's packers
// (reference-spec B, "32//b codes per uint32"). For b = 1, 2, 4, 8 it equals MlxStream (and uses
// its code); for b = 3, 5, 6, 7 it wastes 2, 2, 2, 4 bits per word but lets a kernel decode any
// code from one word.
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "optiq/core/error.hpp"
#include "optiq/pack/concepts.hpp"
#include "optiq/pack/mlx_stream.hpp"

namespace optiq {
namespace detail {

inline void check_aligned_bits(int bits) {
    if (bits < 1 || bits > 8) fail<config_error>("Aligned: bits = ", bits, " is not in 1..8");
}

inline void check_aligned_codes(std::span<const std::uint8_t> codes, int bits) {
    std::uint8_t any = 0;
    for (const std::uint8_t c : codes) any = static_cast<std::uint8_t>(any | c);
    if ((any >> bits) == 0) return;
    for (std::size_t i = 0; i < codes.size(); ++i)
        if ((codes[i] >> bits) != 0)
            fail<value_error>("Aligned::pack: code ", static_cast<int>(codes[i]), " at index ", i, " does not fit in ",
                              bits, " bits");
}

template <int B, std::size_t... K>
[[nodiscard]] inline std::uint32_t aligned_pack_word(const std::uint8_t* c, std::index_sequence<K...>) noexcept {
    return ((static_cast<std::uint32_t>(c[K]) << (K * B)) | ...);
}

template <int B, std::size_t... K>
inline void aligned_unpack_word(std::uint32_t w, std::uint8_t* c, std::index_sequence<K...>) noexcept {
    constexpr std::uint32_t mask = (std::uint32_t{1} << B) - 1u;
    ((c[K] = static_cast<std::uint8_t>((w >> (K * B)) & mask)), ...);
}

template <int B>
inline void aligned_pack(std::span<const std::uint8_t> codes, std::span<std::uint32_t> words) noexcept {
    if constexpr (32 % B == 0) {
        stream_pack<B>(codes, words);  // the same layout when b divides 32
    } else {
        constexpr std::size_t per = 32 / B;
        const std::size_t n = codes.size(), full = n / per;
        const std::uint8_t* c = codes.data();
        for (std::size_t k = 0; k < full; ++k, c += per)
            words[k] = aligned_pack_word<B>(c, std::make_index_sequence<per>{});
        if (full * per < n) {
            std::uint32_t w = 0;
            for (std::size_t j = 0; full * per + j < n; ++j) w |= static_cast<std::uint32_t>(c[j]) << (j * B);
            words[full] = w;
        }
    }
}

template <int B>
inline void aligned_unpack(std::span<const std::uint32_t> words, std::span<std::uint8_t> codes) noexcept {
    if constexpr (32 % B == 0) {
        stream_unpack<B>(words, codes);
    } else {
        constexpr std::size_t per = 32 / B;
        constexpr std::uint32_t mask = (std::uint32_t{1} << B) - 1u;
        const std::size_t n = codes.size(), full = n / per;
        std::uint8_t* c = codes.data();
        for (std::size_t k = 0; k < full; ++k, c += per)
            aligned_unpack_word<B>(words[k], c, std::make_index_sequence<per>{});
        for (std::size_t j = 0; full * per + j < n; ++j)
            c[j] = static_cast<std::uint8_t>((words[full] >> (j * B)) & mask);
    }
}

}  // namespace detail

/// floor(32/b) codes per word. Aligned<3> fixes b at compile time; Aligned<> takes it at run time.
template <int Bits = dynamic_bits>
class Aligned {
    static_assert(Bits == dynamic_bits || (Bits >= 1 && Bits <= 8), "Aligned: Bits must be 1..8 or dynamic_bits");

public:
    Aligned() noexcept
        requires(Bits != dynamic_bits)
    = default;

    explicit Aligned(int bits)
        requires(Bits == dynamic_bits)
        : bits_(bits) {
        detail::check_aligned_bits(bits);
    }

    [[nodiscard]] int bits() const noexcept { return bits_; }

    /// Codes held by one word: floor(32/b).
    [[nodiscard]] std::size_t codes_per_word() const noexcept { return 32 / static_cast<std::size_t>(bits_); }

    /// ceil(n / floor(32/b)) words hold n codes.
    [[nodiscard]] std::size_t words_for(std::size_t n) const noexcept {
        const std::size_t per = codes_per_word();
        return (n + per - 1) / per;
    }

    /// Packs codes (each < 2^b) into words; words.size() must be words_for(codes.size()).
    void pack(std::span<const std::uint8_t> codes, std::span<std::uint32_t> words) const {
        if (words.size() != words_for(codes.size()))
            detail::fail<shape_error>("Aligned::pack: ", codes.size(), " codes at ", bits_, " bits need ",
                                      words_for(codes.size()), " words, got ", words.size());
        detail::check_aligned_codes(codes, bits_);
        if constexpr (Bits != dynamic_bits) {
            detail::aligned_pack<Bits>(codes, words);
        } else {
            detail::with_bits(bits_, "Aligned", [&](auto b) { detail::aligned_pack<decltype(b)::value>(codes, words); });
        }
    }

    /// Reads out.size() codes; words.size() must be words_for(out.size()).
    void unpack(std::span<const std::uint32_t> words, std::span<std::uint8_t> out) const {
        if (words.size() != words_for(out.size()))
            detail::fail<shape_error>("Aligned::unpack: ", out.size(), " codes at ", bits_, " bits need ",
                                      words_for(out.size()), " words, got ", words.size());
        if constexpr (Bits != dynamic_bits) {
            detail::aligned_unpack<Bits>(words, out);
        } else {
            detail::with_bits(bits_, "Aligned", [&](auto b) { detail::aligned_unpack<decltype(b)::value>(words, out); });
        }
    }

private:
    int bits_ = Bits;
};

static_assert(Packer<Aligned<3>> && Packer<Aligned<>>);

}  // namespace optiq

#pragma once
// MlxStream<Bits>: MLX's affine packing (reference-spec D "Packing"). The codes of a row form one
// LSB-first bit stream, read as little-endian uint32 words: code i occupies stream bits
// [i*b, (i+1)*b). For b = 1, 2, 4, 8 no code crosses a word; for b = 3, 5, 6 MLX packs 8 codes
// into 3 or 5 bytes and 4 codes into 3 bytes (get_pack_factor / get_bytes_per_pack in
// mlx/backend/cpu/quantized.cpp), which is the same continuous stream, so codes straddle words.
// b = 7 is not an MLX width but follows the same rule. Bits past the last code are zero.
//
// Speed: any 32 consecutive codes fill exactly b whole words, so b = 3, 5, 6, 7 work in blocks of
// 32 codes whose shifts are compile-time constants (fully unrolled, 8 codes per 64-bit store);
// b = 1, 2, 4 move 8 codes at a time between bytes and bits with shift-and-mask steps; b = 8 is
// a copy on little-endian hosts. A bit-accumulator loop handles the last partial block.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>

#include "optiq/core/error.hpp"
#include "optiq/pack/concepts.hpp"

namespace optiq {
namespace detail {

inline void check_stream_bits(int bits) {
    if (bits < 1 || bits > 8) fail<config_error>("MlxStream: bits = ", bits, " is not in 1..8");
}

/// Codes must fit in b bits: packing would otherwise spill into the neighbouring code.
inline void check_stream_codes(std::span<const std::uint8_t> codes, int bits) {
    std::uint8_t any = 0;
    for (const std::uint8_t c : codes) any = static_cast<std::uint8_t>(any | c);
    if ((any >> bits) == 0) return;
    for (std::size_t i = 0; i < codes.size(); ++i)
        if ((codes[i] >> bits) != 0)
            fail<value_error>("MlxStream::pack: code ", static_cast<int>(codes[i]), " at index ", i, " does not fit in ",
                              bits, " bits");
}

template <int B, std::size_t I>
inline void stream_put(std::uint32_t code, std::uint32_t* w) noexcept {
    constexpr std::size_t pos = I * B, word = pos / 32, shift = pos % 32;
    w[word] |= code << shift;
    if constexpr (shift + B > 32) w[word + 1] |= code >> (32 - shift);
}

template <int B, std::size_t I>
[[nodiscard]] inline std::uint8_t stream_get(const std::uint32_t* w) noexcept {
    constexpr std::size_t pos = I * B, word = pos / 32, shift = pos % 32;
    constexpr std::uint32_t mask = (std::uint32_t{1} << B) - 1u;
    std::uint32_t v = w[word] >> shift;
    if constexpr (shift + B > 32) v |= w[word + 1] << (32 - shift);
    return static_cast<std::uint8_t>(v & mask);
}

/// 32 codes -> B words.
template <int B, std::size_t... I>
inline void stream_pack_block(const std::uint8_t* c, std::uint32_t* out, std::index_sequence<I...>) noexcept {
    std::uint32_t w[B] = {};
    (stream_put<B, I>(c[I], w), ...);
    for (int j = 0; j < B; ++j) out[j] = w[j];
}

/// Codes 8G..8G+7 of a 32-code block, one per byte of the result (byte k = code 8G+k).
template <int B, std::size_t G, std::size_t... K>
[[nodiscard]] inline std::uint64_t stream_gather8(const std::uint32_t* w, std::index_sequence<K...>) noexcept {
    return ((static_cast<std::uint64_t>(stream_get<B, G * 8 + K>(w)) << (8 * K)) | ...);
}

/// Stores the 8 bytes of x at c, least significant first.
inline void store_bytes8(std::uint64_t x, std::uint8_t* c) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(c, &x, 8);
    } else {
        for (int k = 0; k < 8; ++k) c[k] = static_cast<std::uint8_t>(x >> (8 * k));
    }
}

/// Loads 8 bytes from c, c[0] least significant.
[[nodiscard]] inline std::uint64_t load_bytes8(const std::uint8_t* c) noexcept {
    std::uint64_t x = 0;
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(&x, c, 8);
    } else {
        for (int k = 0; k < 8; ++k) x |= static_cast<std::uint64_t>(c[k]) << (8 * k);
    }
    return x;
}

/// B words -> 32 codes, 8 codes per store.
template <int B>
inline void stream_unpack_block(const std::uint32_t* in, std::uint8_t* c) noexcept {
    // Words are read once into locals: stores through uint8_t* may alias them.
    std::uint32_t w[B];
    for (int j = 0; j < B; ++j) w[j] = in[j];
    constexpr auto eight = std::make_index_sequence<8>{};
    store_bytes8(stream_gather8<B, 0>(w, eight), c);
    store_bytes8(stream_gather8<B, 1>(w, eight), c + 8);
    store_bytes8(stream_gather8<B, 2>(w, eight), c + 16);
    store_bytes8(stream_gather8<B, 3>(w, eight), c + 24);
}

/// For b in {1, 2, 4}: spreads the 8 codes held in the low 8*b bits of x into the 8 bytes of
/// the result, byte k = code k (three halving steps of shift-or-mask).
template <int B>
[[nodiscard]] constexpr std::uint64_t spread_codes(std::uint64_t x) noexcept {
    static_assert(B == 1 || B == 2 || B == 4);
    x = (x | (x << (32 - 4 * B))) & (B == 4 ? 0x0000FFFF0000FFFFull : B == 2 ? 0x000000FF000000FFull : 0x0000000F0000000Full);
    x = (x | (x << (16 - 2 * B))) & (B == 4 ? 0x00FF00FF00FF00FFull : B == 2 ? 0x000F000F000F000Full : 0x0003000300030003ull);
    x = (x | (x << (8 - B))) & (B == 4 ? 0x0F0F0F0F0F0F0F0Full : B == 2 ? 0x0303030303030303ull : 0x0101010101010101ull);
    return x;
}

/// The inverse of spread_codes: 8 codes, one per byte, -> the low 8*b bits.
template <int B>
[[nodiscard]] constexpr std::uint64_t compress_codes(std::uint64_t x) noexcept {
    static_assert(B == 1 || B == 2 || B == 4);
    x = (x | (x >> (8 - B))) & (B == 4 ? 0x00FF00FF00FF00FFull : B == 2 ? 0x000F000F000F000Full : 0x0003000300030003ull);
    x = (x | (x >> (16 - 2 * B))) & (B == 4 ? 0x0000FFFF0000FFFFull : B == 2 ? 0x000000FF000000FFull : 0x0000000F0000000Full);
    x = (x | (x >> (32 - 4 * B))) & ((std::uint64_t{1} << (8 * B)) - 1u);
    return x;
}

template <int B>
inline void stream_pack(std::span<const std::uint8_t> codes, std::span<std::uint32_t> words) noexcept {
    const std::size_t n = codes.size();
    const std::uint8_t* c = codes.data();
    std::uint32_t* w = words.data();
    std::size_t done = 0;
    if constexpr (B == 8 && std::endian::native == std::endian::little) {
        // One code per byte: the stream is the codes themselves.
        if (n / 4 > 0) std::memcpy(w, c, (n / 4) * 4);
        done = (n / 4) * 4;
        w += n / 4;
        c += done;
    } else if constexpr (B == 1 || B == 2 || B == 4) {
        constexpr std::size_t per = 32 / B;
        const std::size_t full = n / per;
        for (std::size_t k = 0; k < full; ++k, ++w) {
            std::uint32_t v = 0;
            for (std::size_t j = 0; j < per / 8; ++j, c += 8)
                v |= static_cast<std::uint32_t>(compress_codes<B>(load_bytes8(c))) << (j * 8 * B);
            *w = v;
        }
        done = full * per;
    } else {
        const std::size_t blocks = n / 32;
        for (std::size_t k = 0; k < blocks; ++k, c += 32, w += B)
            stream_pack_block<B>(c, w, std::make_index_sequence<32>{});
        done = blocks * 32;
    }
    // Tail: less than one block (or word), accumulated bit by bit.
    std::uint64_t acc = 0;
    int filled = 0;
    for (std::size_t i = done; i < n; ++i) {
        acc |= static_cast<std::uint64_t>(*c++) << filled;
        filled += B;
        if (filled >= 32) {
            *w++ = static_cast<std::uint32_t>(acc);
            acc >>= 32;
            filled -= 32;
        }
    }
    if (filled > 0) *w = static_cast<std::uint32_t>(acc);
}

template <int B>
inline void stream_unpack(std::span<const std::uint32_t> words, std::span<std::uint8_t> codes) noexcept {
    const std::size_t n = codes.size();
    const std::uint32_t* w = words.data();
    std::uint8_t* c = codes.data();
    std::size_t done = 0;
    if constexpr (B == 8 && std::endian::native == std::endian::little) {
        if (n / 4 > 0) std::memcpy(c, w, (n / 4) * 4);
        done = (n / 4) * 4;
        w += n / 4;
        c += done;
    } else if constexpr (B == 1 || B == 2 || B == 4) {
        // Whole words, 8 codes at a time.
        constexpr std::size_t per = 32 / B;
        const std::size_t full = n / per;
        for (std::size_t k = 0; k < full; ++k, ++w)
            for (std::size_t j = 0; j < per / 8; ++j, c += 8) store_bytes8(spread_codes<B>(*w >> (j * 8 * B)), c);
        done = full * per;
    } else {
        const std::size_t blocks = n / 32;
        for (std::size_t k = 0; k < blocks; ++k, c += 32, w += B)
            stream_unpack_block<B>(w, c);
        done = blocks * 32;
    }
    constexpr std::uint64_t mask = (std::uint64_t{1} << B) - 1u;
    std::uint64_t acc = 0;
    int filled = 0;
    for (std::size_t i = done; i < n; ++i) {
        if (filled < B) {
            acc |= static_cast<std::uint64_t>(*w++) << filled;
            filled += 32;
        }
        *c++ = static_cast<std::uint8_t>(acc & mask);
        acc >>= B;
        filled -= B;
    }
}

}  // namespace detail

/// MLX's continuous LSB-first stream. MlxStream<4> fixes b at compile time; MlxStream<> (or
/// MlxStream<dynamic_bits>) takes it in the constructor for per-layer mixed precision.
template <int Bits = dynamic_bits>
class MlxStream {
    static_assert(Bits == dynamic_bits || (Bits >= 1 && Bits <= 8), "MlxStream: Bits must be 1..8 or dynamic_bits");

public:
    MlxStream() noexcept
        requires(Bits != dynamic_bits)
    = default;

    explicit MlxStream(int bits)
        requires(Bits == dynamic_bits)
        : bits_(bits) {
        detail::check_stream_bits(bits);
    }

    [[nodiscard]] int bits() const noexcept { return bits_; }

    /// ceil(n*b/32) words hold n codes.
    [[nodiscard]] std::size_t words_for(std::size_t n) const noexcept {
        return (n * static_cast<std::size_t>(bits_) + 31) / 32;
    }

    /// Packs codes (each < 2^b) into words; words.size() must be words_for(codes.size()).
    void pack(std::span<const std::uint8_t> codes, std::span<std::uint32_t> words) const {
        if (words.size() != words_for(codes.size()))
            detail::fail<shape_error>("MlxStream::pack: ", codes.size(), " codes at ", bits_, " bits need ",
                                      words_for(codes.size()), " words, got ", words.size());
        detail::check_stream_codes(codes, bits_);
        if constexpr (Bits != dynamic_bits) {
            detail::stream_pack<Bits>(codes, words);
        } else {
            detail::with_bits(bits_, "MlxStream", [&](auto b) { detail::stream_pack<decltype(b)::value>(codes, words); });
        }
    }

    /// Reads out.size() codes; words.size() must be words_for(out.size()).
    void unpack(std::span<const std::uint32_t> words, std::span<std::uint8_t> out) const {
        if (words.size() != words_for(out.size()))
            detail::fail<shape_error>("MlxStream::unpack: ", out.size(), " codes at ", bits_, " bits need ",
                                      words_for(out.size()), " words, got ", words.size());
        if constexpr (Bits != dynamic_bits) {
            detail::stream_unpack<Bits>(words, out);
        } else {
            detail::with_bits(bits_, "MlxStream", [&](auto b) { detail::stream_unpack<decltype(b)::value>(words, out); });
        }
    }

private:
    int bits_ = Bits;
};

static_assert(Packer<MlxStream<4>> && Packer<MlxStream<>>);

}  // namespace optiq

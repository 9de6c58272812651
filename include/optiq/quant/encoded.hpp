#pragma once
// The encoded form of a batch of vectors: packed code words per vector, per-vector side data
// (norms, residual norms, group scales/biases) and batch-level side data (KIVI's per-channel
// scales). Side values are held as floats already rounded to the declared storage type, and
// storage_bits() counts them at that width, so bits_per_coord() is what a cache would store.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"

namespace optiq {

/// Storage type of side data.
enum class SideType { f32, f16, bf16 };

[[nodiscard]] constexpr int side_type_bits(SideType t) noexcept { return t == SideType::f32 ? 32 : 16; }

[[nodiscard]] inline float round_side(float v, SideType t) noexcept {
    switch (t) {
        case SideType::f16: return round_to_f16(v);
        case SideType::bf16: return round_to_bf16(v);
        case SideType::f32: break;
    }
    return v;
}

struct EncodedBatch {
    std::size_t count = 0;             ///< number of vectors
    std::size_t dim = 0;               ///< coordinates per vector
    std::size_t words_per_vector = 0;  ///< packed uint32 words per vector
    std::size_t side_per_vector = 0;   ///< side values per vector
    SideType side_type = SideType::f16;
    std::vector<std::uint32_t> words;  ///< count * words_per_vector
    std::vector<float> side;           ///< count * side_per_vector
    std::vector<float> shared;         ///< batch-level side values

    [[nodiscard]] std::span<const std::uint32_t> words_of(std::size_t i) const {
        return {words.data() + i * words_per_vector, words_per_vector};
    }
    [[nodiscard]] std::span<std::uint32_t> words_of(std::size_t i) {
        return {words.data() + i * words_per_vector, words_per_vector};
    }
    [[nodiscard]] std::span<const float> side_of(std::size_t i) const {
        return {side.data() + i * side_per_vector, side_per_vector};
    }
    [[nodiscard]] std::span<float> side_of(std::size_t i) { return {side.data() + i * side_per_vector, side_per_vector}; }

    /// Bits this batch occupies: code words plus side data at its storage width.
    [[nodiscard]] std::size_t storage_bits() const noexcept {
        return words.size() * 32 + (side.size() + shared.size()) * static_cast<std::size_t>(side_type_bits(side_type));
    }
    [[nodiscard]] double bits_per_coord() const noexcept {
        return count * dim == 0 ? 0.0 : static_cast<double>(storage_bits()) / static_cast<double>(count * dim);
    }

    /// Allocates storage for n vectors.
    void resize(std::size_t n) {
        count = n;
        words.assign(n * words_per_vector, 0u);
        side.assign(n * side_per_vector, 0.0f);
    }
};

namespace detail {

/// Checks a batch of row vectors: non-empty, a whole number of rows, every value finite.
inline std::size_t check_batch(std::span<const float> x, std::size_t dim, const char* what) {
    if (dim == 0) fail<shape_error>(what, ": dimension is 0");
    if (x.empty()) fail<value_error>(what, ": empty input");
    if (x.size() % dim != 0)
        fail<shape_error>(what, ": input of ", x.size(), " floats is not a whole number of ", dim, "-vectors");
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!std::isfinite(x[i]))
            fail<value_error>(what, ": non-finite value ", x[i], " at vector ", i / dim, ", coordinate ", i % dim);
    }
    return x.size() / dim;
}

inline void check_decode_target(const EncodedBatch& b, std::span<const float> out, std::size_t dim, const char* what) {
    if (b.dim != dim) fail<shape_error>(what, ": batch has dimension ", b.dim, ", quantizer has ", dim);
    if (out.size() != b.count * dim)
        fail<shape_error>(what, ": output holds ", out.size(), " floats, batch needs ", b.count * dim);
}

}  // namespace detail
}  // namespace optiq

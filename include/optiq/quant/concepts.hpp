#pragma once
// The slots a Quantizer is built from, and the VectorQuantizer concept every method in the
// zoo (TurboQuant, RVQ, QJL, PolarQuant, KIVI, MLX affine) satisfies.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "optiq/codebook/concepts.hpp"
#include "optiq/pack/concepts.hpp"
#include "optiq/precondition/concepts.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq {

/// A method that encodes batches of d-vectors and estimates inner products with a
/// full-precision query directly from the encoded form.
template <class Q>
concept VectorQuantizer = requires(const Q& q, std::span<const float> x, const EncodedBatch& b,
                                   std::span<float> out, const typename Q::query_type& qs) {
    typename Q::query_type;
    { q.dim() } -> std::convertible_to<std::size_t>;
    { q.bits() } -> std::convertible_to<int>;
    { q.name() } -> std::convertible_to<std::string>;
    { q.encode(x) } -> std::same_as<EncodedBatch>;  // x: n row vectors of dim()
    q.decode(b, out);                                // out: b.count * dim()
    { q.prepare_query(x) } -> std::same_as<typename Q::query_type>;  // x: one vector
    q.inner_products(qs, b, out);                    // out: b.count estimates of <query, x_i>
};

/// A VectorQuantizer whose encoding is per vector (no state shared between vectors): one vector
/// encodes into, and decodes from, caller storage of words_per_vector() words and
/// side_per_vector() side floats, with a reusable scratch (no allocation per call). encode(x)
/// is then exactly these records, vector after vector (the side values rounded to side_type()).
template <class Q>
concept VectorCodec =
    VectorQuantizer<Q> && requires(const Q& q, std::span<const float> x, std::span<std::uint32_t> words,
                                   std::span<float> side, std::span<const std::uint32_t> cwords,
                                   std::span<const float> cside, std::span<float> out,
                                   typename Q::scratch_type& scratch) {
        typename Q::scratch_type;
        { q.make_scratch() } -> std::same_as<typename Q::scratch_type>;
        { q.words_per_vector() } -> std::convertible_to<std::size_t>;
        { q.side_per_vector() } -> std::convertible_to<std::size_t>;
        { q.side_type() } -> std::same_as<SideType>;
        q.encode_vector(x, words, side, scratch);
        q.decode_vector(cwords, cside, out, scratch);
    };

namespace detail {

/// The batch encode of a per-vector method: checks x, then enc(x_i, words_i, side_i, scratch, i)
/// for every row (i for error messages), one scratch for all.
template <class Q, class Enc>
[[nodiscard]] EncodedBatch encode_rows(const Q& q, std::span<const float> x, const char* what, Enc&& enc) {
    const std::size_t d = q.dim(), n = check_batch(x, d, what);
    EncodedBatch b = q.make_batch(n);
    auto scratch = q.make_scratch();
    for (std::size_t i = 0; i < n; ++i) enc(x.subspan(i * d, d), b.words_of(i), b.side_of(i), scratch, i);
    return b;
}

/// The batch decode of a per-vector method (b's layout already checked against q).
template <class Q>
void decode_rows(const Q& q, const EncodedBatch& b, std::span<float> out) {
    const std::size_t d = q.dim();
    auto scratch = q.make_scratch();
    for (std::size_t i = 0; i < b.count; ++i)
        q.decode_vector(b.words_of(i), b.side_of(i), out.subspan(i * d, d), scratch);
}

}  // namespace detail

}  // namespace optiq

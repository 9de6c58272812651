#pragma once
// The slots a Quantizer is built from, and the VectorQuantizer concept every method in the
// zoo (TurboQuant, RVQ, QJL, PolarQuant, KIVI, MLX affine) satisfies.
#include <concepts>
#include <cstddef>
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

}  // namespace optiq

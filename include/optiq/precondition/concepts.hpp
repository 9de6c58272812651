#pragma once
// The Preconditioner slot: an orthogonal transform Π on d-vectors and its inverse Πᵀ.
// forward/inverse accept in and out referring to the same storage.
#include <concepts>
#include <cstddef>
#include <span>

namespace optiq {

template <class P>
concept Preconditioner = std::copy_constructible<P> &&
    requires(const P& p, std::span<const float> in, std::span<float> out) {
        { p.dim() } -> std::convertible_to<std::size_t>;
        p.forward(in, out);  // out = Π in
        p.inverse(in, out);  // out = Πᵀ in
    };

}  // namespace optiq

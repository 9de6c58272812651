#pragma once
// The Codebook slot: maps one scalar to a b-bit code and back.
//
// A codebook may be data-adaptive per group of coordinates (MLX affine fits a scale and a
// bias to each group of g values); such codebooks say how many floats of side data a group
// needs (side_floats), fit them with fit(group), and use them in encode/decode. Fixed
// codebooks (Lloyd-Max, sign) have side_floats == 0 and ignore the side argument.
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace optiq {

template <class C>
concept Codebook = std::copy_constructible<C> &&
    requires(const C& c, std::span<const float> group, float x, std::uint32_t code,
             const typename C::side_type& side) {
        typename C::side_type;  // std::array<float, C::side_floats>
        requires std::same_as<typename C::side_type, std::array<float, C::side_floats>>;
        { C::wants_unit_norm } -> std::convertible_to<bool>;  // quantize x/||x|| and store ||x||
        { c.bits() } -> std::convertible_to<int>;
        { c.group_size(std::size_t{}) } -> std::convertible_to<std::size_t>;  // for a vector of dim d
        { c.fit(group) } -> std::same_as<typename C::side_type>;
        { c.encode(x, side) } -> std::convertible_to<std::uint32_t>;
        { c.decode(code, side) } -> std::convertible_to<float>;
    };

/// A codebook without side data whose reconstruction values are a fixed table.
template <class C>
concept FixedCodebook = Codebook<C> && C::side_floats == 0 && requires(const C& c) {
    { c.centroids() } -> std::convertible_to<std::span<const float>>;
};

}  // namespace optiq

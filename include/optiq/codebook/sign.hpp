#pragma once
// Sign: the 1-bit codebook {−m, +m}. Code 0 is −m (x < 0), code 1 is +m (x >= 0, so 0 and −0
// code as +m). With m the b = 1 Lloyd-Max centroid of a rotated unit vector's coordinate law
// this is TurboQuant-MSE at one bit; the magnitude is the only state, so it is cheaper to build
// and to copy than LloydMax<...>(..., 1) and needs no table.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>

#include "optiq/codebook/concepts.hpp"
#include "optiq/core/error.hpp"

namespace optiq {

class Sign {
public:
    using side_type = std::array<float, 0>;
    static constexpr std::size_t side_floats = 0;
    /// Sign codes coordinates of unit vectors (the Quantizer stores ||x|| beside them): a single
    /// magnitude only suits values of a known scale.
    static constexpr bool wants_unit_norm = true;

    explicit Sign(float magnitude) : centroids_{-magnitude, magnitude} {
        if (!(std::isfinite(magnitude) && magnitude > 0.0f))
            detail::fail<config_error>("Sign: magnitude must be finite and positive, got ", magnitude);
    }

    /// The b = 1 Lloyd-Max centroid of the exact coordinate law of a unit d-vector:
    /// m = E|x_1| = Γ(d/2) / (√π Γ((d+1)/2)) (reference-spec A, Lemma 1), the value
    /// LloydMax<SphereCoordinateDensity>(d, 1) has. It tends to sqrt(2/π)/sqrt(d) from
    /// above as d grows (d = 128: 0.070662 against 0.070524).
    [[nodiscard]] static Sign for_unit_vectors(std::size_t d) {
        if (d < 2) detail::fail<config_error>("Sign::for_unit_vectors: dimension d must be >= 2, got ", d);
        // Γ(d/2)/Γ((d+1)/2) by r(d+2) = r(d)·(d/(d+1)) from r(1) = √π and r(2) = 1/(√π/2) = 2/√π.
        double r = (d % 2 == 1) ? 1.0 / std::numbers::inv_sqrtpi : 2.0 * std::numbers::inv_sqrtpi;
        for (std::size_t k = (d % 2 == 1) ? 1 : 2; k < d; k += 2)
            r *= static_cast<double>(k) / static_cast<double>(k + 1);
        return Sign(static_cast<float>(r * std::numbers::inv_sqrtpi));
    }

    /// The b = 1 Lloyd-Max centroid of N(0, 1/d): sqrt(2/π)/sqrt(d) (TurboQuant Sec. 3.1).
    [[nodiscard]] static Sign for_unit_vectors_gaussian(std::size_t d) {
        if (d == 0) detail::fail<config_error>("Sign::for_unit_vectors_gaussian: dimension d is 0");
        return Sign(static_cast<float>(std::sqrt(2.0 / std::numbers::pi / static_cast<double>(d))));
    }

    [[nodiscard]] int bits() const noexcept { return 1; }
    [[nodiscard]] float magnitude() const noexcept { return centroids_[1]; }
    [[nodiscard]] std::size_t group_size(std::size_t d) const noexcept { return d; }
    [[nodiscard]] side_type fit(std::span<const float>) const noexcept { return {}; }

    [[nodiscard]] std::uint32_t encode(float x, const side_type& = {}) const noexcept { return x < 0.0f ? 0u : 1u; }

    [[nodiscard]] float decode(std::uint32_t code, const side_type& = {}) const {
        if (code > 1) detail::fail<value_error>("Sign::decode: code ", code, " out of range for 1 bit");
        return centroids_[code];
    }

    [[nodiscard]] std::span<const float> centroids() const noexcept { return centroids_; }

private:
    std::array<float, 2> centroids_;
};

static_assert(FixedCodebook<Sign>);

}  // namespace optiq

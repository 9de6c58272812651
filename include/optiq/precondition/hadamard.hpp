#pragma once
// Randomized Hadamard transform: Π = H D / √n, with D = diag(±1) random signs and H the
// n x n Sylvester-Hadamard matrix (entries ±1, H = Hᵀ, H H = n I), applied by the fast
// Walsh-Hadamard transform in O(d log d). This is the cheap stand-in for a Haar rotation used by
// QuaRot, VeloxQuant (`preconditioners/rotation.py`, one normalised H·D round) and the
// TurboQuant/PolarQuant reproductions (reference-spec A); it is orthogonal but not exactly Haar.
//
// Specified so the same seed gives the same transform everywhere:
//   signs: s_i = Rng(seed).sign() for i = 0 .. d-1 in order;
//   blocks: d is split into its binary digits, largest first (96 = 64 + 32, 80 = 64 + 16,
//     7 = 4 + 2 + 1); block b covers the next n_b coordinates and is transformed on its own,
//     so Π is block-diagonal and exactly orthogonal for every d;
//   forward:  y_b = H_{n_b} (D x)_b / √n_b;   inverse: x = D (H_{n_b} y_b / √n_b)  (H symmetric).
// The butterflies only add and subtract, signs are exact, and the scale multiply comes last, so
// results are bitwise identical on every IEEE platform.
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/precondition/identity.hpp"  // detail::check_precondition_io / _dim

namespace optiq {

namespace detail {

/// In-place unnormalised fast Walsh-Hadamard transform of n = 2^k floats (Sylvester order).
/// The first three butterfly stages (h = 1, 2, 4) run fused on blocks of 8 in registers: the
/// generic loop's inner trip counts of 1, 2 and 4 do not vectorize and dominated the cost. The
/// same additions happen on the same operands in the same stage order, so results are
/// bit-identical to the plain stage-by-stage transform.
inline void fwht(float* v, std::size_t n) noexcept {
    std::size_t h = 1;
    if (n >= 8) {
        for (std::size_t i = 0; i < n; i += 8) {
            float* p = v + i;
            const float b0 = p[0] + p[1], b1 = p[0] - p[1], b2 = p[2] + p[3], b3 = p[2] - p[3];
            const float b4 = p[4] + p[5], b5 = p[4] - p[5], b6 = p[6] + p[7], b7 = p[6] - p[7];
            const float c0 = b0 + b2, c2 = b0 - b2, c1 = b1 + b3, c3 = b1 - b3;
            const float c4 = b4 + b6, c6 = b4 - b6, c5 = b5 + b7, c7 = b5 - b7;
            p[0] = c0 + c4;
            p[4] = c0 - c4;
            p[1] = c1 + c5;
            p[5] = c1 - c5;
            p[2] = c2 + c6;
            p[6] = c2 - c6;
            p[3] = c3 + c7;
            p[7] = c3 - c7;
        }
        h = 8;
    }
    for (; h < n; h *= 2) {
        for (std::size_t i = 0; i < n; i += 2 * h) {
            float* a = v + i;
            float* b = v + i + h;
            for (std::size_t j = 0; j < h; ++j) {
                const float x = a[j];
                const float y = b[j];
                a[j] = x + y;
                b[j] = x - y;
            }
        }
    }
}

}  // namespace detail

class RandomizedHadamard {
public:
    RandomizedHadamard(std::size_t dim, std::uint64_t seed) : dim_(dim), seed_(seed) {
        detail::check_precondition_dim(dim, "RandomizedHadamard");
        auto s = std::make_shared<std::vector<float>>(dim);
        Rng rng(seed);
        for (auto& v : *s) v = rng.sign();
        signs_ = std::move(s);
        for (std::size_t rest = dim; rest != 0;) {
            const std::size_t n = std::bit_floor(rest);
            blocks_.push_back(n);
            rest -= n;
        }
    }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
    /// The diagonal of D, ±1 per coordinate.
    [[nodiscard]] std::span<const float> signs() const noexcept { return *signs_; }
    /// Block sizes, largest first; they sum to dim().
    [[nodiscard]] std::span<const std::size_t> blocks() const noexcept { return blocks_; }

    /// out = H D in / √n per block. in and out may be the same or overlapping storage: in is
    /// moved into out first and everything after works in place.
    void forward(std::span<const float> in, std::span<float> out) const {
        detail::check_precondition_io(dim_, in.size(), out.size(), "RandomizedHadamard::forward");
        if (in.data() != out.data()) std::memmove(out.data(), in.data(), dim_ * sizeof(float));
        const float* s = signs_->data();
        for (std::size_t i = 0; i < dim_; ++i) out[i] *= s[i];
        std::size_t off = 0;
        for (const std::size_t n : blocks_) {
            float* v = out.data() + off;
            detail::fwht(v, n);
            const float scale = block_scale(n);
            for (std::size_t j = 0; j < n; ++j) v[j] *= scale;
            off += n;
        }
    }

    /// out = D H in / √n per block (the transpose of forward).
    void inverse(std::span<const float> in, std::span<float> out) const {
        detail::check_precondition_io(dim_, in.size(), out.size(), "RandomizedHadamard::inverse");
        if (in.data() != out.data()) std::memmove(out.data(), in.data(), dim_ * sizeof(float));
        const float* s = signs_->data();
        std::size_t off = 0;
        for (const std::size_t n : blocks_) {
            float* v = out.data() + off;
            detail::fwht(v, n);
            const float scale = block_scale(n);
            for (std::size_t j = 0; j < n; ++j) v[j] *= scale * s[off + j];
            off += n;
        }
    }

private:
    // 1/√n rounded once from double (sqrt is correctly rounded, so this is the same float everywhere).
    [[nodiscard]] static float block_scale(std::size_t n) noexcept {
        return static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
    }

    std::size_t dim_;
    std::uint64_t seed_;
    std::shared_ptr<const std::vector<float>> signs_;
    std::vector<std::size_t> blocks_;
};

}  // namespace optiq

#pragma once
// Haar-random orthogonal rotation (TurboQuant, arXiv 2504.19874 Sec. 2; reference-spec A):
// Q from the QR factorisation of a d x d matrix G of i.i.d. N(0,1) entries, with Q's columns
// multiplied by sign(diag R). The sign fix makes the factorisation the unique one with R_kk > 0,
// and that Q is exactly Haar-distributed on O(d) (Mezzadri 2007, "How to generate random
// matrices from the classical compact groups", Sec. 5); without it Q is biased by the QR
// routine's sign convention.
//
// Specified so the same seed gives the same matrix everywhere:
//   G[i][j] = Rng(seed).normal(), drawn row-major (i outer, j inner);
//   QR by Householder reflections in double (reflector H_k = I - 2 v vᵀ with R_kk = -sign(x_0)‖x‖),
//   Q = H_0 H_1 ... H_{d-1} diag(sign R_kk), rounded to float and stored row-major.
// forward(x) = Q x, inverse(y) = Qᵀ y.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/precondition/identity.hpp"  // detail::check_precondition_io / _dim

namespace optiq {

namespace detail {

/// The sign-fixed Q of the Householder QR of the row-major d x d matrix a (overwritten).
/// Returned row-major in double.
inline std::vector<double> haar_q_from_gaussian(std::vector<double>& a, std::size_t d) {
    std::vector<double> vs(d * d, 0.0);  // reflector k in vs[k*d + k .. k*d + d)
    std::vector<double> r_sign(d, 1.0);
    std::vector<double> w(d);
    for (std::size_t k = 0; k < d; ++k) {
        double* v = vs.data() + k * d;
        double norm2 = 0.0;
        for (std::size_t i = k; i < d; ++i) {
            v[i] = a[i * d + k];
            norm2 += v[i] * v[i];
        }
        const double norm = std::sqrt(norm2);
        if (norm == 0.0) continue;  // column already zero below the diagonal: H_k = I, R_kk = 0
        // alpha = -sign(x_0)‖x‖ avoids cancellation in v_0 = x_0 - alpha (Golub & Van Loan 5.1.2).
        const double alpha = v[k] >= 0.0 ? -norm : norm;
        r_sign[k] = alpha > 0.0 ? 1.0 : -1.0;
        v[k] -= alpha;
        double vnorm2 = 0.0;
        for (std::size_t i = k; i < d; ++i) vnorm2 += v[i] * v[i];
        const double inv = 1.0 / std::sqrt(vnorm2);
        for (std::size_t i = k; i < d; ++i) v[i] *= inv;
        // A[k:, k:] -= 2 v (vᵀ A[k:, k:]), row by row so the inner loops are contiguous.
        std::fill(w.begin() + static_cast<std::ptrdiff_t>(k), w.end(), 0.0);
        for (std::size_t i = k; i < d; ++i) {
            const double vi = v[i];
            const double* row = a.data() + i * d;
            for (std::size_t j = k; j < d; ++j) w[j] += vi * row[j];
        }
        for (std::size_t i = k; i < d; ++i) {
            const double s = 2.0 * v[i];
            double* row = a.data() + i * d;
            for (std::size_t j = k; j < d; ++j) row[j] -= s * w[j];
        }
    }
    // Q = H_0 (H_1 (... (H_{d-1} I))): apply the reflectors to I from the last one back.
    std::vector<double> q(d * d, 0.0);
    for (std::size_t i = 0; i < d; ++i) q[i * d + i] = 1.0;
    for (std::size_t kk = d; kk-- > 0;) {
        const double* v = vs.data() + kk * d;
        std::fill(w.begin(), w.end(), 0.0);
        for (std::size_t i = kk; i < d; ++i) {
            const double vi = v[i];
            const double* row = q.data() + i * d;
            for (std::size_t j = 0; j < d; ++j) w[j] += vi * row[j];
        }
        for (std::size_t i = kk; i < d; ++i) {
            const double s = 2.0 * v[i];
            double* row = q.data() + i * d;
            for (std::size_t j = 0; j < d; ++j) row[j] -= s * w[j];
        }
    }
    for (std::size_t i = 0; i < d; ++i) {
        for (std::size_t j = 0; j < d; ++j) q[i * d + j] *= r_sign[j];
    }
    return q;
}

}  // namespace detail

class HaarRotation {
public:
    /// Largest dimension accepted: the dense matrix takes d² floats and O(d³) to build.
    static constexpr std::size_t max_dim = 16384;

    HaarRotation(std::size_t dim, std::uint64_t seed) : dim_(dim), seed_(seed) {
        detail::check_precondition_dim(dim, "HaarRotation");
        if (dim > max_dim)
            detail::fail<shape_error>("HaarRotation: dimension ", dim, " exceeds the dense-rotation limit ", max_dim,
                                      " (use RandomizedHadamard)");
        std::vector<double> g(dim * dim);
        Rng rng(seed);
        for (auto& v : g) v = rng.normal();
        const std::vector<double> q = detail::haar_q_from_gaussian(g, dim);
        auto m = std::make_shared<std::vector<float>>(dim * dim);
        for (std::size_t i = 0; i < q.size(); ++i) (*m)[i] = static_cast<float>(q[i]);
        q_ = std::move(m);
    }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
    /// Q, row-major d x d: entry (i, j) at [i * dim() + j]. forward(x) = Q x.
    [[nodiscard]] std::span<const float> matrix() const noexcept { return *q_; }

    /// out = Q in. in and out may be the same storage.
    void forward(std::span<const float> in, std::span<float> out) const {
        detail::check_precondition_io(dim_, in.size(), out.size(), "HaarRotation::forward");
        std::vector<float> copy;
        const float* x = source(in, out, copy);
        const float* q = q_->data();
        for (std::size_t i = 0; i < dim_; ++i) out[i] = dot(q + i * dim_, x, dim_);
    }

    /// out = Qᵀ in, as a sum of Q's rows scaled by in (contiguous, vectorisable axpy).
    void inverse(std::span<const float> in, std::span<float> out) const {
        detail::check_precondition_io(dim_, in.size(), out.size(), "HaarRotation::inverse");
        std::vector<float> copy;
        const float* y = source(in, out, copy);
        const float* q = q_->data();
        float* o = out.data();
        std::fill(o, o + dim_, 0.0f);
        for (std::size_t i = 0; i < dim_; ++i) {
            const float yi = y[i];
            const float* row = q + i * dim_;
            for (std::size_t j = 0; j < dim_; ++j) o[j] += yi * row[j];
        }
    }

private:
    // Returns in's data, or a copy of it when out overlaps in (the matvec reads all of in
    // after writing the first output).
    [[nodiscard]] const float* source(std::span<const float> in, std::span<float> out, std::vector<float>& copy) const {
        const float* ib = in.data();
        const float* ob = out.data();
        // std::less_equal gives a total order even on pointers into unrelated arrays.
        const std::less_equal<const float*> le;
        const bool overlap = !(le(ob + dim_, ib) || le(ib + dim_, ob));
        if (!overlap) return ib;
        copy.assign(ib, ib + dim_);
        return copy.data();
    }

    // Eight independent partial sums: a fixed summation order the compiler can map onto
    // vector lanes without -ffast-math.
    [[nodiscard]] static float dot(const float* a, const float* b, std::size_t n) noexcept {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::size_t j = 0;
        for (; j + 8 <= n; j += 8) {
            for (std::size_t k = 0; k < 8; ++k) acc[k] += a[j + k] * b[j + k];
        }
        for (std::size_t k = 0; j < n; ++j, ++k) acc[k] += a[j] * b[j];
        return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }

    std::size_t dim_;
    std::uint64_t seed_;
    std::shared_ptr<const std::vector<float>> q_;
};

}  // namespace optiq

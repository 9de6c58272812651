#pragma once
// Scalar densities that Lloyd-Max codebooks (codebook/lloyd_max.hpp) are designed for.
//
// A Density is a probability density on a bounded support [lo, hi] together with what the
// Lloyd-Max solver needs to solve it once and reuse the table:
//   - scale() and standardized(): the density is scale() times the standardized one (same type,
//     scale 1), so centroids scale linearly and the MSE quadratically; only the standardized
//     table is solved and memoised;
//   - shape(): the parameter that, with the type and the bit width, determines the standardized
//     table (d for the sphere-coordinate law, 0 for pure scale families) — the memo key;
//   - for_unit_vectors: whether a codebook on this density quantizes coordinates of unit vectors
//     (the Quantizer then stores ||x|| and codes x/||x||).
// A density may also supply closed forms, which the solver uses when present:
//   - cell_moments(a, b) -> CellMoments{∫_a^b f, ∫_a^b x f};
//   - integrate(a, b, g) -> ∫_a^b g(x) f(x) dx, for densities whose pdf is awkward for plain
//     Gauss-Legendre in x (endpoint singularities, sharp peaks).
// Otherwise the solver integrates pdf() with composite Gauss-Legendre in x.
#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <numbers>

#include "optiq/core/error.hpp"

namespace optiq {

template <class D>
concept Density = std::copy_constructible<D> && requires(const D& f, double x) {
    { D::for_unit_vectors } -> std::convertible_to<bool>;
    { f.pdf(x) } -> std::convertible_to<double>;
    { f.lo() } -> std::convertible_to<double>;
    { f.hi() } -> std::convertible_to<double>;
    { f.scale() } -> std::convertible_to<double>;
    { f.shape() } -> std::convertible_to<double>;
    { f.standardized() } -> std::same_as<D>;
};

/// Probability mass and first moment of a density over one cell [a, b].
struct CellMoments {
    double mass = 0.0;
    double first = 0.0;
};

namespace detail {

/// Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1], found by Newton's method on
/// the Legendre recurrence (Golub-Welsch would do too; this is the textbook route, exact to a few
/// ulps for n <= 64).
template <std::size_t N>
struct GaussLegendre {
    std::array<double, N> x{};
    std::array<double, N> w{};

    GaussLegendre() {
        const double n = static_cast<double>(N);
        for (std::size_t i = 0; i < (N + 1) / 2; ++i) {
            // Tricomi's initial guess for the i-th largest root.
            double z = std::cos(std::numbers::pi * (static_cast<double>(i) + 0.75) / (n + 0.5));
            double dp = 0.0;
            for (int it = 0; it < 100; ++it) {
                double p0 = 1.0, p1 = z;
                for (std::size_t k = 2; k <= N; ++k) {
                    const double kk = static_cast<double>(k);
                    const double p2 = ((2.0 * kk - 1.0) * z * p1 - (kk - 1.0) * p0) / kk;
                    p0 = p1;
                    p1 = p2;
                }
                dp = n * (z * p1 - p0) / (z * z - 1.0);
                const double dz = p1 / dp;
                z -= dz;
                if (std::fabs(dz) < 1e-16) break;
            }
            // Recompute the derivative at the converged root for the weight.
            double p0 = 1.0, p1 = z;
            for (std::size_t k = 2; k <= N; ++k) {
                const double kk = static_cast<double>(k);
                const double p2 = ((2.0 * kk - 1.0) * z * p1 - (kk - 1.0) * p0) / kk;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (z * p1 - p0) / (z * z - 1.0);
            const double wi = 2.0 / ((1.0 - z * z) * dp * dp);
            x[i] = -z;
            x[N - 1 - i] = z;
            w[i] = wi;
            w[N - 1 - i] = wi;
        }
    }
};

/// The 20-point rule: exact for polynomials of degree 39, ample for the smooth integrands here
/// when panels are no wider than about one standard deviation of the density.
inline const GaussLegendre<20>& gauss_legendre20() {
    static const GaussLegendre<20> rule;
    return rule;
}

/// ∫_a^b g(x) dx by composite 20-point Gauss-Legendre on panels no wider than max_panel.
template <class G>
[[nodiscard]] double composite_gauss_legendre(double a, double b, double max_panel, G&& g) {
    if (!(b > a)) return 0.0;
    const auto& rule = gauss_legendre20();
    const double panels_d = std::ceil((b - a) / max_panel);
    const std::size_t panels = panels_d < 1.0 ? 1 : static_cast<std::size_t>(panels_d);
    const double h = (b - a) / static_cast<double>(panels);
    double total = 0.0;
    for (std::size_t p = 0; p < panels; ++p) {
        const double mid = a + (static_cast<double>(p) + 0.5) * h;
        double s = 0.0;
        for (std::size_t i = 0; i < rule.x.size(); ++i) s += rule.w[i] * g(mid + 0.5 * h * rule.x[i]);
        total += 0.5 * h * s;
    }
    return total;
}

/// Φ(b) − Φ(a) for the standard normal, through erfc on the side where it does not cancel.
[[nodiscard]] inline double normal_mass(double a, double b) noexcept {
    if (b <= 0.0) return normal_mass(-b, -a);
    if (a >= 0.0) return 0.5 * (std::erfc(a / std::numbers::sqrt2) - std::erfc(b / std::numbers::sqrt2));
    return 1.0 - 0.5 * (std::erfc(-a / std::numbers::sqrt2) + std::erfc(b / std::numbers::sqrt2));
}

[[nodiscard]] inline double normal_pdf(double x) noexcept {
    // 1/sqrt(2π) = (2/sqrt(π)) / (2 sqrt(2)).
    return std::exp(-0.5 * x * x) * std::numbers::inv_sqrtpi / std::numbers::sqrt2;
}

}  // namespace detail

/// N(0, sigma²), the large-d approximation of a rotated unit vector's coordinate law with
/// sigma = 1/sqrt(d) (TurboQuant Sec. 3.1). The support is ±12 sigma: the mass outside is
/// 3.6e-33, far below double precision, so truncation changes no digit of any table.
class GaussianDensity {
public:
    static constexpr bool for_unit_vectors = true;
    static constexpr double half_width = 12.0;  ///< support is ±half_width · sigma

    explicit GaussianDensity(double sigma = 1.0) : sigma_(sigma) {
        if (!(std::isfinite(sigma) && sigma > 0.0))
            detail::fail<config_error>("GaussianDensity: sigma must be finite and positive, got ", sigma);
    }
    /// N(0, 1/d): the coordinate law of a random rotation of a unit d-vector, for large d.
    [[nodiscard]] static GaussianDensity for_dim(std::size_t d) {
        if (d == 0) detail::fail<config_error>("GaussianDensity::for_dim: dimension d is 0");
        return GaussianDensity(1.0 / std::sqrt(static_cast<double>(d)));
    }

    [[nodiscard]] double sigma() const noexcept { return sigma_; }
    [[nodiscard]] double pdf(double x) const noexcept { return detail::normal_pdf(x / sigma_) / sigma_; }
    [[nodiscard]] double lo() const noexcept { return -half_width * sigma_; }
    [[nodiscard]] double hi() const noexcept { return half_width * sigma_; }
    [[nodiscard]] double scale() const noexcept { return sigma_; }
    [[nodiscard]] double shape() const noexcept { return 0.0; }
    [[nodiscard]] GaussianDensity standardized() const { return GaussianDensity(1.0); }

    /// Closed forms: mass Φ(b/σ) − Φ(a/σ); first moment σ(φ(a/σ) − φ(b/σ)).
    [[nodiscard]] CellMoments cell_moments(double a, double b) const noexcept {
        const double u = a / sigma_, v = b / sigma_;
        return {detail::normal_mass(u, v), sigma_ * (detail::normal_pdf(u) - detail::normal_pdf(v))};
    }

private:
    double sigma_;
};

/// The exact law of one coordinate of a uniform point on the unit sphere S^{d-1}
/// (TurboQuant Lemma 1; reference-spec A):
///   f_d(x) = Γ(d/2) / (√π Γ((d−1)/2)) · (1 − x²)^{(d−3)/2} on [−1, 1],
/// i.e. (x+1)/2 ~ Beta((d−1)/2, (d−1)/2); mean 0, variance 1/d.
class SphereCoordinateDensity {
public:
    static constexpr bool for_unit_vectors = true;

    explicit SphereCoordinateDensity(std::size_t d) : d_(d) {
        if (d < 2) detail::fail<config_error>("SphereCoordinateDensity: dimension d must be >= 2, got ", d);
        // Γ(d/2)/Γ((d−1)/2) by the recurrence r(d+2) = r(d)·d/(d−1) from r(2) = 1/√π and
        // r(3) = √π/2: exact to rounding for every d, with no lgamma (whose signgam is global state).
        double r = (d % 2 == 0) ? std::numbers::inv_sqrtpi : 0.5 / std::numbers::inv_sqrtpi;
        for (std::size_t k = (d % 2 == 0) ? 2 : 3; k < d; k += 2)
            r *= static_cast<double>(k) / static_cast<double>(k - 1);
        norm_ = r * std::numbers::inv_sqrtpi;
    }

    [[nodiscard]] std::size_t dim() const noexcept { return d_; }
    [[nodiscard]] double pdf(double x) const noexcept {
        if (!(x > -1.0 && x < 1.0)) return 0.0;
        return norm_ * std::pow(1.0 - x * x, 0.5 * (static_cast<double>(d_) - 3.0));
    }
    [[nodiscard]] double lo() const noexcept { return -1.0; }
    [[nodiscard]] double hi() const noexcept { return 1.0; }
    [[nodiscard]] double scale() const noexcept { return 1.0; }
    [[nodiscard]] double shape() const noexcept { return static_cast<double>(d_); }
    [[nodiscard]] SphereCoordinateDensity standardized() const { return *this; }

    /// ∫_a^b g(x) f_d(x) dx with x = sin θ: f_d(x) dx = c_d cos^{d−2}θ dθ, which is smooth on
    /// [−π/2, π/2] for every d >= 2 (the (1 − x²)^{(d−3)/2} factor has endpoint singularities in
    /// x for d = 2 and d = 4, 6, ... that would stall Gauss-Legendre). Panels are at most
    /// 1/sqrt(d) wide, about one standard deviation of the peak cos^{d−2}θ ≈ exp(−(d−2)θ²/2).
    template <class G>
    [[nodiscard]] double integrate(double a, double b, G&& g) const {
        const double ta = std::asin(clamp_unit(a)), tb = std::asin(clamp_unit(b));
        const double e = static_cast<double>(d_) - 2.0;
        const double panel = std::min(0.25, 1.0 / std::sqrt(static_cast<double>(d_)));
        return norm_ * detail::composite_gauss_legendre(ta, tb, panel, [&](double t) {
                   const double c = std::cos(t);
                   return g(std::sin(t)) * (e == 0.0 ? 1.0 : std::pow(c, e));
               });
    }

    /// Mass by quadrature; the first moment in closed form, since
    /// d/dx (1 − x²)^{(d−1)/2} = −(d−1) x (1 − x²)^{(d−3)/2}.
    [[nodiscard]] CellMoments cell_moments(double a, double b) const {
        const double mass = integrate(a, b, [](double) { return 1.0; });
        const double p = 0.5 * (static_cast<double>(d_) - 1.0);
        const double first = norm_ / (static_cast<double>(d_) - 1.0) *
                             (std::pow(1.0 - clamp_unit(a) * clamp_unit(a), p) - std::pow(1.0 - clamp_unit(b) * clamp_unit(b), p));
        return {mass, first};
    }

private:
    static double clamp_unit(double x) noexcept { return x < -1.0 ? -1.0 : (x > 1.0 ? 1.0 : x); }

    std::size_t d_;
    double norm_ = 0.0;  ///< Γ(d/2) / (√π Γ((d−1)/2))
};

/// Laplace(0, s) truncated to ±8s and renormalised (the residual-stage law of VeloxQuant's
/// turboquant_rvq, reference-spec B, which integrates on that support). The truncation drops
/// e^{-8} = 3.4e-4 of the mass; it is part of the definition, not an approximation of it.
/// Residuals are not unit vectors, so a codebook on it codes raw values (for_unit_vectors false).
class LaplaceDensity {
public:
    static constexpr bool for_unit_vectors = false;
    static constexpr double half_width = 8.0;  ///< support is ±half_width · s

    explicit LaplaceDensity(double s = 1.0) : s_(s) {
        if (!(std::isfinite(s) && s > 0.0))
            detail::fail<config_error>("LaplaceDensity: scale s must be finite and positive, got ", s);
    }

    [[nodiscard]] double s() const noexcept { return s_; }
    [[nodiscard]] double pdf(double x) const noexcept {
        if (!(std::fabs(x) <= half_width * s_)) return 0.0;
        return std::exp(-std::fabs(x) / s_) / (2.0 * s_ * kept_mass());
    }
    [[nodiscard]] double lo() const noexcept { return -half_width * s_; }
    [[nodiscard]] double hi() const noexcept { return half_width * s_; }
    [[nodiscard]] double scale() const noexcept { return s_; }
    [[nodiscard]] double shape() const noexcept { return 0.0; }
    [[nodiscard]] LaplaceDensity standardized() const { return LaplaceDensity(1.0); }

    /// Closed forms on each side of 0: for 0 <= a < b (in units of s),
    /// ∫ e^{-x}/2 = (e^{-a} − e^{-b})/2 and ∫ x e^{-x}/2 = ((a+1)e^{-a} − (b+1)e^{-b})/2.
    [[nodiscard]] CellMoments cell_moments(double a, double b) const noexcept {
        const double u = clamp(a / s_), v = clamp(b / s_);
        CellMoments m{};
        if (!(v > u)) return m;
        if (u >= 0.0) {
            m = positive_side(u, v);
        } else if (v <= 0.0) {
            m = positive_side(-v, -u);
            m.first = -m.first;
        } else {
            const CellMoments l = positive_side(0.0, -u), r = positive_side(0.0, v);
            m = {l.mass + r.mass, r.first - l.first};
        }
        return {m.mass / kept_mass(), s_ * m.first / kept_mass()};
    }

    /// Cells that straddle 0 are split there so Gauss-Legendre never sees the kink.
    template <class G>
    [[nodiscard]] double integrate(double a, double b, G&& g) const {
        a = s_ * clamp(a / s_);
        b = s_ * clamp(b / s_);
        if (!(b > a)) return 0.0;
        const auto f = [&](double x) { return g(x) * pdf(x); };
        if (a < 0.0 && b > 0.0)
            return detail::composite_gauss_legendre(a, 0.0, 0.5 * s_, f) + detail::composite_gauss_legendre(0.0, b, 0.5 * s_, f);
        return detail::composite_gauss_legendre(a, b, 0.5 * s_, f);
    }

private:
    static double kept_mass() noexcept { return -std::expm1(-half_width); }
    static double clamp(double u) noexcept { return u < -half_width ? -half_width : (u > half_width ? half_width : u); }
    static CellMoments positive_side(double u, double v) noexcept {
        const double eu = std::exp(-u), ev = std::exp(-v);
        return {0.5 * (eu - ev), 0.5 * ((u + 1.0) * eu - (v + 1.0) * ev)};
    }

    double s_;
};

}  // namespace optiq

#pragma once
// LloydMax<Density>: the MSE-optimal scalar quantizer with 2^b levels for a density f
// (Lloyd 1957 / Max 1960; TurboQuant Sec. 3.1, reference-spec A). Its centroids c_i minimise
//   C(f, b) = Σ_i ∫_{cell i} (x − c_i)² f(x) dx,
// the cells having midpoint boundaries t_i = (c_{i−1} + c_i)/2 and each centroid being its
// cell's conditional mean. D_mse of TurboQuant is d · C(f_d, b).
//
// Solving. The classic Lloyd iteration converges linearly with a rate that approaches 1 as the
// number of levels grows (thousands of sweeps at b = 8), so the fixed point is found instead by
// Newton's method on the boundary equations F_j(t) = t_j − (c_{j−1}(t) + c_j(t))/2 = 0, whose
// Jacobian is tridiagonal because c_i depends only on its own cell's two ends:
//   ∂c_i/∂t_{i+1} = f(t_{i+1}) (t_{i+1} − c_i) / P_i,   ∂c_i/∂t_i = f(t_i) (c_i − t_i) / P_i.
// Each step is backtracked (boundaries must stay ordered, ‖F‖ must fall); a plain Lloyd step is
// the fallback. Iteration starts from the quantiles of f^{1/3}, the asymptotically optimal point
// density (Panter & Dite 1951), and stops when max |F_j| <= 1e-12 · max |c_i|. Everything is in
// double precision, cell masses and means by the density's closed forms where it has them.
//
// Tables are solved once per (density type, shape, bits) on the standardized density and kept in
// a process-wide memo guarded by a mutex; a codebook scales the memoised table by scale().
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "optiq/codebook/concepts.hpp"
#include "optiq/codebook/densities.hpp"
#include "optiq/core/error.hpp"

namespace optiq {

namespace detail {

/// A solved Lloyd-Max quantizer of a standardized density, in double precision.
struct LloydMaxTable {
    std::vector<double> centroids;   ///< 2^b, ascending
    std::vector<double> boundaries;  ///< 2^b − 1 interior cell boundaries (midpoints)
    double mse = 0.0;                ///< C(f, b)
    int iterations = 0;              ///< Newton/Lloyd steps taken
};

template <Density D, class G>
[[nodiscard]] double density_integral(const D& f, double a, double b, G&& g) {
    if constexpr (requires { f.integrate(a, b, g); }) {
        return f.integrate(a, b, g);
    } else {
        // 64 panels across the support: for smooth unimodal densities each panel spans a
        // fraction of the scale, where the 20-point rule is exact to rounding.
        const double panel = (f.hi() - f.lo()) / 64.0;
        return composite_gauss_legendre(a, b, panel, [&](double x) { return g(x) * f.pdf(x); });
    }
}

template <Density D>
[[nodiscard]] CellMoments density_cell_moments(const D& f, double a, double b) {
    if constexpr (requires { { f.cell_moments(a, b) } -> std::convertible_to<CellMoments>; }) {
        return f.cell_moments(a, b);
    } else {
        return {density_integral(f, a, b, [](double) { return 1.0; }),
                density_integral(f, a, b, [](double x) { return x; })};
    }
}

/// Boundaries t_0 = lo < t_1 < ... < t_{n−1} < t_n = hi at the quantiles j/n of f^{1/3}.
template <Density D>
[[nodiscard]] std::vector<double> companded_quantiles(const D& f, std::size_t n) {
    constexpr std::size_t grid = 4096;
    const double lo = f.lo(), hi = f.hi(), h = (hi - lo) / static_cast<double>(grid);
    std::vector<double> cum(grid + 1, 0.0);
    for (std::size_t k = 0; k < grid; ++k) {
        // Midpoints, so densities that are infinite at the ends of the support still work.
        const double x = lo + (static_cast<double>(k) + 0.5) * h;
        cum[k + 1] = cum[k] + std::cbrt(std::max(0.0, static_cast<double>(f.pdf(x))));
    }
    std::vector<double> t(n + 1);
    t[0] = lo;
    t[n] = hi;
    std::size_t k = 0;
    for (std::size_t j = 1; j < n; ++j) {
        const double target = cum[grid] * static_cast<double>(j) / static_cast<double>(n);
        while (k + 1 < grid && cum[k + 1] < target) ++k;
        const double span = cum[k + 1] - cum[k];
        const double frac = span > 0.0 ? (target - cum[k]) / span : 0.5;
        t[j] = lo + (static_cast<double>(k) + std::clamp(frac, 0.0, 1.0)) * h;
    }
    return t;
}

template <Density D>
class LloydMaxSolver {
public:
    LloydMaxSolver(const D& f, int bits) : f_(f), n_(std::size_t{1} << bits) {}

    [[nodiscard]] LloydMaxTable solve() {
        std::vector<double> t = companded_quantiles(f_, n_);
        if (!evaluate(t, c_, mass_, res_)) fail<error>("LloydMax: the density has no mass in an initial cell");
        double norm = l2(res_);
        const std::size_t m = n_ - 1;  // unknowns t_1 .. t_{n−1}
        std::vector<double> step(m), trial(n_ + 1), c2(n_), mass2(n_), res2(m);
        int it = 0;
        for (; it < max_iterations; ++it) {
            if (converged()) break;
            bool accepted = false;
            if (newton_direction(t, step)) {
                for (double alpha = 1.0; alpha > 1e-6; alpha *= 0.5) {
                    trial = t;
                    for (std::size_t j = 0; j < m; ++j) trial[j + 1] = t[j + 1] + alpha * step[j];
                    if (!ordered(trial) || !evaluate(trial, c2, mass2, res2)) continue;
                    const double norm2 = l2(res2);
                    if (norm2 < norm) {
                        t.swap(trial);
                        c_.swap(c2);
                        mass_.swap(mass2);
                        res_.swap(res2);
                        norm = norm2;
                        accepted = true;
                        break;
                    }
                }
            }
            if (!accepted) {
                // Lloyd step: boundaries to the midpoints of the current centroids. Centroids lie
                // inside their cells, so the new boundaries are ordered.
                for (std::size_t j = 1; j < n_; ++j) t[j] = 0.5 * (c_[j - 1] + c_[j]);
                if (!evaluate(t, c_, mass_, res_)) fail<error>("LloydMax: a Lloyd step emptied a cell");
                norm = l2(res_);
            }
        }
        if (!converged())
            fail<error>("LloydMax: no convergence after ", max_iterations, " steps for ", n_, " levels (max |F| = ",
                        max_abs(res_), ")");
        LloydMaxTable table;
        table.centroids = c_;
        table.boundaries.assign(t.begin() + 1, t.end() - 1);
        table.iterations = it;
        // Cell errors integrated as ∫ (x − c)² f directly: M2 − c·M1 would cancel in narrow cells.
        double mse = 0.0;
        for (std::size_t i = 0; i < n_; ++i) {
            const double ci = c_[i];
            mse += density_integral(f_, t[i], t[i + 1], [ci](double x) { return (x - ci) * (x - ci); });
        }
        table.mse = mse;
        return table;
    }

private:
    static constexpr int max_iterations = 1000;

    [[nodiscard]] bool converged() const {
        const double ref = std::max(std::fabs(c_.front()), std::fabs(c_.back()));
        return max_abs(res_) <= 1e-12 * ref;
    }

    [[nodiscard]] bool ordered(const std::vector<double>& t) const {
        for (std::size_t j = 0; j < n_; ++j)
            if (!(t[j] < t[j + 1])) return false;
        return true;
    }

    /// Centroids, cell masses and residuals for boundaries t; false if a cell has no mass.
    [[nodiscard]] bool evaluate(const std::vector<double>& t, std::vector<double>& c, std::vector<double>& mass,
                                std::vector<double>& res) const {
        c.resize(n_);
        mass.resize(n_);
        res.resize(n_ - 1);
        for (std::size_t i = 0; i < n_; ++i) {
            const CellMoments mo = density_cell_moments(f_, t[i], t[i + 1]);
            if (!(mo.mass > 0.0) || !std::isfinite(mo.first)) return false;
            mass[i] = mo.mass;
            c[i] = mo.first / mo.mass;
            if (!(c[i] >= t[i] && c[i] <= t[i + 1])) c[i] = std::clamp(c[i], t[i], t[i + 1]);  // rounding only
        }
        for (std::size_t j = 1; j < n_; ++j) res[j - 1] = t[j] - 0.5 * (c[j - 1] + c[j]);
        return true;
    }

    /// Solves J · step = −F (J tridiagonal) by the Thomas algorithm; false if it breaks down.
    [[nodiscard]] bool newton_direction(const std::vector<double>& t, std::vector<double>& step) const {
        const std::size_t m = n_ - 1;
        std::vector<double> up(m), down(m);  // ∂c_{j}/∂t_{j+1} (from below) and ∂c_{j+1}/∂t_{j+1} (from above)
        for (std::size_t j = 1; j < n_; ++j) {
            const double fj = f_.pdf(t[j]);
            down[j - 1] = fj * (t[j] - c_[j - 1]) / mass_[j - 1];  // cell j−1's upper end
            up[j - 1] = fj * (c_[j] - t[j]) / mass_[j];            // cell j's lower end
        }
        std::vector<double> diag(m), sub(m, 0.0), sup(m, 0.0), rhs(m);
        for (std::size_t k = 0; k < m; ++k) {
            diag[k] = 1.0 - 0.5 * (down[k] + up[k]);
            if (k > 0) sub[k] = -0.5 * up[k - 1];
            if (k + 1 < m) sup[k] = -0.5 * down[k + 1];
            rhs[k] = -res_[k];
        }
        for (std::size_t k = 1; k < m; ++k) {
            if (diag[k - 1] == 0.0) return false;
            const double w = sub[k] / diag[k - 1];
            diag[k] -= w * sup[k - 1];
            rhs[k] -= w * rhs[k - 1];
        }
        if (diag[m - 1] == 0.0) return false;
        step[m - 1] = rhs[m - 1] / diag[m - 1];
        for (std::size_t k = m - 1; k-- > 0;) step[k] = (rhs[k] - sup[k] * step[k + 1]) / diag[k];
        for (double s : step)
            if (!std::isfinite(s)) return false;
        return true;
    }

    static double l2(const std::vector<double>& v) {
        double s = 0.0;
        for (double x : v) s += x * x;
        return std::sqrt(s);
    }
    static double max_abs(const std::vector<double>& v) {
        double s = 0.0;
        for (double x : v) s = std::max(s, std::fabs(x));
        return s;
    }

    const D& f_;
    std::size_t n_;
    std::vector<double> c_, mass_, res_;
};

/// The memoised table of a standardized density; one memo per density type, keyed by
/// (shape, bits). Thread-safe: the first caller for a key solves it under the lock.
template <Density D>
[[nodiscard]] std::shared_ptr<const LloydMaxTable> lloyd_max_table(const D& standardized, int bits) {
    static std::mutex mutex;
    static std::map<std::pair<double, int>, std::shared_ptr<const LloydMaxTable>> memo;
    const std::pair<double, int> key{static_cast<double>(standardized.shape()), bits};
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = memo.find(key); it != memo.end()) return it->second;
    auto table = std::make_shared<const LloydMaxTable>(LloydMaxSolver<D>(standardized, bits).solve());
    memo.emplace(key, table);
    return table;
}

}  // namespace detail

/// The b-bit Lloyd-Max codebook of a density, as an optiq::FixedCodebook.
///
/// centroids() are the solved centroids rounded to float; boundaries() are the exact midpoints
/// of those float centroids, held in double (a float midpoint could round across a float input),
/// so encode() returns the index of the nearest float centroid, with ties to the lower one.
template <Density D>
class LloydMax {
public:
    using density_type = D;
    using side_type = std::array<float, 0>;
    static constexpr std::size_t side_floats = 0;
    static constexpr bool wants_unit_norm = D::for_unit_vectors;
    static constexpr int min_bits = 1;
    static constexpr int max_bits = 8;

    LloydMax(D density, int bits) : density_(std::move(density)), bits_(bits) {
        if (bits < min_bits || bits > max_bits)
            detail::fail<config_error>("LloydMax: bits must be in ", min_bits, "..", max_bits, ", got ", bits);
        const auto table = detail::lloyd_max_table(density_.standardized(), bits);
        const double s = density_.scale();
        centroids_.resize(table->centroids.size());
        for (std::size_t i = 0; i < centroids_.size(); ++i) centroids_[i] = static_cast<float>(s * table->centroids[i]);
        boundaries_.resize(centroids_.size() - 1);
        for (std::size_t i = 0; i < boundaries_.size(); ++i)
            boundaries_[i] = 0.5 * (static_cast<double>(centroids_[i]) + static_cast<double>(centroids_[i + 1]));
        mse_ = s * s * table->mse;
        build_grid();
    }

    [[nodiscard]] int bits() const noexcept { return bits_; }
    [[nodiscard]] std::size_t levels() const noexcept { return centroids_.size(); }
    /// One group spans the whole vector: the codebook has no per-group side data.
    [[nodiscard]] std::size_t group_size(std::size_t d) const noexcept { return d; }
    [[nodiscard]] side_type fit(std::span<const float>) const noexcept { return {}; }

    /// Index of the nearest centroid: the number of boundaries strictly below x.
    [[nodiscard]] std::uint32_t encode(float x, const side_type& = {}) const noexcept {
        // Counting the boundaries below x, not std::lower_bound: a data-dependent binary search
        // mispredicts about half its steps on random coordinates (~25 ns per code at 4 bits).
        // Up to 2 bits a branch-free count is cheapest; above, a uniform grid over the
        // boundaries' range gives the count up to one final compare, with no branch.
        const double v = x;
        const double* b = boundaries_.data();
        const std::size_t n = boundaries_.size();
        if (n <= kLinearMax || grid_start_.empty()) {
            std::uint32_t c = 0;
            for (std::size_t i = 0; i < n; ++i) c += b[i] < v ? 1u : 0u;
            return c;
        }
        // Boundaries in cells before x's cell are below x and those after are above (cell_of is
        // monotone); a cell holds at most one boundary, so one compare finishes the count.
        const std::uint32_t c = grid_start_[cell_of(v)];
        return c + (padded_[c] < v ? 1u : 0u);
    }

    [[nodiscard]] float decode(std::uint32_t code, const side_type& = {}) const {
        if (code >= centroids_.size())
            detail::fail<value_error>("LloydMax::decode: code ", code, " out of range for ", bits_, " bits");
        return centroids_[code];
    }

    [[nodiscard]] std::span<const float> centroids() const noexcept { return centroids_; }
    [[nodiscard]] std::span<const double> boundaries() const noexcept { return boundaries_; }
    /// C(f, b): the expected squared error per coordinate under the density (of the double
    /// solution; rounding the centroids to float changes it by ~1e-8 relative).
    [[nodiscard]] double mse() const noexcept { return mse_; }
    [[nodiscard]] const D& density() const noexcept { return density_; }

private:
    // grid_start_[k] = number of boundaries whose cell is below k. cell_of is the same monotone
    // function at build time and at encode time, so rounding cannot misplace a boundary; cells
    // are refined until no two boundaries share one.
    [[nodiscard]] std::size_t cell_of(double v) const noexcept {
        const double t = (v - grid_lo_) * grid_inv_step_;
        if (!(t > 0.0)) return 0;  // also NaN
        const auto last = static_cast<double>(grid_start_.size() - 1);
        return t >= last ? grid_start_.size() - 1 : static_cast<std::size_t>(t);
    }

    void build_grid() {
        if (boundaries_.size() <= kLinearMax) return;
        const double lo = boundaries_.front(), hi = boundaries_.back();
        double gap = hi - lo;
        for (std::size_t i = 1; i < boundaries_.size(); ++i) gap = std::min(gap, boundaries_[i] - boundaries_[i - 1]);
        grid_lo_ = lo;
        for (double per_gap = 2.0;; per_gap *= 2.0) {
            const std::size_t cells = static_cast<std::size_t>((hi - lo) / gap * per_gap) + 2;
            grid_inv_step_ = static_cast<double>(cells) / (hi - lo);
            grid_start_.assign(cells + 1, 0);
            bool distinct = true;
            std::size_t prev_cell = std::numeric_limits<std::size_t>::max();
            for (const double b : boundaries_) {
                const std::size_t k = cell_of(b);
                if (k == prev_cell) distinct = false;
                prev_cell = k;
            }
            if (!distinct && cells < (std::size_t{1} << 20)) continue;
            // grid_start_[k] = #boundaries with cell < k.
            std::size_t j = 0;
            for (std::size_t k = 0; k < grid_start_.size(); ++k) {
                while (j < boundaries_.size() && cell_of(boundaries_[j]) < k) ++j;
                grid_start_[k] = static_cast<std::uint32_t>(j);
            }
            if (!distinct) grid_start_.clear();  // give up on the grid: the linear count is exact
            break;
        }
        padded_ = boundaries_;
        padded_.push_back(std::numeric_limits<double>::infinity());
    }

    static constexpr std::size_t kLinearMax = 3;  // up to 2 bits a plain count is fastest

    D density_;
    int bits_;
    double grid_lo_ = 0.0, grid_inv_step_ = 0.0;
    std::vector<std::uint32_t> grid_start_;
    std::vector<double> padded_;  ///< boundaries_ followed by +inf
    std::vector<float> centroids_;
    std::vector<double> boundaries_;
    double mse_ = 0.0;
};

/// TurboQuant's default codebook: Lloyd-Max for the exact coordinate law of a unit d-vector.
[[nodiscard]] inline LloydMax<SphereCoordinateDensity> sphere_lloyd_max(std::size_t d, int bits) {
    return LloydMax<SphereCoordinateDensity>(SphereCoordinateDensity(d), bits);
}

/// Lloyd-Max for N(0, 1/d), the large-d approximation (the N(0,1) table scaled by 1/sqrt(d)).
[[nodiscard]] inline LloydMax<GaussianDensity> gaussian_lloyd_max(std::size_t d, int bits) {
    return LloydMax<GaussianDensity>(GaussianDensity::for_dim(d), bits);
}

static_assert(FixedCodebook<LloydMax<SphereCoordinateDensity>>);
static_assert(FixedCodebook<LloydMax<GaussianDensity>>);
static_assert(FixedCodebook<LloydMax<LaplaceDensity>>);

}  // namespace optiq

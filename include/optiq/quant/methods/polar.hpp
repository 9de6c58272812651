#pragma once
// PolarQuant (Han, Kacham, Karbasi, Mirrokni, Zandieh; arXiv 2502.02617; reference-spec B).
//
// After a random rotation y = Π x, coordinates are paired and turned into polar form, recursively
// for L levels (level 0 values are the d coordinates of y):
//   level ℓ, pair j:  ψ = atan2(v[2j+1], v[2j]),  r_j = sqrt(v[2j]² + v[2j+1]²),
// the radii r of level ℓ being the values of level ℓ+1. d/2^L radii remain; they are stored at the
// side type (fp16 by default), and the angles are quantized:
//   - level 1: ψ ∈ [0, 2π) is uniform (the pair is an isotropic 2-vector), so its b-bit codebook is
//     uniform: cell k = [kΔ, (k+1)Δ), centroid (k + ½)Δ, Δ = 2π/2^b (cells tile the circle, so no
//     wrap-around is needed);
//   - level ℓ ≥ 2: both inputs are radii, ψ ∈ [0, π/2], and for a Gaussian (or rotated) input
//     ψ has density f_ℓ(ψ) = Γ(n) / (2^{n−2} Γ(n/2)²) · sin^{n−1}(2ψ), n = 2^{ℓ−1} (the paper's
//     lemma on the polar angles of a Gaussian vector: ψ = atan(χ_n / χ_n'), two independent χ
//     radii of n coordinates each); all angles are independent of each other and of the radii. Each level gets the Lloyd-Max codebook of
//     f_ℓ (codebook/lloyd_max.hpp with PolarAngleDensity below).
// Decoding runs the recursion backwards with v[2j] = r cos ψ̂, v[2j+1] = r sin ψ̂, then Πᵀ.
//
// Storage per vector (bits b_ℓ per level): Σ_ℓ (d/2^ℓ)·b_ℓ angle bits + (d/2^L)·16 radius bits.
// The paper's setting L = 4, bits (4, 2, 2, 2) is 3.875 bits per coordinate.
// Word layout: level 1's codes form an MLX LSB-first stream (pack/mlx_stream.hpp) at b_1 bits, in
// pair order, padded to whole uint32 words; level 2's stream follows in its own words, and so on.
// Every level starts on a word boundary, so a kernel can address a level directly; the padding
// is at most L−1 words and zero when each level fills whole words (d = 256 at (4, 2, 2, 2): 23
// words, exactly 3.875 bits/coordinate; d = 128: 368 angle bits in 12 words, 4.0 stored).
//
// Expected error. For a Haar rotation (and an exactly kept radius) the relative error of any
// vector is, in expectation over the rotation,
//   E‖x − x̂‖² / ‖x‖² = 2 (1 − Π_ℓ E[cos(ψ_ℓ − ψ̂_ℓ)]),
// because ‖x̂‖ = ‖x‖ and the cosine between x and x̂ factorises over levels (each node's cosine is
// cos ψ cos ψ̂ · c_even + sin ψ sin ψ̂ · c_odd with children independent of ψ and of equal mean).
// expected_relative_mse() evaluates it; the tests check the implementation against it.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numbers>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/codebook/densities.hpp"
#include "optiq/codebook/lloyd_max.hpp"
#include "optiq/core/error.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/concepts.hpp"
#include "optiq/precondition/hadamard.hpp"
#include "optiq/quant/concepts.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq {

/// Density of a level-ℓ PolarQuant angle (ℓ ≥ 2) on [0, π/2]:
///   f_ℓ(ψ) = Γ(n) / (2^{n−2} Γ(n/2)²) · sin^{n−1}(2ψ),  n = 2^{ℓ−1}.
/// Level 1 (uniform on [0, 2π)) is accepted too, for completeness: f_1 = 1/(2π) on [0, 2π].
/// It satisfies optiq::Density (codebook/densities.hpp): shape() is the level, scale() 1.
class PolarAngleDensity {
public:
    static constexpr bool for_unit_vectors = false;
    static constexpr int max_level = 16;

    explicit PolarAngleDensity(int level) : level_(level) {
        if (level < 1 || level > max_level)
            detail::fail<config_error>("PolarAngleDensity: level must be in 1..", max_level, ", got ", level);
        if (level >= 2) {
            // Γ(n) / (2^{n−2} Γ(n/2)²) with n = 2m is (2m−1) · C(2m−2, m−1) / 4^{m−1}
            // = (2m−1) · Π_{i=1}^{m−1} (2i−1)/(2i): a product of ratios below 1, so no overflow
            // and no lgamma (whose signgam is global state).
            const std::size_t m = std::size_t{1} << (level - 2);
            double c = static_cast<double>(2 * m - 1);
            for (std::size_t i = 1; i < m; ++i) c *= static_cast<double>(2 * i - 1) / static_cast<double>(2 * i);
            norm_ = c;
            exponent_ = static_cast<double>(2 * m - 1);
        }
    }

    [[nodiscard]] int level() const noexcept { return level_; }
    /// n − 1 = 2^{ℓ−1} − 1, the power of sin(2ψ) (0 for level 1).
    [[nodiscard]] double exponent() const noexcept { return exponent_; }
    /// The normalising constant Γ(n) / (2^{n−2} Γ(n/2)²) (1/(2π) for level 1).
    [[nodiscard]] double normalizer() const noexcept {
        return level_ == 1 ? 0.5 * std::numbers::inv_pi : norm_;
    }

    [[nodiscard]] double pdf(double psi) const noexcept {
        if (!(psi >= lo() && psi <= hi())) return 0.0;
        if (level_ == 1) return 0.5 * std::numbers::inv_pi;
        const double s = std::sin(2.0 * psi);
        if (!(s > 0.0)) return 0.0;
        return norm_ * std::pow(s, exponent_);
    }
    [[nodiscard]] double lo() const noexcept { return 0.0; }
    [[nodiscard]] double hi() const noexcept { return level_ == 1 ? 2.0 * std::numbers::pi : 0.5 * std::numbers::pi; }
    [[nodiscard]] double scale() const noexcept { return 1.0; }
    [[nodiscard]] double shape() const noexcept { return static_cast<double>(level_); }
    [[nodiscard]] PolarAngleDensity standardized() const { return *this; }

    /// ∫_a^b g(ψ) f(ψ) dψ by composite Gauss-Legendre with panels no wider than a quarter of the
    /// peak's width: around π/4, sin^{n−1}(2ψ) ≈ exp(−2(n−1)(ψ − π/4)²), standard deviation
    /// 1/(2√(n−1)), which is 0.02 at level 10.
    template <class G>
    [[nodiscard]] double integrate(double a, double b, G&& g) const {
        a = std::max(a, lo());
        b = std::min(b, hi());
        if (!(b > a)) return 0.0;
        const double panel = std::min(std::numbers::pi / 64.0, 0.125 / std::sqrt(std::max(exponent_, 1.0)));
        return detail::composite_gauss_legendre(a, b, panel, [&](double x) { return g(x) * pdf(x); });
    }

private:
    int level_;
    double norm_ = 0.0;
    double exponent_ = 0.0;
};

static_assert(Density<PolarAngleDensity>);

namespace detail {

/// The per-level angle codebooks: reconstruction angles, their cos/sin, and the encoder.
struct PolarLevel {
    int bits = 0;
    std::vector<float> centroids;  ///< reconstruction angles ψ̂_k
    std::vector<float> cos_c;      ///< cos ψ̂_k, so decoding needs no trigonometry
    std::vector<float> sin_c;
    std::vector<double> boundaries;  ///< level ≥ 2: the Lloyd-Max cell boundaries

    [[nodiscard]] std::uint8_t encode(int level, double psi) const noexcept {
        const std::size_t k = centroids.size();
        if (level == 1) {
            // atan2 gives (−π, π]; fold to [0, 2π). A value that rounds to 2π is angle 0 (cell 0).
            if (psi < 0.0) psi += 2.0 * std::numbers::pi;
            const double step = 2.0 * std::numbers::pi / static_cast<double>(k);
            auto c = static_cast<std::size_t>(std::floor(psi / step));
            if (c >= k) c = 0;
            return static_cast<std::uint8_t>(c);
        }
        const auto it = std::lower_bound(boundaries.begin(), boundaries.end(), psi);
        return static_cast<std::uint8_t>(it - boundaries.begin());
    }
};

[[nodiscard]] inline PolarLevel make_polar_level(int level, int bits) {
    PolarLevel p;
    p.bits = bits;
    const std::size_t k = std::size_t{1} << bits;
    if (level == 1) {
        const double step = 2.0 * std::numbers::pi / static_cast<double>(k);
        for (std::size_t i = 0; i < k; ++i) p.centroids.push_back(static_cast<float>((static_cast<double>(i) + 0.5) * step));
    } else {
        const LloydMax<PolarAngleDensity> cb(PolarAngleDensity(level), bits);
        p.centroids.assign(cb.centroids().begin(), cb.centroids().end());
        p.boundaries.assign(cb.boundaries().begin(), cb.boundaries().end());
    }
    for (const float c : p.centroids) {
        p.cos_c.push_back(static_cast<float>(std::cos(static_cast<double>(c))));
        p.sin_c.push_back(static_cast<float>(std::sin(static_cast<double>(c))));
    }
    return p;
}

}  // namespace detail

/// PolarQuant as an optiq::VectorQuantizer. P is the rotation (RandomizedHadamard by default).
template <Preconditioner P = RandomizedHadamard>
class PolarQuant {
public:
    static constexpr int max_levels = PolarAngleDensity::max_level;

    struct query_type {
        std::vector<float> rotated;  ///< Π q
    };

    /// The paper's configuration: L = 4 levels at 4, 2, 2, 2 bits (3.875 bits/coordinate).
    [[nodiscard]] static std::vector<int> paper_bits() { return {4, 2, 2, 2}; }

    /// level_bits[ℓ−1] is the bit width of level ℓ's angles (1..8); L = level_bits.size().
    PolarQuant(P preconditioner, std::vector<int> level_bits, SideType radius_type = SideType::f16)
        : precond_(std::move(preconditioner)), level_bits_(std::move(level_bits)), side_type_(radius_type) {
        dim_ = precond_.dim();
        const std::size_t levels = level_bits_.size();
        if (levels == 0 || levels > static_cast<std::size_t>(max_levels))
            detail::fail<config_error>("PolarQuant: number of levels must be in 1..", max_levels, ", got ", levels);
        for (std::size_t l = 0; l < levels; ++l) {
            if (level_bits_[l] < 1 || level_bits_[l] > 8)
                detail::fail<config_error>("PolarQuant: bits of level ", l + 1, " must be in 1..8, got ", level_bits_[l]);
        }
        if (dim_ == 0) detail::fail<shape_error>("PolarQuant: dimension is 0");
        if (dim_ % (std::size_t{1} << levels) != 0)
            detail::fail<shape_error>("PolarQuant: dimension ", dim_, " is not divisible by 2^L = ",
                                      std::size_t{1} << levels, " (L = ", levels, " levels)");
        auto tables = std::make_shared<std::vector<detail::PolarLevel>>();
        std::size_t offset = 0;
        for (std::size_t l = 0; l < levels; ++l) {
            tables->push_back(detail::make_polar_level(static_cast<int>(l) + 1, level_bits_[l]));
            const std::size_t n = dim_ >> (l + 1);
            word_offset_.push_back(offset);
            offset += MlxStream<>(level_bits_[l]).words_for(n);
        }
        word_offset_.push_back(offset);
        words_ = offset;
        radii_ = dim_ >> levels;
        levels_ = std::move(tables);
    }

    /// Every level at the same bit width (VeloxQuant's form: b = 2, L = 4).
    PolarQuant(P preconditioner, int bits, int levels, SideType radius_type = SideType::f16)
        : PolarQuant(std::move(preconditioner), uniform_bits(bits, levels), radius_type) {}

    /// Builds the rotation as P(dim, seed).
    PolarQuant(std::size_t dim, std::vector<int> level_bits, std::uint64_t seed, SideType radius_type = SideType::f16)
        requires std::constructible_from<P, std::size_t, std::uint64_t>
        : PolarQuant(P(dim, seed), std::move(level_bits), radius_type) {}

    PolarQuant(std::size_t dim, int bits, int levels, std::uint64_t seed, SideType radius_type = SideType::f16)
        requires std::constructible_from<P, std::size_t, std::uint64_t>
        : PolarQuant(P(dim, seed), uniform_bits(bits, levels), radius_type) {}

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    [[nodiscard]] std::size_t levels() const noexcept { return level_bits_.size(); }
    [[nodiscard]] std::span<const int> level_bits() const noexcept { return level_bits_; }
    [[nodiscard]] SideType side_type() const noexcept { return side_type_; }
    [[nodiscard]] const P& preconditioner() const noexcept { return precond_; }
    [[nodiscard]] std::size_t words_per_vector() const noexcept { return words_; }
    /// Radii kept per vector: d / 2^L.
    [[nodiscard]] std::size_t side_per_vector() const noexcept { return radii_; }
    /// First word of level ℓ's stream (ℓ = 1..L) within a vector's words; ℓ = L+1 gives the total.
    [[nodiscard]] std::size_t level_word_offset(std::size_t level) const { return word_offset_.at(level - 1); }

    /// Reconstruction angles of level ℓ (1-based).
    [[nodiscard]] std::span<const float> centroids(std::size_t level) const { return level_at(level).centroids; }

    /// Angle and radius bits per vector, without word padding.
    [[nodiscard]] std::size_t payload_bits() const noexcept {
        std::size_t bits = 0;
        for (std::size_t l = 0; l < levels(); ++l) bits += (dim_ >> (l + 1)) * static_cast<std::size_t>(level_bits_[l]);
        return bits + radii_ * static_cast<std::size_t>(side_type_bits(side_type_));
    }
    /// payload_bits() / d: 3.875 for the paper's (4, 2, 2, 2) with fp16 radii.
    [[nodiscard]] double bits_per_coord() const noexcept {
        return static_cast<double>(payload_bits()) / static_cast<double>(dim_);
    }
    /// Nominal integer bit budget: bits_per_coord() rounded up (4 for the paper's setting).
    [[nodiscard]] int bits() const noexcept { return static_cast<int>(std::ceil(bits_per_coord() - 1e-9)); }

    /// "polar:4,2,2,2" (per-level bits).
    [[nodiscard]] std::string name() const {
        std::string s = "polar:";
        for (std::size_t l = 0; l < levels(); ++l) {
            if (l > 0) s += ',';
            s += std::to_string(level_bits_[l]);
        }
        return s;
    }

    /// E‖x − x̂‖²/‖x‖² under a Haar rotation with exact radii: 2(1 − Π_ℓ E[cos(ψ_ℓ − ψ̂_ℓ)]).
    /// Level 1: the error is uniform on ±Δ/2, E cos = sin(Δ/2)/(Δ/2); level ℓ ≥ 2 integrates
    /// f_ℓ(ψ) cos(ψ − ψ̂(ψ)) over each Lloyd-Max cell.
    [[nodiscard]] double expected_relative_mse() const {
        double prod = 1.0;
        for (std::size_t l = 0; l < levels(); ++l) {
            const auto& t = (*levels_)[l];
            if (l == 0) {
                const double half = std::numbers::pi / static_cast<double>(t.centroids.size());
                prod *= std::sin(half) / half;
                continue;
            }
            const PolarAngleDensity f(static_cast<int>(l) + 1);
            double e = 0.0;
            for (std::size_t k = 0; k < t.centroids.size(); ++k) {
                const double a = k == 0 ? f.lo() : t.boundaries[k - 1];
                const double b = k + 1 == t.centroids.size() ? f.hi() : t.boundaries[k];
                const double c = t.centroids[k];
                e += f.integrate(a, b, [c](double psi) { return std::cos(psi - c); });
            }
            prod *= e;
        }
        return 2.0 * (1.0 - prod);
    }

    /// An empty batch shaped for this quantizer.
    [[nodiscard]] EncodedBatch make_batch(std::size_t n) const {
        EncodedBatch b;
        b.dim = dim_;
        b.words_per_vector = words_;
        b.side_per_vector = radii_;
        b.side_type = side_type_;
        b.resize(n);
        return b;
    }

    /// Per-vector working storage (encode_vector/decode_vector allocate nothing with it).
    struct scratch_type {
        std::vector<float> y;              ///< the rotated vector / its reconstruction
        std::vector<double> v;             ///< the polar recursion's values
        std::vector<std::uint8_t> codes;   ///< one level's angle codes
    };
    [[nodiscard]] scratch_type make_scratch() const {
        return scratch_type{std::vector<float>(dim_), std::vector<double>(dim_), std::vector<std::uint8_t>(dim_ / 2)};
    }

    /// Encodes one vector: the angle streams into words_per_vector() words, the radii into side.
    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch) const {
        encode_vector(x, words, side, scratch, 0);
    }

    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out,
                       scratch_type& scratch) const {
        reconstruct_rotated(words, side, scratch.y, scratch.codes);
        precond_.inverse(scratch.y, out);
    }

    /// ŷ = the polar recursion run backwards from the stored radii and angle codes (the rotated
    /// space: decode is Πᵀ ŷ). codes: at least dim()/2 entries.
    void reconstruct_rotated(std::span<const std::uint32_t> words, std::span<const float> radii, std::span<float> y,
                             std::span<std::uint8_t> codes) const {
        for (std::size_t j = 0; j < radii_; ++j) y[j] = radii[j];
        std::size_t m = radii_;  // values at the current level
        for (std::size_t l = levels(); l-- > 0;) {
            const auto& t = (*levels_)[l];
            MlxStream<>(t.bits).unpack(words.subspan(word_offset_[l], word_offset_[l + 1] - word_offset_[l]),
                                       codes.subspan(0, m));
            // Backwards so that y[j] is read before y[2j], y[2j+1] (>= j) are written.
            for (std::size_t j = m; j-- > 0;) {
                const float r = y[j];
                y[2 * j] = r * t.cos_c[codes[j]];
                y[2 * j + 1] = r * t.sin_c[codes[j]];
            }
            m *= 2;
        }
    }

    /// Encodes n row vectors (x.size() == n * dim()).
    [[nodiscard]] EncodedBatch encode(std::span<const float> x) const {
        return detail::encode_rows(*this, x, "PolarQuant::encode", [self = this](auto xi, auto words, auto side, scratch_type& s, std::size_t i) {
            self->encode_vector(xi, words, side, s, i);
        });
    }

    void decode(const EncodedBatch& b, std::span<float> out) const {
        check_layout(b, "PolarQuant::decode");
        detail::check_decode_target(b, out, dim_, "PolarQuant::decode");
        detail::decode_rows(*this, b, out);
    }

    [[nodiscard]] query_type prepare_query(std::span<const float> q) const {
        detail::check_batch(q, dim_, "PolarQuant::prepare_query");
        if (q.size() != dim_) detail::fail<shape_error>("PolarQuant::prepare_query: expected one ", dim_, "-vector");
        query_type s;
        s.rotated.assign(dim_, 0.0f);
        precond_.forward(q, s.rotated);
        return s;
    }

    /// <q, x̂_i> = <Π q, ŷ_i>: each vector is reconstructed in the rotated space (no inverse
    /// rotation) and dotted with the rotated query. Equal to <q, decode(x_i)> up to rounding.
    void inner_products(const query_type& q, const EncodedBatch& b, std::span<float> out) const {
        check_layout(b, "PolarQuant::inner_products");
        if (q.rotated.size() != dim_)
            detail::fail<shape_error>("PolarQuant::inner_products: query has dimension ", q.rotated.size(), ", expected ",
                                      dim_);
        if (out.size() != b.count)
            detail::fail<shape_error>("PolarQuant::inner_products: output size ", out.size(), " != batch count ",
                                      b.count);
        std::vector<float> y(dim_);
        std::vector<std::uint8_t> codes(dim_ / 2);
        for (std::size_t i = 0; i < b.count; ++i) {
            reconstruct_rotated(b.words_of(i), b.side_of(i), y, codes);
            float acc = 0.0f;
            for (std::size_t j = 0; j < dim_; ++j) acc += q.rotated[j] * y[j];
            out[i] = acc;
        }
    }

private:
    static std::vector<int> uniform_bits(int bits, int levels) {
        if (levels < 1 || levels > max_levels)
            detail::fail<config_error>("PolarQuant: number of levels must be in 1..", max_levels, ", got ", levels);
        return std::vector<int>(static_cast<std::size_t>(levels), bits);
    }

    [[nodiscard]] const detail::PolarLevel& level_at(std::size_t level) const {
        if (level < 1 || level > levels())
            detail::fail<config_error>("PolarQuant: level ", level, " is not in 1..", levels());
        return (*levels_)[level - 1];
    }

    void check_layout(const EncodedBatch& b, const char* what) const {
        if (b.dim != dim_ || b.words_per_vector != words_ || b.side_per_vector != radii_ ||
            b.words.size() != b.count * words_ || b.side.size() != b.count * radii_)
            detail::fail<shape_error>(what, ": batch layout (dim ", b.dim, ", ", b.words_per_vector, " words, ",
                                      b.side_per_vector, " side) does not match this quantizer (dim ", dim_, ", ",
                                      words_, " words, ", radii_, " radii)");
    }

    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch, std::size_t index) const {
        std::vector<double>& v = scratch.v;
        std::vector<std::uint8_t>& codes = scratch.codes;
        precond_.forward(x, scratch.y);
        for (std::size_t j = 0; j < dim_; ++j) v[j] = scratch.y[j];
        std::size_t m = dim_;  // values at the current level
        for (std::size_t l = 0; l < levels(); ++l) {
            const auto& t = (*levels_)[l];
            m /= 2;
            for (std::size_t j = 0; j < m; ++j) {
                const double even = v[2 * j], odd = v[2 * j + 1];
                codes[j] = t.encode(static_cast<int>(l) + 1, std::atan2(odd, even));
                v[j] = std::sqrt(even * even + odd * odd);  // j <= 2j: reads happen first
            }
            MlxStream<>(t.bits).pack(std::span<const std::uint8_t>(codes.data(), m),
                                     words.subspan(word_offset_[l], word_offset_[l + 1] - word_offset_[l]));
        }
        for (std::size_t j = 0; j < radii_; ++j) {
            side[j] = round_side(static_cast<float>(v[j]), side_type_);
            if (!std::isfinite(side[j]))
                detail::fail<value_error>("PolarQuant::encode: radius ", v[j], " of vector ", index, ", block ", j,
                                          " overflows the radius storage type");
        }
    }

    P precond_;
    std::vector<int> level_bits_;
    SideType side_type_;
    std::size_t dim_ = 0;
    std::size_t words_ = 0;
    std::size_t radii_ = 0;
    std::vector<std::size_t> word_offset_;  ///< L+1 entries: level starts, then the total
    std::shared_ptr<const std::vector<detail::PolarLevel>> levels_;
};

static_assert(VectorQuantizer<PolarQuant<>> && VectorCodec<PolarQuant<>>);

}  // namespace optiq

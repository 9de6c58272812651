#pragma once
// TurboQuant (Zandieh, Daliri, Hadian, Mirrokni; arXiv 2504.19874; reference-spec A).
//
// TurboQuant-MSE(b) (Alg. 1): store ‖x‖, rotate y = Π x/‖x‖, code every coordinate with the b-bit
// Lloyd-Max codebook of the rotated coordinate law, decode Πᵀ ŷ ‖x‖. It is exactly
//   Quantizer<LloydMax<SphereCoordinateDensity>, RandomizedHadamard | HaarRotation, MlxStream<b>>,
// so TurboQuantMSE below only adds constructors from (dim, seed) and a name. The codebook is the
// exact law of Lemma 1 by default; GaussianDensity (N(0, 1/d)) is the paper's large-d form.
//   TurboQuantMSE<4>            compile-time bits (packing specialised for b)
//   TurboQuantMSE<>(d, b, seed) run-time bits, for per-layer mixed precision
//
// TurboQuant-Prod(b) (Alg. 2, Theorem 2): TurboQuant-MSE at b − 1 bits plus one QJL bit per sketch
// row on the residual, which makes inner products unbiased. Here the residual is taken in the
// rotated space, r = y − ŷ (‖r‖ = ‖x/‖x‖ − x̃_mse‖ since Π is orthogonal), and sketched as
// z = sign(S r) with S m x d i.i.d. N(0, 1); γ = ‖r‖. Then
//   x̃ = ‖x‖ · Πᵀ (ŷ + (sqrt(π/2)/m) γ Sᵀ z),
// which is the paper's x̃_mse + (sqrt(π/2)/m) γ S'ᵀ sign(S' r_x) with S' = S Π — again an i.i.d.
// Gaussian matrix, so Theorem 2 holds unchanged. E⟨q, x̃⟩ = ⟨q, x⟩ and, for unit q and x,
// Var = [(π/2) E‖r‖² − E⟨q, r⟩²]/m ≈ (π/2) D_mse(b − 1)/d at m = d (reference-spec numbers 4).
// b = 1 is QJL alone on the rotated unit vector (no MSE bits, γ = 1).
//
// Specified layout of a TurboQuant-Prod vector:
//   words: the b − 1 bit MSE codes as an MLX stream (ceil(d(b−1)/32) words, none at b = 1), then
//          the m sign bits (ceil(m/32) words; bit i set when (S r)_i >= 0, LSB first);
//   side:  {‖x‖, γ} at the side type (fp16 by default);
//   seeds: Π = P(dim, seed); S[i][j] = Rng(Rng::derive(seed, 1)).normal(), row-major.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "optiq/codebook/densities.hpp"
#include "optiq/codebook/lloyd_max.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/pack/concepts.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/concepts.hpp"
#include "optiq/precondition/haar.hpp"
#include "optiq/precondition/hadamard.hpp"
#include "optiq/precondition/identity.hpp"
#include "optiq/quant/concepts.hpp"
#include "optiq/quant/encoded.hpp"
#include "optiq/quant/methods/qjl.hpp"
#include "optiq/quant/quantizer.hpp"

namespace optiq {

namespace detail {

/// The law of one coordinate of a rotated unit d-vector, in the density family D.
template <Density D>
[[nodiscard]] D unit_coordinate_density(std::size_t d) {
    if constexpr (std::same_as<D, GaussianDensity>) {
        return GaussianDensity::for_dim(d);
    } else {
        static_assert(std::constructible_from<D, std::size_t>,
                      "a TurboQuant codebook density must be constructible from the dimension d");
        return D(d);
    }
}

/// P(dim, seed) for seeded rotations, P(dim) for Identity.
template <Preconditioner P>
[[nodiscard]] P make_preconditioner(std::size_t dim, std::uint64_t seed) {
    if constexpr (std::constructible_from<P, std::size_t, std::uint64_t>) {
        return P(dim, seed);
    } else {
        return P(dim);
    }
}

/// Name suffix for the non-default policies (the default is Hadamard + exact sphere law), in
/// the option spelling of quant/factory.hpp so a name parses back as a factory spec.
template <class P, class D>
[[nodiscard]] std::string turboquant_suffix() {
    std::string s;
    if constexpr (std::same_as<P, HaarRotation>) {
        s += ":haar";
    } else if constexpr (std::same_as<P, Identity>) {
        s += ":identity";
    }
    if constexpr (std::same_as<D, GaussianDensity>) s += ":gauss";
    return s;
}

inline void check_turboquant_bits(int bits, const char* what) {
    if (bits < 1 || bits > 8) fail<config_error>(what, ": bits must be in 1..8, got ", bits);
}

}  // namespace detail

/// TurboQuant-MSE: a Quantizer with the Lloyd-Max codebook of the rotated coordinate law.
template <int Bits = dynamic_bits, Preconditioner P = RandomizedHadamard, Density D = SphereCoordinateDensity>
class TurboQuantMSE : public Quantizer<LloydMax<D>, P, MlxStream<Bits>> {
    static_assert(D::for_unit_vectors, "TurboQuantMSE codes rotated unit vectors: the density must be for unit vectors");

public:
    using base_type = Quantizer<LloydMax<D>, P, MlxStream<Bits>>;

    /// Compile-time bits: TurboQuantMSE<4>(128, seed).
    TurboQuantMSE(std::size_t dim, std::uint64_t seed, SideType side_type = SideType::f16)
        requires(Bits != dynamic_bits)
        : TurboQuantMSE(detail::make_preconditioner<P>(dim, seed), Bits, side_type) {}

    /// Run-time bits: TurboQuantMSE<>(128, bits, seed).
    TurboQuantMSE(std::size_t dim, int bits, std::uint64_t seed, SideType side_type = SideType::f16)
        requires(Bits == dynamic_bits)
        : TurboQuantMSE(detail::make_preconditioner<P>(dim, seed), bits, side_type) {}

    /// From an existing rotation (bits must equal Bits when that is fixed). The rotation is
    /// copied, not moved: the codebook argument reads its dimension, and the order in which
    /// arguments are evaluated is unspecified (copies share the rotation's storage).
    TurboQuantMSE(const P& preconditioner, int bits, SideType side_type = SideType::f16)
        : base_type(make_codebook(preconditioner.dim(), bits), preconditioner, make_packer(bits), side_type) {}

    [[nodiscard]] std::string name() const {
        return "tq_mse:" + std::to_string(this->bits()) + detail::turboquant_suffix<P, D>();
    }

private:
    static LloydMax<D> make_codebook(std::size_t dim, int bits) {
        detail::check_turboquant_bits(bits, "TurboQuantMSE");
        if (dim == 0) detail::fail<shape_error>("TurboQuantMSE: dimension is 0");
        return LloydMax<D>(detail::unit_coordinate_density<D>(dim), bits);
    }
    static MlxStream<Bits> make_packer(int bits) {
        if constexpr (Bits == dynamic_bits) {
            return MlxStream<>(bits);
        } else {
            if (bits != Bits)
                detail::fail<config_error>("TurboQuantMSE<", Bits, ">: constructed with bits = ", bits);
            return MlxStream<Bits>();
        }
    }
};

/// Run-time-bits TurboQuant-MSE with the defaults (exact sphere law, randomized Hadamard).
[[nodiscard]] inline TurboQuantMSE<> make_turboquant_mse(std::size_t dim, int bits, std::uint64_t seed,
                                                         SideType side_type = SideType::f16) {
    return TurboQuantMSE<>(dim, bits, seed, side_type);
}

/// TurboQuant-Prod: (b − 1)-bit TurboQuant-MSE plus a 1-bit QJL sketch of the residual.
template <Preconditioner P = RandomizedHadamard, Density D = SphereCoordinateDensity>
class TurboQuantProd {
    static_assert(D::for_unit_vectors, "TurboQuantProd codes rotated unit vectors: the density must be for unit vectors");

public:
    struct query_type {
        std::vector<float> rotated;   ///< Π q
        std::vector<float> lut;       ///< d x 2^(b−1): (Π q)_i · centroid[c] (empty at b = 1)
        std::vector<float> sketched;  ///< S Π q
    };

    /// bits = b (1..8): b − 1 MSE bits per coordinate plus m sign bits; sketch_rows = 0 means m = d.
    TurboQuantProd(std::size_t dim, int bits, std::uint64_t seed, std::size_t sketch_rows = 0,
                   SideType side_type = SideType::f16)
        : TurboQuantProd(detail::make_preconditioner<P>(check_dim(dim), seed), bits, Rng::derive(seed, 1), sketch_rows,
                         side_type) {}

    /// From an existing rotation and an explicit seed for the sketch.
    TurboQuantProd(P preconditioner, int bits, std::uint64_t sketch_seed, std::size_t sketch_rows = 0,
                   SideType side_type = SideType::f16)
        : precond_(std::move(preconditioner)),
          bits_(checked_bits(bits)),
          sketch_(sketch_rows == 0 ? precond_.dim() : sketch_rows, precond_.dim(), sketch_seed),
          side_type_(side_type) {
        dim_ = precond_.dim();
        if (bits_ > 1) {
            codebook_.emplace(detail::unit_coordinate_density<D>(dim_), bits_ - 1);
            packer_.emplace(bits_ - 1);
            mse_words_ = packer_->words_for(dim_);
        }
        words_ = mse_words_ + sketch_.words();
    }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    [[nodiscard]] int bits() const noexcept { return bits_; }
    [[nodiscard]] int mse_bits() const noexcept { return bits_ - 1; }
    [[nodiscard]] std::size_t sketch_rows() const noexcept { return sketch_.rows(); }
    [[nodiscard]] std::string name() const {
        return "tq_prod:" + std::to_string(bits_) + detail::turboquant_suffix<P, D>() +
               (sketch_.rows() == dim_ ? std::string() : ":m" + std::to_string(sketch_.rows()));
    }
    [[nodiscard]] std::size_t words_per_vector() const noexcept { return words_; }
    /// MSE-code words at the front of each vector's words; the sign words follow.
    [[nodiscard]] std::size_t mse_words_per_vector() const noexcept { return mse_words_; }
    [[nodiscard]] std::size_t side_per_vector() const noexcept { return 2; }
    [[nodiscard]] SideType side_type() const noexcept { return side_type_; }
    [[nodiscard]] const P& preconditioner() const noexcept { return precond_; }
    /// The (b − 1)-bit codebook; absent at b = 1.
    [[nodiscard]] const std::optional<LloydMax<D>>& codebook() const noexcept { return codebook_; }
    [[nodiscard]] const detail::GaussianSketch& sketch() const noexcept { return sketch_; }

    [[nodiscard]] EncodedBatch make_batch(std::size_t n) const {
        EncodedBatch b;
        b.dim = dim_;
        b.words_per_vector = words_;
        b.side_per_vector = 2;
        b.side_type = side_type_;
        b.resize(n);
        return b;
    }

    /// Per-vector working storage (encode_vector/decode_vector allocate nothing with it).
    struct scratch_type {
        std::vector<float> y;             ///< rotated vector, then its residual
        std::vector<float> proj;          ///< S r
        std::vector<std::uint8_t> codes;  ///< the b − 1 bit codes
    };
    [[nodiscard]] scratch_type make_scratch() const {
        return scratch_type{std::vector<float>(dim_), std::vector<float>(sketch_.rows()), std::vector<std::uint8_t>(dim_)};
    }

    /// Encodes one vector into words_per_vector() words and side_per_vector() side floats.
    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch) const {
        encode_vector(x, words, side, scratch, 0);
    }

    /// Decodes one vector: ‖x‖ Πᵀ (ŷ + c γ Sᵀ z).
    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out,
                       scratch_type& scratch) const {
        if (codebook_) {
            packer_->unpack(words.subspan(0, mse_words_), scratch.codes);
            for (std::size_t j = 0; j < dim_; ++j) out[j] = codebook_->decode(scratch.codes[j]);
        } else {
            for (auto& v : out) v = 0.0f;
        }
        sketch_.add_transposed_signs(words.subspan(mse_words_), qjl_scale() * side[1], out);
        precond_.inverse(out, out);
        for (auto& v : out) v *= side[0];
    }

    /// The (b − 1)-bit MSE code packer; absent at b = 1.
    [[nodiscard]] const std::optional<MlxStream<>>& mse_packer() const noexcept { return packer_; }
    /// sqrt(π/2)/m, the factor of the sketch term.
    [[nodiscard]] float qjl_scale() const noexcept {
        return static_cast<float>(detail::sqrt_half_pi / static_cast<double>(sketch_.rows()));
    }

    [[nodiscard]] EncodedBatch encode(std::span<const float> x) const {
        return detail::encode_rows(*this, x, "TurboQuantProd::encode", [self = this](auto xi, auto words, auto side, scratch_type& s, std::size_t i) {
            self->encode_vector(xi, words, side, s, i);
        });
    }

    void decode(const EncodedBatch& b, std::span<float> out) const {
        detail::check_batch_layout(b, dim_, words_, 2, "TurboQuantProd::decode");
        detail::check_decode_target(b, out, dim_, "TurboQuantProd::decode");
        detail::decode_rows(*this, b, out);
    }

    [[nodiscard]] query_type prepare_query(std::span<const float> q) const {
        detail::check_query(q, dim_, "TurboQuantProd::prepare_query");
        query_type s;
        s.rotated.assign(dim_, 0.0f);
        precond_.forward(q, s.rotated);
        if (codebook_) {
            const auto cents = codebook_->centroids();
            const std::size_t k = cents.size();
            s.lut.resize(dim_ * k);
            for (std::size_t i = 0; i < dim_; ++i)
                for (std::size_t c = 0; c < k; ++c) s.lut[i * k + c] = s.rotated[i] * cents[c];
        }
        s.sketched.resize(sketch_.rows());
        sketch_.project(s.rotated, s.sketched);
        return s;
    }

    /// out_i = ‖x_i‖ (Σ_j lut[j][c_ij] + (sqrt(π/2)/m) γ_i ⟨S Π q, z_i⟩).
    void inner_products(const query_type& q, const EncodedBatch& b, std::span<float> out) const {
        detail::check_batch_layout(b, dim_, words_, 2, "TurboQuantProd::inner_products");
        if (q.rotated.size() != dim_ || q.sketched.size() != sketch_.rows())
            detail::fail<shape_error>("TurboQuantProd::inner_products: query was prepared for another quantizer");
        if (out.size() != b.count)
            detail::fail<shape_error>("TurboQuantProd::inner_products: output size ", out.size(), " != batch count ",
                                      b.count);
        std::vector<std::uint8_t> codes(dim_);
        const std::size_t k = codebook_ ? codebook_->levels() : 0;
        for (std::size_t i = 0; i < b.count; ++i) {
            const auto words = b.words_of(i);
            const auto side = b.side_of(i);
            float acc = 0.0f;
            if (codebook_) {
                packer_->unpack(words.subspan(0, mse_words_), codes);
                for (std::size_t j = 0; j < dim_; ++j) acc += q.lut[j * k + codes[j]];
            }
            acc += qjl_scale() * side[1] * sketch_.signed_sum(q.sketched, words.subspan(mse_words_));
            out[i] = side[0] * acc;
        }
    }

private:
    static std::size_t check_dim(std::size_t dim) {
        if (dim == 0) detail::fail<shape_error>("TurboQuantProd: dimension is 0");
        return dim;
    }
    static int checked_bits(int bits) {
        detail::check_turboquant_bits(bits, "TurboQuantProd");
        return bits;
    }
    void encode_vector(std::span<const float> xi, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch, std::size_t index) const {
        std::span<float> y(scratch.y);
        const float norm = static_cast<float>(detail::norm2_of(xi));
        const float inv = norm > 0.0f ? 1.0f / norm : 0.0f;
        for (std::size_t j = 0; j < dim_; ++j) y[j] = xi[j] * inv;
        precond_.forward(y, y);
        if (codebook_) {
            for (std::size_t j = 0; j < dim_; ++j) {
                const std::uint32_t c = codebook_->encode(y[j]);
                scratch.codes[j] = static_cast<std::uint8_t>(c);
                y[j] -= codebook_->centroids()[c];  // y becomes the residual r
            }
            packer_->pack(scratch.codes, words.subspan(0, mse_words_));
        }
        sketch_.project(y, scratch.proj);
        sketch_.pack_signs(scratch.proj, words.subspan(mse_words_));
        side[0] = detail::checked_side(norm, side_type_, "TurboQuantProd::encode", index);
        side[1] = round_side(static_cast<float>(detail::norm2_of(y)), side_type_);  // γ <= 2
    }

    P precond_;
    int bits_;
    detail::GaussianSketch sketch_;
    SideType side_type_;
    std::size_t dim_ = 0, mse_words_ = 0, words_ = 0;
    std::optional<LloydMax<D>> codebook_;
    std::optional<MlxStream<>> packer_;
};

static_assert(VectorQuantizer<TurboQuantMSE<4>>);
static_assert(VectorQuantizer<TurboQuantMSE<>>);
static_assert(VectorQuantizer<TurboQuantProd<>>);
static_assert(VectorCodec<TurboQuantMSE<4>> && VectorCodec<TurboQuantMSE<>> && VectorCodec<TurboQuantProd<>>);

}  // namespace optiq

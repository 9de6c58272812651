#pragma once
// RVQ: two-stage residual TurboQuant (VeloxQuant quantizers/turboquant_rvq.py,
// cache/turboquant_rvq_cache.py; reference-spec B).
//
//   scale n = max(‖k‖, 1e-4);  y = Π k/n  (randomized Hadamard by default);
//   stage 1: ŷ₁ = the b-bit Lloyd-Max code of each coordinate under the rotated-coordinate law
//            (exact sphere law by default, GaussianDensity for N(0, 1/d));
//   stage 2: ŷ₂ = the b-bit Lloyd-Max code of each residual y − ŷ₁ under Laplace(0, s) on ±8s;
//   decode:  k̃ = n · Πᵀ (ŷ₁ + ŷ₂);  2b bits per coordinate plus n.
//
// The stage-2 scale. VeloxQuant sets s = σ_q/√2 with σ_q = sqrt(1/d)·(√(3π)/2)·4^{−b}, meant as the
// RMS stage-1 error from Theorem 1's bound, but √(3π)/2 = 1.535 is a slip for the paper's
// √3·π/2 = 2.721 (reference-spec A, B), and the bound is loose at small b anyway. Here σ_q is the
// exact RMS stage-1 error per coordinate, sqrt(C(f, b)) = sqrt(D_mse(b)/d) from the stage-1
// codebook's mse(), so the Laplace law (variance 2s² = σ_q²) has the variance of the residual it
// models. At d = 128, b = 1: σ_q = 0.0531 (VeloxQuant's formula: 0.0339; the paper's bound: 0.0601).
//
// Specified layout: words = the stage-1 codes as an MLX stream (ceil(d·b/32) words), then the
// stage-2 codes likewise; side = {n} at the side type (fp16 by default). Storing n, the divisor,
// rather than ‖k‖ keeps decode consistent for keys shorter than 1e-4, which VeloxQuant scales by
// ‖k‖ after dividing by 1e-4.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
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
#include "optiq/quant/methods/qjl.hpp"         // detail::norm2_of, check_batch_layout, check_query
#include "optiq/quant/methods/turboquant.hpp"  // detail::unit_coordinate_density, make_preconditioner

namespace optiq {

template <Preconditioner P = RandomizedHadamard, Density D = SphereCoordinateDensity>
class RVQ {
    static_assert(D::for_unit_vectors, "RVQ's first stage codes rotated unit vectors");

public:
    /// Keys shorter than this are divided by it instead of by their norm (VeloxQuant's guard).
    static constexpr float min_scale = 1e-4f;

    struct query_type {
        std::vector<float> rotated;  ///< Π q
        std::vector<float> lut1;     ///< d x 2^b: (Π q)_i · stage-1 centroid[c]
        std::vector<float> lut2;     ///< d x 2^b: (Π q)_i · stage-2 centroid[c]
    };

    RVQ(std::size_t dim, int bits, std::uint64_t seed, SideType side_type = SideType::f16)
        : RVQ(detail::make_preconditioner<P>(dim, seed), bits, side_type) {}

    RVQ(const P& preconditioner, int bits, SideType side_type = SideType::f16)
        : precond_(preconditioner),
          dim_(precond_.dim()),
          stage1_(make_stage1(dim_, bits)),
          stage2_(LaplaceDensity(std::sqrt(stage1_.mse()) / std::numbers::sqrt2), bits),
          packer_(bits),
          side_type_(side_type) {
        stage_words_ = packer_.words_for(dim_);
    }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    /// Bits per coordinate of each stage; a vector stores 2·bits() per coordinate.
    [[nodiscard]] int bits() const noexcept { return stage1_.bits(); }
    [[nodiscard]] std::string name() const {
        return "rvq:" + std::to_string(bits()) + detail::turboquant_suffix<P, D>();
    }
    [[nodiscard]] std::size_t words_per_vector() const noexcept { return 2 * stage_words_; }
    [[nodiscard]] std::size_t side_per_vector() const noexcept { return 1; }
    [[nodiscard]] SideType side_type() const noexcept { return side_type_; }
    [[nodiscard]] const P& preconditioner() const noexcept { return precond_; }
    [[nodiscard]] const LloydMax<D>& stage1() const noexcept { return stage1_; }
    [[nodiscard]] const LloydMax<LaplaceDensity>& stage2() const noexcept { return stage2_; }

    [[nodiscard]] EncodedBatch make_batch(std::size_t n) const {
        EncodedBatch b;
        b.dim = dim_;
        b.words_per_vector = 2 * stage_words_;
        b.side_per_vector = 1;
        b.side_type = side_type_;
        b.resize(n);
        return b;
    }

    /// Per-vector working storage (encode_vector/decode_vector allocate nothing with it).
    struct scratch_type {
        std::vector<float> y;
        std::vector<std::uint8_t> c1, c2;  ///< stage-1 and stage-2 codes
    };
    [[nodiscard]] scratch_type make_scratch() const {
        return scratch_type{std::vector<float>(dim_), std::vector<std::uint8_t>(dim_), std::vector<std::uint8_t>(dim_)};
    }
    /// The packer of each stage's codes (b bits; stage 1 in the first half of the words).
    [[nodiscard]] const MlxStream<>& packer() const noexcept { return packer_; }

    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch) const {
        encode_vector(x, words, side, scratch, 0);
    }

    /// k̃ = n Πᵀ (ĉ₁ + ĉ₂).
    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out,
                       scratch_type& scratch) const {
        unpack(words, scratch.c1, scratch.c2);
        for (std::size_t j = 0; j < dim_; ++j)
            out[j] = stage1_.centroids()[scratch.c1[j]] + stage2_.centroids()[scratch.c2[j]];
        precond_.inverse(out, out);
        const float scale = side[0];
        for (auto& v : out) v *= scale;
    }

    [[nodiscard]] EncodedBatch encode(std::span<const float> x) const {
        return detail::encode_rows(*this, x, "RVQ::encode", [self = this](auto xi, auto words, auto side, scratch_type& s, std::size_t i) {
            self->encode_vector(xi, words, side, s, i);
        });
    }

    void decode(const EncodedBatch& b, std::span<float> out) const {
        detail::check_batch_layout(b, dim_, 2 * stage_words_, 1, "RVQ::decode");
        detail::check_decode_target(b, out, dim_, "RVQ::decode");
        detail::decode_rows(*this, b, out);
    }

    [[nodiscard]] query_type prepare_query(std::span<const float> q) const {
        detail::check_query(q, dim_, "RVQ::prepare_query");
        query_type s;
        s.rotated.assign(dim_, 0.0f);
        precond_.forward(q, s.rotated);
        const std::size_t k = stage1_.levels();
        s.lut1.resize(dim_ * k);
        s.lut2.resize(dim_ * k);
        for (std::size_t i = 0; i < dim_; ++i) {
            for (std::size_t c = 0; c < k; ++c) {
                s.lut1[i * k + c] = s.rotated[i] * stage1_.centroids()[c];
                s.lut2[i * k + c] = s.rotated[i] * stage2_.centroids()[c];
            }
        }
        return s;
    }

    /// out_i = n_i Σ_j (lut1[j][c1_ij] + lut2[j][c2_ij]).
    void inner_products(const query_type& q, const EncodedBatch& b, std::span<float> out) const {
        detail::check_batch_layout(b, dim_, 2 * stage_words_, 1, "RVQ::inner_products");
        const std::size_t k = stage1_.levels();
        if (q.rotated.size() != dim_ || q.lut1.size() != dim_ * k || q.lut2.size() != dim_ * k)
            detail::fail<shape_error>("RVQ::inner_products: query was prepared for another quantizer");
        if (out.size() != b.count)
            detail::fail<shape_error>("RVQ::inner_products: output size ", out.size(), " != batch count ", b.count);
        std::vector<std::uint8_t> c1(dim_), c2(dim_);
        for (std::size_t i = 0; i < b.count; ++i) {
            unpack(b.words_of(i), c1, c2);
            float acc = 0.0f;
            for (std::size_t j = 0; j < dim_; ++j) acc += q.lut1[j * k + c1[j]] + q.lut2[j * k + c2[j]];
            out[i] = b.side_of(i)[0] * acc;
        }
    }

private:
    static LloydMax<D> make_stage1(std::size_t dim, int bits) {
        if (bits < 1 || bits > 8) detail::fail<config_error>("RVQ: bits must be in 1..8, got ", bits);
        return LloydMax<D>(detail::unit_coordinate_density<D>(dim), bits);
    }

    void encode_vector(std::span<const float> xi, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch, std::size_t index) const {
        std::span<float> y(scratch.y);
        const float scale = std::max(static_cast<float>(detail::norm2_of(xi)), min_scale);
        const float inv = 1.0f / scale;
        for (std::size_t j = 0; j < dim_; ++j) y[j] = xi[j] * inv;
        precond_.forward(y, y);
        for (std::size_t j = 0; j < dim_; ++j) {
            const std::uint32_t a = stage1_.encode(y[j]);
            const float r = y[j] - stage1_.centroids()[a];
            scratch.c1[j] = static_cast<std::uint8_t>(a);
            scratch.c2[j] = static_cast<std::uint8_t>(stage2_.encode(r));
        }
        packer_.pack(scratch.c1, words.subspan(0, stage_words_));
        packer_.pack(scratch.c2, words.subspan(stage_words_, stage_words_));
        side[0] = detail::checked_side(scale, side_type_, "RVQ::encode", index);
    }

    void unpack(std::span<const std::uint32_t> words, std::span<std::uint8_t> c1, std::span<std::uint8_t> c2) const {
        packer_.unpack(words.subspan(0, stage_words_), c1);
        packer_.unpack(words.subspan(stage_words_, stage_words_), c2);
    }

    P precond_;
    std::size_t dim_;
    LloydMax<D> stage1_;
    LloydMax<LaplaceDensity> stage2_;
    MlxStream<> packer_;
    SideType side_type_;
    std::size_t stage_words_ = 0;
};

static_assert(VectorQuantizer<RVQ<>> && VectorCodec<RVQ<>>);

}  // namespace optiq

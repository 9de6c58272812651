#pragma once
// TurboQuant keys and values (arXiv 2504.19874; reference-spec A; quant/methods/turboquant.hpp).
//
// TurboQuantMseCodec ("tq_mse:b"): ‖x‖ (f16) and the b-bit Lloyd-Max codes of Π x/‖x‖ for the
//   exact sphere coordinate law, Π a seeded randomized Hadamard rotation. Scores through a
//   per-query table, values summed in the rotated space (QuantizerCodec).
// TurboQuantProdCodec ("tq_prod:b"): (b−1)-bit MSE codes plus m QJL sign bits z of the rotated
//   residual, side {‖x‖, γ}. x̃ = ‖x‖ Πᵀ (ŷ + c γ Sᵀ z), c = sqrt(π/2)/m, so
//     <q, x̃> = ‖x‖ (Σ_i lut[i][code_i] + c γ <S Π q, z>)           (S Π q once per query)
//     Σ_j p_j x̃_j = Πᵀ (Σ_j p_j ‖x_j‖ ŷ_j + Sᵀ Σ_j p_j ‖x_j‖ c γ_j z_j):
//   the accumulator holds d rotated coordinates and m sketch coefficients; finish() applies Sᵀ
//   and Πᵀ once per query.
// Keys and values get independent rotations/sketches derived from the layer seed.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/backend/simd/kv_attention.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/quantizer_codec.hpp"
#include "optiq/kv/policies/vector_codec.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/methods/qjl.hpp"
#include "optiq/quant/methods/turboquant.hpp"

namespace optiq::kv {

using TurboQuantMseCodec = QuantizerCodec<TurboQuantMSE<>::base_type>;
static_assert(KVRunCodec<TurboQuantMseCodec>);

/// One TurboQuant-MSE codec for d-vectors at 1..8 bits, rotation seeded by seed.
[[nodiscard]] inline TurboQuantMseCodec turboquant_mse_codec(std::size_t dim, int bits, std::uint64_t seed,
                                                             const char* which = "codec") {
    detail::check_policy_bits("tq_mse", which, bits, 1, 8);
    const TurboQuantMSE<> q = make_turboquant_mse(dim, bits, seed);
    return TurboQuantMseCodec(q, q.name());
}

class TurboQuantProdCodec : public VectorCodecBase<TurboQuantProd<>> {
public:
    static constexpr bool plain_value_space = false;

    struct query_state {
        std::vector<float> rotated;   ///< Π q
        std::vector<float> lut;       ///< d x 2^(b−1)
        std::vector<float> sketched;  ///< S Π q
    };

    explicit TurboQuantProdCodec(quantizer_type q) : VectorCodecBase(std::move(q)), c_(q_.qjl_scale()) {
        if (q_.codebook()) {
            const auto c = q_.codebook()->centroids();
            centroids_.assign(c.begin(), c.end());
            table_.assign(std::max<std::size_t>(16, c.size()), 0.0f);  // the kernels read 16 entries at least
            std::copy(c.begin(), c.end(), table_.begin());
        }
    }

    /// The (b−1)-bit codes and the m sign bits of a record (backend/simd/kv_types.hpp).
    [[nodiscard]] backend::kv::VectorCoding mse_coding() const noexcept {
        backend::kv::VectorCoding c;
        c.coding = backend::kv::Coding::codebook;
        c.bits = std::countr_zero(centroids_.size());
        c.dim = dim();
        c.table = table_.data();
        return c;
    }
    [[nodiscard]] backend::kv::VectorCoding sign_coding() const noexcept {
        backend::kv::VectorCoding c;
        c.coding = backend::kv::Coding::signs;
        c.dim = q_.sketch_rows();
        c.word_offset = q_.mse_words_per_vector();
        return c;
    }

    /// score() over a whole run (KVRunCodec): ‖x‖ Σ_i lut[i][code_i] + ‖x‖ c γ <S Π q, z>.
    template <class Tag>
    void score_run(Tag tag, std::span<const query_state> states, const backend::kv::Records& r, float* out,
                   std::size_t stride) const {
        const bool mse = q_.mse_packer().has_value();
        const auto cm = mse_coding();
        const auto cs = sign_coding();
        const backend::kv::TokenScale norm{r.side, nullptr, r.side_stride, 1.0f}, sketch{r.side, r.side + 1,
                                                                                         r.side_stride, c_};
        detail::for_state_groups(states, [](const query_state& s) { return s.rotated.data(); },
                                 [&](std::size_t k0, std::size_t kn, const float* const* q) {
                                     if (mse) backend::kv::dot_run(tag, cm, r, norm, q, kn, out + k0 * stride, stride, false);
                                 });
        detail::for_state_groups(states, [](const query_state& s) { return s.sketched.data(); },
                                 [&](std::size_t k0, std::size_t kn, const float* const* q) {
                                     backend::kv::dot_run(tag, cs, r, sketch, q, kn, out + k0 * stride, stride, mse);
                                 });
    }

    template <class Tag>
    void accumulate_run(Tag tag, const backend::kv::Records& r, const float* weights, std::size_t stride, float* accs,
                        std::size_t n) const {
        const std::size_t a = accumulator_size();
        const auto cm = mse_coding();
        const auto cs = sign_coding();
        const backend::kv::TokenScale norm{r.side, nullptr, r.side_stride, 1.0f}, sketch{r.side, r.side + 1,
                                                                                         r.side_stride, c_};
        detail::for_groups(n, [&](std::size_t k0, std::size_t kn) {
            if (q_.mse_packer()) backend::kv::axpy_run(tag, cm, r, norm, weights + k0 * stride, stride, kn, accs + k0 * a, a);
            backend::kv::axpy_run(tag, cs, r, sketch, weights + k0 * stride, stride, kn, accs + k0 * a + dim(), a);
        });
    }

    [[nodiscard]] std::size_t accumulator_size() const noexcept { return q_.dim() + q_.sketch_rows(); }

    void prepare_query(std::span<const float> q, query_state& st, scratch_type&) const {
        const std::size_t d = dim(), k = centroids_.size();
        st.rotated.resize(d);
        q_.preconditioner().forward(q, st.rotated);
        st.lut.resize(d * k);
        for (std::size_t i = 0; i < d; ++i)
            for (std::size_t c = 0; c < k; ++c) st.lut[i * k + c] = st.rotated[i] * centroids_[c];
        st.sketched.resize(q_.sketch_rows());
        q_.sketch().project(st.rotated, st.sketched);
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words, std::span<const float> side,
               scratch_type& scratch, float* out, std::size_t stride) const {
        const std::size_t mw = q_.mse_words_per_vector();
        const auto& packer = q_.mse_packer();
        if (packer) packer->unpack(words.subspan(0, mw), scratch.codes);
        const auto signs = words.subspan(mw);
        for (std::size_t s = 0; s < states.size(); ++s) {
            float acc =
                packer ? detail::lut_sum(states[s].lut.data(), scratch.codes.data(), dim(), centroids_.size()) : 0.0f;
            acc += c_ * side[1] * q_.sketch().signed_sum(states[s].sketched, signs);
            out[s * stride] = side[0] * acc;
        }
    }

    void accumulate(std::span<const std::uint32_t> words, std::span<const float> side, scratch_type& scratch,
                    const float* weights, std::size_t stride, float* accs, std::size_t n) const {
        const std::size_t d = dim(), m = q_.sketch_rows(), mw = q_.mse_words_per_vector();
        const auto& packer = q_.mse_packer();
        if (packer) packer->unpack(words.subspan(0, mw), scratch.codes);
        const auto signs = words.subspan(mw);
        for (std::size_t s = 0; s < n; ++s) {
            const float w = weights[s * stride] * side[0];
            float* acc = accs + s * (d + m);
            if (packer)
                for (std::size_t i = 0; i < d; ++i) acc[i] += w * centroids_[scratch.codes[i]];
            q_.sketch().add_signs(signs, w * c_ * side[1], acc + d);
        }
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type& scratch) const {
        const std::size_t d = dim();
        std::span<float> y(scratch.y);
        for (std::size_t i = 0; i < d; ++i) y[i] = acc[i];
        q_.sketch().add_transposed(acc.subspan(d), y);  // + Sᵀ (sketch coefficients)
        q_.preconditioner().inverse(y, out);
    }

private:
    float c_;  ///< sqrt(π/2)/m
    std::vector<float> centroids_;
    std::vector<float> table_;  ///< centroids_ zero-padded to at least 16 entries
};

static_assert(KVRunCodec<TurboQuantProdCodec>);

/// One TurboQuant-Prod codec at 1..8 bits (b−1 MSE bits + m = d sign bits).
[[nodiscard]] inline TurboQuantProdCodec turboquant_prod_codec(std::size_t dim, int bits, std::uint64_t seed,
                                                               const char* which = "codec") {
    detail::check_policy_bits("tq_prod", which, bits, 1, 8);
    return TurboQuantProdCodec(TurboQuantProd<>(dim, bits, seed));
}

using TurboQuantMsePolicy = Policy<TurboQuantMseCodec, TurboQuantMseCodec>;
using TurboQuantProdPolicy = Policy<TurboQuantProdCodec, TurboQuantProdCodec>;

/// TurboQuant-MSE at k_bits for keys and v_bits for values (1..8 each), seeded per layer.
[[nodiscard]] inline TurboQuantMsePolicy turboquant_mse_policy(std::size_t dim, int k_bits, int v_bits,
                                                               std::uint64_t layer_seed, std::size_t recent = 0) {
    return TurboQuantMsePolicy(turboquant_mse_codec(dim, k_bits, detail::key_seed(layer_seed), "key"),
                               turboquant_mse_codec(dim, v_bits, detail::value_seed(layer_seed), "value"), recent);
}

/// TurboQuant-Prod (unbiased inner products) at k_bits / v_bits.
[[nodiscard]] inline TurboQuantProdPolicy turboquant_prod_policy(std::size_t dim, int k_bits, int v_bits,
                                                                 std::uint64_t layer_seed, std::size_t recent = 0) {
    return TurboQuantProdPolicy(turboquant_prod_codec(dim, k_bits, detail::key_seed(layer_seed), "key"),
                                turboquant_prod_codec(dim, v_bits, detail::value_seed(layer_seed), "value"), recent);
}

}  // namespace optiq::kv

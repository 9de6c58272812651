#pragma once
// RVQ keys and values ("rvq:b"; quant/methods/rvq.hpp, VeloxQuant turboquant_rvq): two b-bit
// Lloyd-Max stages in the rotated space, x̃ = n Πᵀ (ĉ₁ + ĉ₂), side {n}. Scores read two tables
// (one per stage) per coordinate; values sum n (ĉ₁ + ĉ₂) in the rotated space, Πᵀ once per query.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/vector_codec.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/methods/rvq.hpp"

namespace optiq::kv {

class RvqCodec : public VectorCodecBase<RVQ<>> {
public:
    static constexpr bool plain_value_space = false;

    struct query_state {
        std::vector<float> lut1, lut2;  ///< d x 2^b each: (Π q)_i · stage centroid
        std::vector<float> rotated;
    };

    explicit RvqCodec(quantizer_type q) : VectorCodecBase(std::move(q)) {
        const auto a = q_.stage1().centroids(), b = q_.stage2().centroids();
        c1_.assign(a.begin(), a.end());
        c2_.assign(b.begin(), b.end());
    }

    [[nodiscard]] int bits() const noexcept { return 2 * q_.bits(); }

    void prepare_query(std::span<const float> q, query_state& st, scratch_type&) const {
        const std::size_t d = dim(), k = c1_.size();
        st.rotated.resize(d);
        q_.preconditioner().forward(q, st.rotated);
        st.lut1.resize(d * k);
        st.lut2.resize(d * k);
        for (std::size_t i = 0; i < d; ++i)
            for (std::size_t c = 0; c < k; ++c) {
                st.lut1[i * k + c] = st.rotated[i] * c1_[c];
                st.lut2[i * k + c] = st.rotated[i] * c2_[c];
            }
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words, std::span<const float> side,
               scratch_type& s, float* out, std::size_t stride) const {
        unpack(words, s);
        const std::size_t d = dim(), k = c1_.size();
        for (std::size_t j = 0; j < states.size(); ++j)
            out[j * stride] = side[0] * (detail::lut_sum(states[j].lut1.data(), s.c1.data(), d, k) +
                                         detail::lut_sum(states[j].lut2.data(), s.c2.data(), d, k));
    }

    void accumulate(std::span<const std::uint32_t> words, std::span<const float> side, scratch_type& s,
                    const float* weights, std::size_t stride, float* accs, std::size_t n) const {
        unpack(words, s);
        const std::size_t d = dim();
        for (std::size_t j = 0; j < n; ++j) {
            const float w = weights[j * stride] * side[0];
            float* acc = accs + j * d;
            for (std::size_t i = 0; i < d; ++i) acc[i] += w * (c1_[s.c1[i]] + c2_[s.c2[i]]);
        }
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type&) const {
        q_.preconditioner().inverse(acc, out);
    }

private:
    void unpack(std::span<const std::uint32_t> words, scratch_type& s) const {
        const std::size_t half = words.size() / 2;
        q_.packer().unpack(words.subspan(0, half), s.c1);
        q_.packer().unpack(words.subspan(half, half), s.c2);
    }

    std::vector<float> c1_, c2_;
};

static_assert(KVCodec<RvqCodec>);

/// RVQ codec at b = 1..8 bits per stage (2b bits per coordinate stored).
[[nodiscard]] inline RvqCodec rvq_codec(std::size_t dim, int bits, std::uint64_t seed, const char* which = "codec") {
    detail::check_policy_bits("rvq", which, bits, 1, 8);
    return RvqCodec(RVQ<>(dim, bits, seed));
}

using RvqPolicy = Policy<RvqCodec, RvqCodec>;

[[nodiscard]] inline RvqPolicy rvq_policy(std::size_t dim, int k_bits, int v_bits, std::uint64_t layer_seed,
                                          std::size_t recent = 0) {
    return RvqPolicy(rvq_codec(dim, k_bits, detail::key_seed(layer_seed), "key"),
                     rvq_codec(dim, v_bits, detail::value_seed(layer_seed), "value"), recent);
}

}  // namespace optiq::kv

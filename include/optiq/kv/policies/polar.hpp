#pragma once
// PolarQuant keys and values ("polar:b1,b2,..."; arXiv 2502.02617; quant/methods/polar.hpp). A
// record is the method's encoding: per-level angle streams plus d/2^L f16 radii. Attention
// rebuilds each vector in the rotated space from radii and angle tables (cos/sin of the
// centroids, no trigonometry per token), dots it with Π q, and sums values in the rotated space
// (Πᵀ once per query). The rebuild is PolarQuant::reconstruct_rotated.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/vector_codec.hpp"
#include "optiq/quant/methods/polar.hpp"

namespace optiq::kv {

class PolarCodec : public VectorCodecBase<PolarQuant<>> {
public:
    static constexpr bool plain_value_space = false;

    struct query_state {
        std::vector<float> rotated;
    };

    explicit PolarCodec(quantizer_type q) : VectorCodecBase(std::move(q)) {}


    void prepare_query(std::span<const float> q, query_state& st, scratch_type&) const {
        st.rotated.resize(dim());
        q_.preconditioner().forward(q, st.rotated);
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words, std::span<const float> side,
               scratch_type& s, float* out, std::size_t stride) const {
        q_.reconstruct_rotated(words, side, s.y, s.codes);
        const std::size_t d = dim();
        for (std::size_t j = 0; j < states.size(); ++j) {
            const float* q = states[j].rotated.data();
            float acc = 0.0f;
            for (std::size_t i = 0; i < d; ++i) acc += q[i] * s.y[i];
            out[j * stride] = acc;
        }
    }

    void accumulate(std::span<const std::uint32_t> words, std::span<const float> side, scratch_type& s,
                    const float* weights, std::size_t stride, float* accs, std::size_t n) const {
        q_.reconstruct_rotated(words, side, s.y, s.codes);
        const std::size_t d = dim();
        for (std::size_t j = 0; j < n; ++j) {
            const float w = weights[j * stride];
            float* acc = accs + j * d;
            for (std::size_t i = 0; i < d; ++i) acc[i] += w * s.y[i];
        }
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type&) const {
        q_.preconditioner().inverse(acc, out);
    }

};

static_assert(KVCodec<PolarCodec>);

/// PolarQuant with per-level angle bits (the paper: {4, 2, 2, 2}); 2^L must divide dim.
[[nodiscard]] inline PolarCodec polar_codec(std::size_t dim, std::vector<int> level_bits, std::uint64_t seed) {
    return PolarCodec(PolarQuant<>(dim, std::move(level_bits), seed));
}

using PolarPolicy = Policy<PolarCodec, PolarCodec>;

/// PolarQuant keys and values, L = levels.size() levels at the given bits each.
[[nodiscard]] inline PolarPolicy polar_policy(std::size_t dim, std::vector<int> k_level_bits,
                                              std::vector<int> v_level_bits, std::uint64_t layer_seed,
                                              std::size_t recent = 0) {
    return PolarPolicy(polar_codec(dim, std::move(k_level_bits), detail::key_seed(layer_seed)),
                       polar_codec(dim, std::move(v_level_bits), detail::value_seed(layer_seed)), recent);
}

}  // namespace optiq::kv

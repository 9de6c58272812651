#pragma once
// QJL keys ("qjl"; arXiv 2406.03482; quant/methods/qjl.hpp): m sign bits z = sign(S k) and ‖k‖.
// <q, k̃> = c ‖k‖ <S q, z>, c = sqrt(π/2)/m, with S q computed once per query. Used for values,
// k̃ = c ‖k‖ Sᵀ z, so Σ_j p_j k̃_j = Sᵀ Σ_j p_j c ‖k_j‖ z_j: the accumulator holds m sketch
// coefficients and finish() applies Sᵀ once per query. QJL is 1 bit per sketch row; it is meant
// for keys (values are usually kept in f16: see qjl_policy).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/batch_io.hpp"
#include "optiq/kv/policies/full_precision.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/quant/methods/qjl.hpp"

namespace optiq::kv {

class QjlCodec {
public:
    using quantizer_type = QJL;
    static constexpr bool plain_value_space = false;

    struct scratch_type {};
    struct query_state {
        std::vector<float> sketched;  ///< S q
    };

    explicit QjlCodec(quantizer_type q) : q_(std::move(q)) {
        c_ = static_cast<float>(optiq::detail::sqrt_half_pi / static_cast<double>(q_.sketch_rows()));
    }

    [[nodiscard]] const quantizer_type& quantizer() const noexcept { return q_; }
    [[nodiscard]] std::size_t dim() const noexcept { return q_.dim(); }
    [[nodiscard]] int bits() const noexcept { return q_.bits(); }
    [[nodiscard]] std::string name() const { return q_.name(); }
    [[nodiscard]] std::size_t words_per_token() const noexcept { return q_.words_per_vector(); }
    [[nodiscard]] std::size_t side_per_token() const noexcept { return 1; }
    [[nodiscard]] std::size_t accumulator_size() const noexcept { return q_.sketch_rows(); }
    [[nodiscard]] scratch_type make_scratch() const { return {}; }

    void encode(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side, scratch_type&) const {
        detail::encode_one(q_, x, words, side);
    }
    void decode(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out) const {
        detail::decode_one(q_, words, side, q_.side_type(), out);
    }

    void prepare_query(std::span<const float> q, query_state& st, scratch_type&) const {
        st.sketched.resize(q_.sketch_rows());
        q_.sketch().project(q, st.sketched);
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words, std::span<const float> side,
               scratch_type&, float* out, std::size_t stride) const {
        for (std::size_t j = 0; j < states.size(); ++j)
            out[j * stride] = c_ * side[0] * q_.sketch().signed_sum(states[j].sketched, words);
    }

    void accumulate(std::span<const std::uint32_t> words, std::span<const float> side, scratch_type&,
                    const float* weights, std::size_t stride, float* accs, std::size_t n) const {
        const std::size_t m = q_.sketch_rows();
        for (std::size_t j = 0; j < n; ++j) {
            const float w = weights[j * stride] * c_ * side[0];
            float* acc = accs + j * m;
            for (std::size_t r = 0; r < m; ++r) acc[r] += ((words[r / 32] >> (r % 32)) & 1u) != 0 ? w : -w;
        }
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type&) const {
        const std::size_t d = dim(), m = q_.sketch_rows();
        const float* s = q_.sketch().matrix().data();
        for (std::size_t i = 0; i < d; ++i) out[i] = 0.0f;
        for (std::size_t r = 0; r < m; ++r)
            for (std::size_t i = 0; i < d; ++i) out[i] += acc[r] * s[r * d + i];
    }

private:
    quantizer_type q_;
    float c_ = 0.0f;
};

static_assert(KVCodec<QjlCodec>);

/// QJL with m sketch rows (0: m = d).
[[nodiscard]] inline QjlCodec qjl_codec(std::size_t dim, std::uint64_t seed, std::size_t sketch_rows = 0) {
    return QjlCodec(QJL(dim, seed, sketch_rows));
}

/// QJL keys with f16 values (the paper's setting: only keys are sketched).
using QjlPolicy = Policy<QjlCodec, F16Codec>;

[[nodiscard]] inline QjlPolicy qjl_policy(std::size_t dim, std::uint64_t layer_seed, std::size_t sketch_rows = 0,
                                          std::size_t recent = 0) {
    return QjlPolicy(qjl_codec(dim, detail::key_seed(layer_seed), sketch_rows), F16Codec(dim), recent);
}

}  // namespace optiq::kv

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

#include "optiq/backend/simd/kv_attention.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/full_precision.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/vector_codec.hpp"
#include "optiq/quant/methods/qjl.hpp"

namespace optiq::kv {

class QjlCodec : public VectorCodecBase<QJL> {
public:
    static constexpr bool plain_value_space = false;

    struct query_state {
        std::vector<float> sketched;  ///< S q
    };

    explicit QjlCodec(quantizer_type q) : VectorCodecBase(std::move(q)), c_(q_.scale()) {}

    [[nodiscard]] std::size_t accumulator_size() const noexcept { return q_.sketch_rows(); }

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
        for (std::size_t j = 0; j < n; ++j) q_.sketch().add_signs(words, weights[j * stride] * c_ * side[0], accs + j * m);
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type&) const {
        for (std::size_t i = 0; i < dim(); ++i) out[i] = 0.0f;
        q_.sketch().add_transposed(acc, out);
    }

    [[nodiscard]] backend::kv::VectorCoding coding() const noexcept {
        backend::kv::VectorCoding c;
        c.coding = backend::kv::Coding::signs;
        c.dim = q_.sketch_rows();
        return c;
    }

    /// score() over a whole run (KVRunCodec): c ‖k‖ <S q, z>.
    template <class Tag>
    void score_run(Tag tag, std::span<const query_state> states, const backend::kv::Records& r, float* out,
                   std::size_t stride) const {
        const auto c = coding();
        const backend::kv::TokenScale ts{r.side, nullptr, r.side_stride, c_};
        detail::for_state_groups(states, [](const query_state& s) { return s.sketched.data(); },
                                 [&](std::size_t k0, std::size_t kn, const float* const* q) {
                                     backend::kv::dot_run(tag, c, r, ts, q, kn, out + k0 * stride, stride, false);
                                 });
    }

    template <class Tag>
    void accumulate_run(Tag tag, const backend::kv::Records& r, const float* weights, std::size_t stride, float* accs,
                        std::size_t n) const {
        const std::size_t m = q_.sketch_rows();
        const auto c = coding();
        const backend::kv::TokenScale ts{r.side, nullptr, r.side_stride, c_};
        detail::for_groups(n, [&](std::size_t k0, std::size_t kn) {
            backend::kv::axpy_run(tag, c, r, ts, weights + k0 * stride, stride, kn, accs + k0 * m, m);
        });
    }

private:
    float c_;  ///< sqrt(π/2)/m
};

static_assert(KVRunCodec<QjlCodec>);

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

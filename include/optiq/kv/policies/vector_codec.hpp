#pragma once
// VectorCodecBase<Q>: what every KV codec over a per-vector core method (quant/concepts.hpp
// VectorCodec) shares. A record is exactly the method's per-vector encoding (its words, then its
// side floats); encode/decode are the method's encode_vector/decode_vector with the codec's
// scratch. A codec derives from it and adds query preparation, scoring and value accumulation
// (and hides name(), bits() or accumulator_size() where its own differ). detail::lut_sum is the
// table-lookup score the codebook codecs share.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "optiq/backend/simd/kv_types.hpp"
#include "optiq/quant/concepts.hpp"

namespace optiq::kv {

template <VectorCodec Q>
class VectorCodecBase {
public:
    using quantizer_type = Q;
    using scratch_type = typename Q::scratch_type;

    explicit VectorCodecBase(Q q) : q_(std::move(q)) {}

    [[nodiscard]] const Q& quantizer() const noexcept { return q_; }
    [[nodiscard]] std::size_t dim() const noexcept { return q_.dim(); }
    [[nodiscard]] int bits() const noexcept { return q_.bits(); }
    [[nodiscard]] std::string name() const { return q_.name(); }
    [[nodiscard]] std::size_t words_per_token() const noexcept { return q_.words_per_vector(); }
    [[nodiscard]] std::size_t side_per_token() const noexcept { return q_.side_per_vector(); }
    /// Values accumulate d coordinates (rotated or not) unless the codec says otherwise.
    [[nodiscard]] std::size_t accumulator_size() const noexcept { return q_.dim(); }
    [[nodiscard]] scratch_type make_scratch() const { return q_.make_scratch(); }

    void encode(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                scratch_type& scratch) const {
        q_.encode_vector(x, words, side, scratch);
    }
    /// The core's own dequantization: the reference path's ground truth.
    void decode(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out) const {
        scratch_type scratch = q_.make_scratch();
        q_.decode_vector(words, side, out, scratch);
    }

protected:
    Q q_;
};

namespace detail {

/// f(k0, kn, q) for the states in groups of at most backend::kv::max_states (the kernels keep one
/// group's accumulators in registers), q[k] = vec(states[k0 + k]).
template <class S, class Vec, class F>
void for_state_groups(std::span<const S> states, Vec vec, F&& f) {
    constexpr std::size_t g = backend::kv::max_states;
    for (std::size_t k0 = 0; k0 < states.size(); k0 += g) {
        const std::size_t kn = std::min(g, states.size() - k0);
        const float* q[g] = {};
        for (std::size_t k = 0; k < kn; ++k) q[k] = vec(states[k0 + k]);
        f(k0, kn, static_cast<const float* const*>(q));
    }
}

/// f(k0, kn) for n accumulators in groups of at most backend::kv::max_states.
template <class F>
void for_groups(std::size_t n, F&& f) {
    constexpr std::size_t g = backend::kv::max_states;
    for (std::size_t k0 = 0; k0 < n; k0 += g) f(k0, std::min(g, n - k0));
}

/// Four running sums of d table reads, lut[i * k + codes[i]].
[[nodiscard]] inline float lut_sum(const float* lut, const std::uint8_t* codes, std::size_t d, std::size_t k) noexcept {
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::size_t i = 0;
    for (; i + 4 <= d; i += 4)
        for (std::size_t u = 0; u < 4; ++u) a[u] += lut[(i + u) * k + codes[i + u]];
    for (; i < d; ++i) a[0] += lut[i * k + codes[i]];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

}  // namespace detail
}  // namespace optiq::kv

#pragma once
// PolarQuant keys and values ("polar:b1,b2,..."; arXiv 2502.02617; quant/methods/polar.hpp). A
// record is the method's encoding: per-level angle streams plus d/2^L f16 radii. Attention
// rebuilds each vector in the rotated space from radii and angle tables (cos/sin of the
// centroids, no trigonometry per token), dots it with Π q, and sums values in the rotated space
// (Πᵀ once per query). The rebuild follows PolarQuant::reconstruct_rotated step for step.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/batch_io.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/methods/polar.hpp"

namespace optiq::kv {

class PolarCodec {
public:
    using quantizer_type = PolarQuant<>;
    static constexpr bool plain_value_space = false;

    struct scratch_type {
        std::vector<float> y;
        std::vector<std::uint8_t> codes;
    };
    struct query_state {
        std::vector<float> rotated;
    };

    explicit PolarCodec(quantizer_type q) : q_(std::move(q)) {
        for (std::size_t l = 1; l <= q_.levels(); ++l) {
            Level t{MlxStream<>(q_.level_bits()[l - 1]), q_.level_word_offset(l), q_.level_word_offset(l + 1), {}, {}};
            for (const float c : q_.centroids(l)) {
                t.cos_c.push_back(static_cast<float>(std::cos(static_cast<double>(c))));
                t.sin_c.push_back(static_cast<float>(std::sin(static_cast<double>(c))));
            }
            levels_.push_back(std::move(t));
        }
    }

    [[nodiscard]] const quantizer_type& quantizer() const noexcept { return q_; }
    [[nodiscard]] std::size_t dim() const noexcept { return q_.dim(); }
    [[nodiscard]] int bits() const noexcept { return q_.bits(); }
    [[nodiscard]] std::string name() const { return q_.name(); }
    [[nodiscard]] std::size_t words_per_token() const noexcept { return q_.words_per_vector(); }
    [[nodiscard]] std::size_t side_per_token() const noexcept { return q_.side_per_vector(); }
    [[nodiscard]] std::size_t accumulator_size() const noexcept { return q_.dim(); }
    [[nodiscard]] scratch_type make_scratch() const {
        return scratch_type{std::vector<float>(dim()), std::vector<std::uint8_t>(dim() / 2)};
    }

    void encode(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side, scratch_type&) const {
        detail::encode_one(q_, x, words, side);
    }
    void decode(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out) const {
        detail::decode_one(q_, words, side, q_.side_type(), out);
    }

    void prepare_query(std::span<const float> q, query_state& st, scratch_type&) const {
        st.rotated.resize(dim());
        q_.preconditioner().forward(q, st.rotated);
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words, std::span<const float> side,
               scratch_type& s, float* out, std::size_t stride) const {
        rebuild(words, side, s);
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
        rebuild(words, side, s);
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

private:
    struct Level {
        MlxStream<> packer;
        std::size_t begin, end;  ///< word range of the level's stream
        std::vector<float> cos_c, sin_c;
    };

    /// ŷ: the polar recursion run backwards from the radii.
    void rebuild(std::span<const std::uint32_t> words, std::span<const float> radii, scratch_type& s) const {
        float* y = s.y.data();
        std::size_t m = radii.size();
        for (std::size_t j = 0; j < m; ++j) y[j] = radii[j];
        for (std::size_t l = levels_.size(); l-- > 0;) {
            const Level& t = levels_[l];
            t.packer.unpack(words.subspan(t.begin, t.end - t.begin), std::span<std::uint8_t>(s.codes.data(), m));
            for (std::size_t j = m; j-- > 0;) {  // backwards: y[j] is read before y[2j], y[2j+1] are written
                const float r = y[j];
                y[2 * j] = r * t.cos_c[s.codes[j]];
                y[2 * j + 1] = r * t.sin_c[s.codes[j]];
            }
            m *= 2;
        }
    }

    quantizer_type q_;
    std::vector<Level> levels_;
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

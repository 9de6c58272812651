#pragma once
// QuantizerCodec<Quantizer<C, P, K>>: any composed quantizer (TurboQuant-MSE, MLX affine, ...) as
// a KVCodec. A record is exactly the quantizer's per-vector encoding (its words, then its side
// floats: ‖x‖ first when the codebook wants unit vectors, then each group's side data).
//
// Attention in the rotated space (TurboQuant, arXiv 2504.19874; design.md "KVCache"):
//   <q, x̂> = <q, ‖x‖ Πᵀ ĉ> = ‖x‖ <Π q, ĉ>, so a query is rotated once and, for a fixed codebook,
//   expanded to lut[i][c] = (Πq)_i · centroid[c]; a key then costs d table reads;
//   Σ_j p_j x̂_j = Πᵀ Σ_j p_j ‖x_j‖ ĉ_j, so values are summed in the rotated space and rotated
//   back once per query (finish).
// encode() is Quantizer::encode_vector with the caller's scratch (no allocation per token).
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/backend/simd/kv_attention.hpp"
#include "optiq/codebook/affine.hpp"
#include "optiq/codebook/concepts.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/vector_codec.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/identity.hpp"
#include "optiq/quant/encoded.hpp"
#include "optiq/quant/quantizer.hpp"

namespace optiq::kv {

template <class Q>
class QuantizerCodec;

namespace detail {
template <class K>
inline constexpr bool is_mlx_stream = false;
template <int B>
inline constexpr bool is_mlx_stream<MlxStream<B>> = true;
}  // namespace detail

template <Codebook C, Preconditioner P, Packer K>
class QuantizerCodec<Quantizer<C, P, K>> : public VectorCodecBase<Quantizer<C, P, K>> {
    using base = VectorCodecBase<Quantizer<C, P, K>>;
    using base::q_;

public:
    using quantizer_type = Quantizer<C, P, K>;
    using typename base::scratch_type;  ///< {y, codes}
    using base::dim;
    static constexpr bool plain_value_space = std::same_as<P, Identity>;
    static constexpr bool fixed_codebook = FixedCodebook<C>;
    static constexpr bool affine_codebook = std::same_as<C, Affine>;
    /// Whole-run kernels (KVRunCodec): one codebook for every coordinate, or MLX's affine rule,
    /// over MLX's bit stream.
    static constexpr bool run_kernels = (fixed_codebook || affine_codebook) && detail::is_mlx_stream<K>;

    struct query_state {
        std::vector<float> rotated;     ///< Π q
        std::vector<float> lut;         ///< d x 2^bits, fixed codebooks only
        std::vector<float> pair_lut;    ///< 4-bit fixed codebooks: (d/2) x 256, byte -> two coordinates' sum
        std::vector<float> group_sums;  ///< affine codebooks: Σ of Π q over each group
    };

    QuantizerCodec(quantizer_type q, std::string name) : base(std::move(q)), name_(std::move(name)) {
        if constexpr (fixed_codebook) {
            const auto c = q_.codebook().centroids();
            centroids_.assign(c.begin(), c.end());
            table_.assign(std::max<std::size_t>(16, c.size()), 0.0f);  // the kernels read 16 entries at least
            std::copy(c.begin(), c.end(), table_.begin());
        }
    }

    /// How a record holds its vector (backend/simd/kv_types.hpp); valid while the codec lives.
    [[nodiscard]] backend::kv::VectorCoding coding() const noexcept
        requires run_kernels
    {
        backend::kv::VectorCoding c;
        c.bits = q_.bits();
        c.dim = dim();
        if constexpr (fixed_codebook) {
            c.coding = backend::kv::Coding::codebook;
            c.table = table_.data();
            c.int8 = int8_;
        } else {
            c.coding = backend::kv::Coding::affine;
            c.group = q_.group_size();
            c.side_offset = C::wants_unit_norm ? 1 : 0;
        }
        return c;
    }

    /// score() over a whole run of records (kv/concepts.hpp KVRunCodec).
    template <class Tag>
    void score_run(Tag tag, std::span<const query_state> states, const backend::kv::Records& r, float* out,
                   std::size_t stride) const
        requires run_kernels
    {
        const auto c = coding();
        const backend::kv::TokenScale ts = norm_scale(r);
        detail::for_state_groups(states, [](const query_state& s) { return s.rotated.data(); },
                                 [&](std::size_t k0, std::size_t kn, const float* const* q) {
                                     backend::kv::dot_run(tag, c, r, ts, q, kn, out + k0 * stride, stride, false);
                                 });
    }

    /// accumulate() over a whole run of records.
    template <class Tag>
    void accumulate_run(Tag tag, const backend::kv::Records& r, const float* weights, std::size_t stride, float* accs,
                        std::size_t n) const
        requires run_kernels
    {
        const auto c = coding();
        const backend::kv::TokenScale ts = norm_scale(r);
        detail::for_groups(n, [&](std::size_t k0, std::size_t kn) {
            backend::kv::axpy_run(tag, c, r, ts, weights + k0 * stride, stride, kn, accs + k0 * dim(), dim());
        });
    }

    /// "tq_mse:4", with "+int8" when int8 attention is on.
    [[nodiscard]] std::string name() const { return int8_ ? name_ + "+int8" : name_; }

    /// Int8 arithmetic in the whole-run attention kernels (backend/simd/kv_int8.hpp): opt-in and
    /// approximate; it runs for 4-bit codes on AVX-512 VNNI, everywhere else attention stays exact.
    /// Records are unchanged (the same cache serves both ways).
    void set_int8_attention(bool on) noexcept
        requires fixed_codebook
    {
        int8_ = on;
    }
    [[nodiscard]] bool int8_attention() const noexcept { return int8_; }

    void prepare_query(std::span<const float> q, query_state& st, scratch_type& /*scratch*/) const {
        const std::size_t d = dim();
        st.rotated.resize(d);
        q_.preconditioner().forward(q, st.rotated);
        if constexpr (fixed_codebook) {
            const std::size_t k = centroids_.size();
            st.lut.resize(d * k);
            for (std::size_t i = 0; i < d; ++i)
                for (std::size_t c = 0; c < k; ++c) st.lut[i * k + c] = st.rotated[i] * centroids_[c];
            if (pair_scoring()) {
                // Byte j of a record holds the codes of coordinates 2j (low nibble) and 2j+1.
                // (entry b = hi·16 + lo, the inner loop over lo runs on contiguous floats and vectorises)
                st.pair_lut.resize(d / 2 * 256);
                for (std::size_t j = 0; j < d / 2; ++j) {
                    const float* lo = st.lut.data() + (2 * j) * 16;
                    for (std::size_t hi = 0; hi < 16; ++hi) {
                        const float h = st.lut[(2 * j + 1) * 16 + hi];
                        float* row = st.pair_lut.data() + j * 256 + hi * 16;
                        for (std::size_t l = 0; l < 16; ++l) row[l] = lo[l] + h;
                    }
                }
            }
        }
        if constexpr (affine_codebook) {
            const std::size_t g = q_.group_size();
            st.group_sums.assign(d / g, 0.0f);
            for (std::size_t i = 0; i < d; ++i) st.group_sums[i / g] += st.rotated[i];
        }
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words, std::span<const float> side,
               scratch_type& scratch, float* out, std::size_t stride) const {
        const std::size_t d = dim();
        const float norm = C::wants_unit_norm ? side[0] : 1.0f;
        if constexpr (fixed_codebook) {
            if (pair_scoring()) {
                for (std::size_t s = 0; s < states.size(); ++s)
                    out[s * stride] = norm * pair_lut_sum(states[s].pair_lut.data(), words.data(), d / 8);
                return;
            }
        }
        q_.packer().unpack(words, scratch.codes);
        const std::uint8_t* codes = scratch.codes.data();
        for (std::size_t s = 0; s < states.size(); ++s) {
            float acc = 0.0f;
            if constexpr (fixed_codebook) {
                acc = detail::lut_sum(states[s].lut.data(), codes, d, centroids_.size());
            } else if constexpr (affine_codebook) {
                // Σ_g (scale_g Σ_i q_i code_i + bias_g Σ_i q_i): MLX's quantized-matmul form.
                const std::size_t g = q_.group_size();
                const float* q = states[s].rotated.data();
                const float* gs = side.data() + (C::wants_unit_norm ? 1 : 0);
                for (std::size_t g0 = 0, j = 0; g0 < d; g0 += g, ++j) {
                    float dot = 0.0f;
                    for (std::size_t i = g0; i < g0 + g; ++i) dot += q[i] * static_cast<float>(codes[i]);
                    acc += gs[2 * j] * dot + gs[2 * j + 1] * states[s].group_sums[j];
                }
            } else {
                acc = grouped_dot(states[s].rotated.data(), codes, side);
            }
            out[s * stride] = norm * acc;
        }
    }

    void accumulate(std::span<const std::uint32_t> words, std::span<const float> side, scratch_type& scratch,
                    const float* weights, std::size_t stride, float* accs, std::size_t n) const {
        const std::size_t d = dim();
        q_.packer().unpack(words, scratch.codes);
        const std::uint8_t* codes = scratch.codes.data();
        const float norm = C::wants_unit_norm ? side[0] : 1.0f;
        // The rotated-space vector once (table reads or group side data applied), then a scaled
        // add per query, which vectorises: one pass of d gathers however many queries share a key.
        float* y = scratch.y.data();
        if constexpr (fixed_codebook) {
            const float* cent = centroids_.data();
            for (std::size_t i = 0; i < d; ++i) y[i] = cent[codes[i]];
        } else {
            decode_rotated(codes, side, y);
        }
        for (std::size_t s = 0; s < n; ++s) {
            const float w = weights[s * stride] * norm;
            float* acc = accs + s * d;
            for (std::size_t i = 0; i < d; ++i) acc[i] += w * y[i];
        }
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type& /*scratch*/) const {
        q_.preconditioner().inverse(acc, out);
    }

private:
    /// 4-bit codes of a fixed codebook, d a multiple of 8 (whole words): scores read one table
    /// entry per byte (two coordinates) straight from the record, no unpacking.
    [[nodiscard]] bool pair_scoring() const noexcept {
        return fixed_codebook && q_.bits() == 4 && dim() % 8 == 0;
    }

    /// Σ over the record's bytes of pair_lut[byte index][byte], four running sums (one per byte
    /// of a word), the words read as integers (no dependence on the machine's byte order).
    [[nodiscard]] static float pair_lut_sum(const float* pair, const std::uint32_t* w, std::size_t words) noexcept {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (std::size_t k = 0; k < words; ++k, pair += 1024) {
            const std::uint32_t v = w[k];
            a0 += pair[v & 0xFFu];
            a1 += pair[256 + ((v >> 8) & 0xFFu)];
            a2 += pair[512 + ((v >> 16) & 0xFFu)];
            a3 += pair[768 + (v >> 24)];
        }
        return (a0 + a1) + (a2 + a3);
    }

    /// Σ_i rotated_i · decode(code_i, group side), the core's inner_product for adaptive codebooks.
    [[nodiscard]] float grouped_dot(const float* rotated, const std::uint8_t* codes,
                                    std::span<const float> side) const {
        const std::size_t d = dim(), g = q_.group_size();
        const auto& cb = q_.codebook();
        std::size_t s = C::wants_unit_norm ? 1 : 0;
        typename C::side_type gs{};
        float acc = 0.0f;
        for (std::size_t g0 = 0; g0 < d; g0 += g) {
            for (std::size_t j = 0; j < C::side_floats; ++j) gs[j] = side[s++];
            for (std::size_t i = g0; i < g0 + g; ++i) acc += rotated[i] * cb.decode(codes[i], gs);
        }
        return acc;
    }

    void decode_rotated(const std::uint8_t* codes, std::span<const float> side, float* y) const {
        const std::size_t d = dim(), g = q_.group_size();
        const auto& cb = q_.codebook();
        std::size_t s = C::wants_unit_norm ? 1 : 0;
        typename C::side_type gs{};
        for (std::size_t g0 = 0; g0 < d; g0 += g) {
            for (std::size_t j = 0; j < C::side_floats; ++j) gs[j] = side[s++];
            for (std::size_t i = g0; i < g0 + g; ++i) y[i] = cb.decode(codes[i], gs);
        }
    }

    /// ‖x‖ (side float 0) when the codebook codes unit vectors.
    [[nodiscard]] static backend::kv::TokenScale norm_scale(const backend::kv::Records& r) noexcept {
        backend::kv::TokenScale ts;
        if constexpr (C::wants_unit_norm) {
            ts.a = r.side;
            ts.stride = r.side_stride;
        }
        return ts;
    }

    std::string name_;
    bool int8_ = false;
    std::vector<float> centroids_;  ///< fixed codebooks: the reconstruction table
    std::vector<float> table_;      ///< the same, zero-padded to at least 16 entries for the kernels
};

}  // namespace optiq::kv

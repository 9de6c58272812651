#pragma once
// KIVI (arXiv 2402.02750; quant/methods/kivi.hpp) in the cache.
//
// KiviKeyCodec ("kivi_keys:b:gG"): keys per channel — each block of G consecutive tokens (blocks
// start at positions 0, G, 2G, ...) shares one f16 {scale, zero} per channel, because key outliers
// sit in fixed channels (Sec. 3.2). It is a KVBlockKeyCodec: tokens wait in the recent window
// until a whole block leaves it, then the block is quantized at once. The block's 2d side values
// ({scale, zero} interleaved per channel, the core's layout) are spread over its G records, 2d/G
// floats each, so storage is exactly the core's. A query is turned, once per block, into
// qscale_c = q_c s_c and offset = Σ_c q_c z_c; each key is then Σ_c qscale_c code_c + offset.
// KiviValueCodec ("kivi_values:b:gG"): values per token, each group of G channels with its own
// f16 {scale, zero}; score Σ_g (s_g Σ_{i∈g} q_i c_i + z_g Σ_{i∈g} q_i) with the group sums of q
// computed once per query; values accumulate c_i s_g + z_g in the model's space.
// KIVI's residual (the newest R tokens in full precision) is the policy's recent window.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "optiq/backend/simd/kv_attention.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/vector_codec.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/methods/kivi.hpp"

namespace optiq::kv {

class KiviKeyCodec {
public:
    using quantizer_type = KiviKeys;

    struct scratch_type {
        quantizer_type::scratch_type q;  ///< the core's block scratch (G x d codes)
        std::vector<float> qscale;       ///< per query state: q_c * scale_c
        std::vector<float> offset;       ///< per query state: Σ q_c * zero_c
    };
    struct query_state {
        std::vector<float> q;
    };

    /// dim channels, bits 1..8, blocks of group_size tokens (2 dim must be a multiple of it).
    KiviKeyCodec(std::size_t dim, int bits, std::size_t group_size)
        : q_(dim, bits, group_size, 0, SideType::f16) {
        if ((2 * dim) % group_size != 0)
            optiq::detail::fail<config_error>("kv::KiviKeyCodec: the ", 2 * dim, " per-channel side values of a block ",
                                              "cannot be spread evenly over ", group_size, " tokens");
    }

    [[nodiscard]] const quantizer_type& quantizer() const noexcept { return q_; }
    [[nodiscard]] std::size_t dim() const noexcept { return q_.dim(); }
    [[nodiscard]] int bits() const noexcept { return q_.bits(); }
    [[nodiscard]] std::string name() const { return q_.name(); }
    [[nodiscard]] std::size_t block_tokens() const noexcept { return q_.group_size(); }
    [[nodiscard]] std::size_t words_per_token() const noexcept { return q_.words_per_vector(); }
    [[nodiscard]] std::size_t side_per_token() const noexcept { return 2 * q_.dim() / q_.group_size(); }
    [[nodiscard]] scratch_type make_scratch() const { return scratch_type{q_.make_scratch(), {}, {}}; }

    /// One block of block_tokens() tokens; its d {scale, zero} pairs fill the block's side slices.
    void encode_block(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                      scratch_type& scratch) const {
        if (x.size() != block_tokens() * dim() || words.size() != block_tokens() * words_per_token() ||
            side.size() != q_.block_params())
            optiq::detail::fail<shape_error>("kv::KiviKeyCodec: a block is ", block_tokens(), " tokens of ", dim(),
                                             " values into ", block_tokens() * words_per_token(), " words and ",
                                             q_.block_params(), " side values; got ", x.size(), ", ", words.size(),
                                             " and ", side.size());
        q_.encode_block(x, words, side, scratch.q);
    }

    void decode_block(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out) const {
        scratch_type scratch = make_scratch();
        q_.decode_block(words, side, out, scratch.q);
    }

    void prepare_query(std::span<const float> q, query_state& st, scratch_type&) const {
        st.q.assign(q.begin(), q.end());
    }

    void score_block(std::span<const query_state> states, std::span<const std::uint32_t> words,
                     std::span<const float> side, scratch_type& s, float* out, std::size_t stride) const {
        const std::size_t d = dim(), n = states.size(), w = words_per_token();
        s.qscale.resize(n * d);
        s.offset.resize(n);
        for (std::size_t k = 0; k < n; ++k) {
            const float* q = states[k].q.data();
            float off = 0.0f;
            for (std::size_t c = 0; c < d; ++c) {
                s.qscale[k * d + c] = q[c] * side[2 * c];
                off += q[c] * side[2 * c + 1];
            }
            s.offset[k] = off;
        }
        const std::span<std::uint8_t> codes(s.q.codes.data(), d);
        for (std::size_t j = 0; j < block_tokens(); ++j) {
            q_.packer().unpack(words.subspan(j * w, w), codes);
            for (std::size_t k = 0; k < n; ++k) {
                const float* qs = s.qscale.data() + k * d;
                float acc = 0.0f;
                for (std::size_t c = 0; c < d; ++c) acc += qs[c] * static_cast<float>(codes[c]);
                out[k * stride + j] = acc + s.offset[k];
            }
        }
    }

    /// score_block on an architecture's kernels: the codes of the block's tokens dotted with
    /// q_c s_c (integer coding), plus the offset.
    template <class Tag>
    void score_block(Tag tag, std::span<const query_state> states, std::span<const std::uint32_t> words,
                     std::span<const float> side, scratch_type& s, float* out, std::size_t stride) const {
        if constexpr (std::is_same_v<Tag, backend::arch::scalar>) {
            score_block(states, words, side, s, out, stride);
        } else {
            const std::size_t d = dim(), n = states.size(), w = words_per_token();
            s.qscale.resize(n * d);
            s.offset.resize(n);
            for (std::size_t k = 0; k < n; ++k) {
                const float* q = states[k].q.data();
                float off = 0.0f;
                for (std::size_t c = 0; c < d; ++c) {
                    s.qscale[k * d + c] = q[c] * side[2 * c];
                    off += q[c] * side[2 * c + 1];
                }
                s.offset[k] = off;
            }
            backend::kv::VectorCoding c;
            c.coding = backend::kv::Coding::integer;
            c.bits = bits();
            c.dim = d;
            const backend::kv::Records r{words.data(), w, nullptr, 0, block_tokens()};
            detail::for_groups(n, [&](std::size_t k0, std::size_t kn) {
                const float* q[backend::kv::max_states] = {};
                for (std::size_t k = 0; k < kn; ++k) q[k] = s.qscale.data() + (k0 + k) * d;
                backend::kv::dot_run(tag, c, r, {}, q, kn, out + k0 * stride, stride, false);
            });
            for (std::size_t k = 0; k < n; ++k)
                for (std::size_t j = 0; j < block_tokens(); ++j) out[k * stride + j] += s.offset[k];
        }
    }

private:
    quantizer_type q_;
};

static_assert(KVRunBlockKeyCodec<KiviKeyCodec>);

class KiviValueCodec : public VectorCodecBase<KiviValues> {
public:
    static constexpr bool plain_value_space = true;

    struct query_state {
        std::vector<float> q;
        std::vector<float> group_sums;
    };

    /// dim channels, bits 1..8, channel groups of group_size (must divide dim).
    KiviValueCodec(std::size_t dim, int bits, std::size_t group_size)
        : VectorCodecBase(KiviValues(dim, bits, group_size, 0, SideType::f16)) {}


    void prepare_query(std::span<const float> q, query_state& st, scratch_type&) const {
        const std::size_t g = q_.group_size();
        st.q.assign(q.begin(), q.end());
        st.group_sums.assign(dim() / g, 0.0f);
        for (std::size_t c = 0; c < dim(); ++c) st.group_sums[c / g] += q[c];
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words, std::span<const float> side,
               scratch_type& s, float* out, std::size_t stride) const {
        q_.packer().unpack(words, s.codes);
        const std::size_t d = dim(), g = q_.group_size();
        for (std::size_t j = 0; j < states.size(); ++j) {
            const float* q = states[j].q.data();
            float acc = 0.0f;
            for (std::size_t c0 = 0, k = 0; c0 < d; c0 += g, ++k) {
                float dot = 0.0f;
                for (std::size_t c = c0; c < c0 + g; ++c) dot += q[c] * static_cast<float>(s.codes[c]);
                acc += side[2 * k] * dot + side[2 * k + 1] * states[j].group_sums[k];
            }
            out[j * stride] = acc;
        }
    }

    void accumulate(std::span<const std::uint32_t> words, std::span<const float> side, scratch_type& s,
                    const float* weights, std::size_t stride, float* accs, std::size_t n) const {
        q_.packer().unpack(words, s.codes);
        const std::size_t d = dim(), g = q_.group_size();
        for (std::size_t j = 0; j < n; ++j) {
            const float w = weights[j * stride];
            float* acc = accs + j * d;
            for (std::size_t c = 0; c < d; ++c) {
                const float scaled = static_cast<float>(s.codes[c]) * side[2 * (c / g)];
                acc[c] += w * (scaled + side[2 * (c / g) + 1]);
            }
        }
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type&) const {
        for (std::size_t i = 0; i < dim(); ++i) out[i] = acc[i];
    }

    /// Codes with a {scale, zero} per channel group: x_c = code_c s_g + z_g (affine coding).
    [[nodiscard]] backend::kv::VectorCoding coding() const noexcept {
        backend::kv::VectorCoding c;
        c.coding = backend::kv::Coding::affine;
        c.bits = bits();
        c.dim = dim();
        c.group = q_.group_size();
        return c;
    }

    template <class Tag>
    void score_run(Tag tag, std::span<const query_state> states, const backend::kv::Records& r, float* out,
                   std::size_t stride) const {
        const auto c = coding();
        detail::for_state_groups(states, [](const query_state& s) { return s.q.data(); },
                                 [&](std::size_t k0, std::size_t kn, const float* const* q) {
                                     backend::kv::dot_run(tag, c, r, {}, q, kn, out + k0 * stride, stride, false);
                                 });
    }

    template <class Tag>
    void accumulate_run(Tag tag, const backend::kv::Records& r, const float* weights, std::size_t stride, float* accs,
                        std::size_t n) const {
        const auto c = coding();
        detail::for_groups(n, [&](std::size_t k0, std::size_t kn) {
            backend::kv::axpy_run(tag, c, r, {}, weights + k0 * stride, stride, kn, accs + k0 * dim(), dim());
        });
    }
};

static_assert(KVRunCodec<KiviValueCodec>);

[[nodiscard]] inline KiviValueCodec kivi_value_codec(std::size_t dim, int bits, std::size_t group_size = 32,
                                                     const char* which = "codec") {
    detail::check_policy_bits("kivi", which, bits, 1, 8);
    if (group_size == 0 || dim % group_size != 0)
        optiq::detail::fail<config_error>("kv policy kivi: ", which, " group_size = ", group_size,
                                          " does not divide the head dimension ", dim);
    return KiviValueCodec(dim, bits, group_size);
}

[[nodiscard]] inline KiviKeyCodec kivi_key_codec(std::size_t dim, int bits, std::size_t group_size = 32,
                                                 const char* which = "key") {
    detail::check_policy_bits("kivi", which, bits, 1, 8);
    if (group_size == 0) optiq::detail::fail<config_error>("kv policy kivi: ", which, " group_size is 0");
    return KiviKeyCodec(dim, bits, group_size);
}

using KiviPolicy = Policy<KiviKeyCodec, KiviValueCodec>;

/// KIVI: per-channel keys in blocks of group_size tokens, per-token values in channel groups of
/// group_size, the newest `recent` tokens (KIVI's residual R, at least group_size) in full precision.
/// The paper's setting: 2 bits, G = 32, R = 128.
[[nodiscard]] inline KiviPolicy kivi_policy(std::size_t dim, int k_bits, int v_bits, std::size_t group_size = 32,
                                            std::size_t recent = 128) {
    return KiviPolicy(kivi_key_codec(dim, k_bits, group_size, "key"),
                      kivi_value_codec(dim, v_bits, group_size, "value"), recent);
}

}  // namespace optiq::kv

#pragma once
// Full-precision KV storage: f32, f16 or bf16 (bits 0 in kv_config.json). f32 records hold the
// float bit patterns, one per word; f16/bf16 records hold two values per word, the even
// coordinate in the low half. Scores and value sums use the reference order of kv/attention.hpp
// (one running sum, coordinates in order), so an f32 cache attends exactly like the naive loop.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "optiq/backend/simd/kv_attention.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/vector_codec.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq::kv {

template <SideType T>
class FullPrecisionCodec {
public:
    static constexpr bool plain_value_space = true;
    /// f32 is the exact ground truth: a cache of f32 keys and values attends in the reference order
    /// on every architecture (kv/attention.hpp), so it equals the naive loop bit for bit.
    static constexpr bool exact_attention = T == SideType::f32;
    static constexpr SideType storage = T;

    struct scratch_type {
        std::vector<float> v;  ///< a widened 16-bit record
    };
    struct query_state {
        std::vector<float> q;
    };

    explicit FullPrecisionCodec(std::size_t dim) : dim_(dim) {
        if (dim == 0) optiq::detail::fail<shape_error>("kv::FullPrecisionCodec: dimension is 0");
    }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    [[nodiscard]] int bits() const noexcept { return 0; }
    [[nodiscard]] std::string name() const { return T == SideType::f32 ? "f32" : T == SideType::f16 ? "f16" : "bf16"; }
    [[nodiscard]] std::size_t words_per_token() const noexcept { return T == SideType::f32 ? dim_ : (dim_ + 1) / 2; }
    [[nodiscard]] std::size_t side_per_token() const noexcept { return 0; }
    [[nodiscard]] std::size_t accumulator_size() const noexcept { return dim_; }
    [[nodiscard]] scratch_type make_scratch() const { return scratch_type{std::vector<float>(dim_)}; }

    void encode(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> /*side*/,
                scratch_type& /*scratch*/) const noexcept {
        if constexpr (T == SideType::f32) {
            for (std::size_t i = 0; i < dim_; ++i) words[i] = std::bit_cast<std::uint32_t>(x[i]);
        } else {
            for (std::size_t w = 0; w < words.size(); ++w) words[w] = 0u;
            for (std::size_t i = 0; i < dim_; ++i)
                words[i / 2] |= static_cast<std::uint32_t>(to_bits(x[i])) << (16 * (i % 2));
        }
    }

    void decode(std::span<const std::uint32_t> words, std::span<const float> /*side*/,
                std::span<float> out) const noexcept {
        for (std::size_t i = 0; i < dim_; ++i) out[i] = load(words.data(), i);
    }

    void prepare_query(std::span<const float> q, query_state& st, scratch_type& /*scratch*/) const {
        st.q.assign(q.begin(), q.end());
    }

    void score(std::span<const query_state> states, std::span<const std::uint32_t> words,
               std::span<const float> /*side*/, scratch_type& scratch, float* out, std::size_t stride) const noexcept {
        const float* k = widen(words.data(), scratch);
        for (std::size_t s = 0; s < states.size(); ++s) {
            const float* q = states[s].q.data();
            float acc = 0.0f;
            for (std::size_t i = 0; i < dim_; ++i) acc += q[i] * k[i];
            out[s * stride] = acc;
        }
    }

    void accumulate(std::span<const std::uint32_t> words, std::span<const float> /*side*/, scratch_type& scratch,
                    const float* weights, std::size_t stride, float* accs, std::size_t n) const noexcept {
        const float* v = widen(words.data(), scratch);
        for (std::size_t s = 0; s < n; ++s) {
            const float w = weights[s * stride];
            float* acc = accs + s * dim_;
            for (std::size_t i = 0; i < dim_; ++i) acc[i] += w * v[i];
        }
    }

    void finish(std::span<const float> acc, std::span<float> out, scratch_type& /*scratch*/) const noexcept {
        for (std::size_t i = 0; i < dim_; ++i) out[i] = acc[i];
    }

    [[nodiscard]] backend::kv::VectorCoding coding() const noexcept {
        backend::kv::VectorCoding c;
        c.coding = T == SideType::f32 ? backend::kv::Coding::f32
                   : T == SideType::f16 ? backend::kv::Coding::f16
                                        : backend::kv::Coding::bf16;
        c.dim = dim_;
        return c;
    }

    /// score() over a whole run (KVRunCodec): the vector kernels widen 16-bit values in registers.
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
            backend::kv::axpy_run(tag, c, r, {}, weights + k0 * stride, stride, kn, accs + k0 * dim_, dim_);
        });
    }

private:
    [[nodiscard]] static std::uint16_t to_bits(float v) noexcept {
        return T == SideType::bf16 ? float_to_bf16_bits(v) : float_to_f16_bits(v);
    }
    [[nodiscard]] static float load(const std::uint32_t* w, std::size_t i) noexcept {
        if constexpr (T == SideType::f32) {
            return std::bit_cast<float>(w[i]);
        } else {
            const auto h = static_cast<std::uint16_t>(w[i / 2] >> (16 * (i % 2)));
            return T == SideType::bf16 ? bf16_bits_to_float(h) : f16_bits_to_float(h);
        }
    }
    /// The record widened to floats in scratch (once per record, shared by all queries of a GQA group).
    [[nodiscard]] const float* widen(const std::uint32_t* w, scratch_type& scratch) const noexcept {
        float* v = scratch.v.data();
        if constexpr (T == SideType::f32) {
            for (std::size_t i = 0; i < dim_; ++i) v[i] = std::bit_cast<float>(w[i]);
        } else {
            // Word by word (low half first): branch-free conversions, so the loop vectorises.
            const std::size_t pairs = dim_ / 2;
            for (std::size_t k = 0; k < pairs; ++k) {
                v[2 * k] = widen_half(static_cast<std::uint16_t>(w[k] & 0xFFFFu));
                v[2 * k + 1] = widen_half(static_cast<std::uint16_t>(w[k] >> 16));
            }
            if (dim_ % 2 != 0) v[dim_ - 1] = widen_half(static_cast<std::uint16_t>(w[pairs] & 0xFFFFu));
        }
        return v;
    }
    [[nodiscard]] static float widen_half(std::uint16_t h) noexcept {
        return T == SideType::bf16 ? bf16_bits_to_float(h) : f16_bits_to_float(h);
    }

    std::size_t dim_;
};

using F32Codec = FullPrecisionCodec<SideType::f32>;
using F16Codec = FullPrecisionCodec<SideType::f16>;
using BF16Codec = FullPrecisionCodec<SideType::bf16>;

static_assert(KVRunCodec<F32Codec> && KVRunCodec<F16Codec> && KVRunCodec<BF16Codec>);

template <SideType T>
using FullPrecisionPolicy = Policy<FullPrecisionCodec<T>, FullPrecisionCodec<T>>;

/// Keys and values stored unquantized at T (f32, f16 or bf16).
template <SideType T = SideType::f16>
[[nodiscard]] FullPrecisionPolicy<T> full_precision_policy(std::size_t dim) {
    return FullPrecisionPolicy<T>(FullPrecisionCodec<T>(dim), FullPrecisionCodec<T>(dim), 0);
}

}  // namespace optiq::kv

#pragma once
// KIVI (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache", arXiv
// 2402.02750; reference-spec B). Asymmetric min/max quantization,
//     scale = (max - min) / (2^b - 1),  zero = min,  q = clip(rint((x - zero) / scale), 0, 2^b - 1),
//     x^ = q * scale + zero,
// with the statistics taken along different axes for the two halves of the cache (Sec. 3.2):
//  - keys, per channel (KiviKeys): G consecutive tokens share one {scale, zero} per channel,
//    because key outliers live in fixed channels;
//  - values, per token (KiviValues): each token's channels are split into groups of G, each with
//    its own {scale, zero}.
// The most recent R tokens stay in full precision (KIVI keeps them in fp16 until a whole group
// can be quantized); here the last min(n, R) tokens of a batch are the residual.
//
// EncodedBatch layout (count = n tokens, nq = n - min(n, R) quantized tokens, r = min(n, R)):
//  - words: nq * words_per_vector (the residual tokens carry no codes);
//  - side:  per-token mode: nq * 2*(d/G) values {scale, zero} per channel group; per-channel: none;
//  - shared: per-channel mode: ceil(nq/G) token groups x d channels x {scale, zero}, then in both
//    modes the r residual tokens x d values.
// Every side value is stored rounded to side_type (f16 by default, as in KIVI), and codes are
// computed with the rounded scale and zero so that decode reproduces what was encoded.
// A constant group (max == min, or a scale that underflows the side type) codes to 0 and decodes
// to zero exactly, where KIVI's reference would divide by 0.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/concepts.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq {

enum class KiviMode {
    per_channel,  ///< keys: groups of G tokens, one scale/zero per channel
    per_token,    ///< values: groups of G channels within each token
};

template <KiviMode Mode>
class Kivi {
public:
    static constexpr KiviMode mode = Mode;

    struct query_type {
        std::vector<float> q;           ///< the query
        std::vector<float> group_sums;  ///< per-token mode: sum of q over each channel group
    };

    /// dim: channels per token vector; bits: 1..8; group_size: tokens per group (keys) or
    /// channels per group (values, must divide dim); residual: tokens kept at side_type precision.
    Kivi(std::size_t dim, int bits, std::size_t group_size = 32, std::size_t residual = 0,
         SideType side_type = SideType::f16)
        : dim_(dim), bits_(bits), group_(group_size), residual_(residual), side_type_(side_type), packer_(check_bits(bits)) {
        if (dim == 0) detail::fail<shape_error>(kind(), ": dimension is 0");
        if (group_size == 0) detail::fail<config_error>(kind(), ": group_size is 0");
        if (Mode == KiviMode::per_token && dim % group_size != 0)
            detail::fail<shape_error>(kind(), ": dimension ", dim, " is not a multiple of the channel group size ",
                                      group_size);
        levels_ = static_cast<float>((1 << bits) - 1);
        words_ = packer_.words_for(dim);
        side_ = Mode == KiviMode::per_token ? 2 * (dim / group_size) : 0;
    }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    [[nodiscard]] int bits() const noexcept { return bits_; }
    [[nodiscard]] std::size_t group_size() const noexcept { return group_; }
    [[nodiscard]] std::size_t residual() const noexcept { return residual_; }
    [[nodiscard]] SideType side_type() const noexcept { return side_type_; }
    [[nodiscard]] std::size_t words_per_vector() const noexcept { return words_; }
    [[nodiscard]] std::string name() const {
        return std::string(Mode == KiviMode::per_channel ? "kivi_keys" : "kivi_values") + ":" + std::to_string(bits_) +
               ":g" + std::to_string(group_) + ":r" + std::to_string(residual_);
    }

    /// Tokens of an n-token batch that are quantized (the rest form the residual).
    [[nodiscard]] std::size_t quantized_count(std::size_t n) const noexcept { return n - std::min(n, residual_); }

    /// Side floats of one quantized token: 2 (d/G) {scale, zero} per token (values), 0 (keys).
    [[nodiscard]] std::size_t side_per_vector() const noexcept { return side_; }
    /// Shared floats of one per-channel block of G tokens: d x {scale, zero} (keys only).
    [[nodiscard]] std::size_t block_params() const noexcept { return Mode == KiviMode::per_channel ? 2 * dim_ : 0; }
    [[nodiscard]] const MlxStream<>& packer() const noexcept { return packer_; }

    /// Working storage of encode_vector/decode_vector and encode_block/decode_block.
    struct scratch_type {
        std::vector<std::uint8_t> codes;
    };
    [[nodiscard]] scratch_type make_scratch() const {
        return scratch_type{std::vector<std::uint8_t>(Mode == KiviMode::per_channel ? group_ * dim_ : dim_)};
    }

    /// Per-token mode: one token into words_per_vector() words and side_per_vector() {scale, zero}.
    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch) const
        requires(Mode == KiviMode::per_token)
    {
        for (std::size_t c0 = 0, g = 0; c0 < dim_; c0 += group_, ++g) {
            const float* v = x.data() + c0;
            const auto [lo, hi] = std::minmax_element(v, v + group_);
            const float s = round_side((*hi - *lo) / levels_, side_type_), z = round_side(*lo, side_type_);
            side[2 * g] = s;
            side[2 * g + 1] = z;
            for (std::size_t c = 0; c < group_; ++c) scratch.codes[c0 + c] = encode_one(v[c], s, z);
        }
        packer_.pack(std::span<const std::uint8_t>(scratch.codes.data(), dim_), words);
    }

    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out,
                       scratch_type& scratch) const
        requires(Mode == KiviMode::per_token)
    {
        const std::span<std::uint8_t> codes(scratch.codes.data(), dim_);
        packer_.unpack(words, codes);
        for (std::size_t c = 0; c < dim_; ++c)
            out[c] = decode_one(codes[c], side[2 * (c / group_)], side[2 * (c / group_) + 1]);
    }

    /// Per-channel mode: t = 1..G tokens (x: t * dim()) sharing one {scale, zero} per channel,
    /// into t * words_per_vector() words and block_params() params (interleaved per channel).
    void encode_block(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> params,
                      scratch_type& scratch) const
        requires(Mode == KiviMode::per_channel)
    {
        const std::size_t t1 = x.size() / dim_;
        for (std::size_t c = 0; c < dim_; ++c) {
            float mn = x[c], mx = mn;
            for (std::size_t t = 1; t < t1; ++t) {
                mn = std::min(mn, x[t * dim_ + c]);
                mx = std::max(mx, x[t * dim_ + c]);
            }
            const float s = round_side((mx - mn) / levels_, side_type_), z = round_side(mn, side_type_);
            params[2 * c] = s;
            params[2 * c + 1] = z;
            for (std::size_t t = 0; t < t1; ++t) scratch.codes[t * dim_ + c] = encode_one(x[t * dim_ + c], s, z);
        }
        for (std::size_t t = 0; t < t1; ++t)
            packer_.pack(std::span<const std::uint8_t>(scratch.codes.data() + t * dim_, dim_),
                         words.subspan(t * words_, words_));
    }

    /// Decodes the t tokens of one per-channel block (out: t * dim(), t = words.size() / words_per_vector()).
    void decode_block(std::span<const std::uint32_t> words, std::span<const float> params, std::span<float> out,
                      scratch_type& scratch) const
        requires(Mode == KiviMode::per_channel)
    {
        const std::size_t t1 = words.size() / words_;
        const std::span<std::uint8_t> codes(scratch.codes.data(), dim_);
        for (std::size_t t = 0; t < t1; ++t) {
            packer_.unpack(words.subspan(t * words_, words_), codes);
            float* o = out.data() + t * dim_;
            for (std::size_t c = 0; c < dim_; ++c) o[c] = decode_one(codes[c], params[2 * c], params[2 * c + 1]);
        }
    }

    /// Encodes n token vectors (x.size() == n * dim()).
    [[nodiscard]] EncodedBatch encode(std::span<const float> x) const {
        const std::size_t n = detail::check_batch(x, dim_, "Kivi::encode");
        const std::size_t nq = quantized_count(n), r = n - nq;
        EncodedBatch b;
        b.count = n;
        b.dim = dim_;
        b.words_per_vector = words_;
        b.side_per_vector = side_;
        b.side_type = side_type_;
        b.words.assign(nq * words_, 0u);
        b.side.assign(nq * side_, 0.0f);
        b.shared.assign(shared_params(nq) + r * dim_, 0.0f);

        scratch_type scratch = make_scratch();
        if constexpr (Mode == KiviMode::per_channel) {
            for (std::size_t t0 = 0, g = 0; t0 < nq; t0 += group_, ++g) {
                const std::size_t t1 = std::min(nq, t0 + group_);
                encode_block(x.subspan(t0 * dim_, (t1 - t0) * dim_),
                             std::span<std::uint32_t>(b.words.data() + t0 * words_, (t1 - t0) * words_),
                             std::span<float>(b.shared.data() + g * dim_ * 2, dim_ * 2), scratch);
            }
        } else {
            for (std::size_t t = 0; t < nq; ++t)
                encode_vector(x.subspan(t * dim_, dim_), std::span<std::uint32_t>(b.words.data() + t * words_, words_),
                              std::span<float>(b.side.data() + t * side_, side_), scratch);
        }
        float* res = b.shared.data() + shared_params(nq);
        for (std::size_t i = 0; i < r * dim_; ++i) res[i] = round_side(x[nq * dim_ + i], side_type_);
        return b;
    }

    void decode(const EncodedBatch& b, std::span<float> out) const {
        check_layout(b, "Kivi::decode");
        detail::check_decode_target(b, out, dim_, "Kivi::decode");
        const std::size_t nq = quantized_count(b.count);
        scratch_type scratch = make_scratch();
        if constexpr (Mode == KiviMode::per_channel) {
            for (std::size_t t0 = 0, g = 0; t0 < nq; t0 += group_, ++g) {
                const std::size_t t1 = std::min(nq, t0 + group_);
                decode_block(std::span<const std::uint32_t>(b.words.data() + t0 * words_, (t1 - t0) * words_),
                             std::span<const float>(b.shared.data() + g * dim_ * 2, dim_ * 2),
                             out.subspan(t0 * dim_, (t1 - t0) * dim_), scratch);
            }
        } else {
            for (std::size_t t = 0; t < nq; ++t)
                decode_vector(b.words_of(t), b.side_of(t), out.subspan(t * dim_, dim_), scratch);
        }
        const float* res = b.shared.data() + shared_params(nq);
        std::copy(res, res + (b.count - nq) * dim_, out.data() + nq * dim_);
    }

    [[nodiscard]] query_type prepare_query(std::span<const float> q) const {
        detail::check_batch(q, dim_, "Kivi::prepare_query");
        if (q.size() != dim_) detail::fail<shape_error>("Kivi::prepare_query: expected one ", dim_, "-vector");
        query_type s;
        s.q.assign(q.begin(), q.end());
        if constexpr (Mode == KiviMode::per_token) {
            s.group_sums.assign(dim_ / group_, 0.0f);
            for (std::size_t c = 0; c < dim_; ++c) s.group_sums[c / group_] += q[c];
        }
        return s;
    }

    /// out[i] = <query, x^_i> without dequantizing: per channel group, sum q_c*s_c*code_c plus the
    /// precomputed sum q_c*z_c; per token group, s * sum q_c*code_c + z * sum q_c.
    void inner_products(const query_type& qs, const EncodedBatch& b, std::span<float> out) const {
        check_layout(b, "Kivi::inner_products");
        if (qs.q.size() != dim_)
            detail::fail<shape_error>("Kivi::inner_products: query has ", qs.q.size(), " values, dimension is ", dim_);
        if (out.size() != b.count)
            detail::fail<shape_error>("Kivi::inner_products: output size ", out.size(), " != batch count ", b.count);
        const std::size_t nq = quantized_count(b.count);
        std::vector<std::uint8_t> codes(dim_);
        if constexpr (Mode == KiviMode::per_channel) {
            std::vector<float> qscale(dim_);
            float offset = 0.0f;
            for (std::size_t t = 0; t < nq; ++t) {
                if (t % group_ == 0) {
                    const float* sz = b.shared.data() + (t / group_) * dim_ * 2;
                    offset = 0.0f;
                    for (std::size_t c = 0; c < dim_; ++c) {
                        qscale[c] = qs.q[c] * sz[2 * c];
                        offset += qs.q[c] * sz[2 * c + 1];
                    }
                }
                packer_.unpack(b.words_of(t), codes);
                float acc = 0.0f;
                for (std::size_t c = 0; c < dim_; ++c) acc += qscale[c] * static_cast<float>(codes[c]);
                out[t] = acc + offset;
            }
        } else {
            for (std::size_t t = 0; t < nq; ++t) {
                packer_.unpack(b.words_of(t), codes);
                const auto side = b.side_of(t);
                float acc = 0.0f;
                for (std::size_t c0 = 0, g = 0; c0 < dim_; c0 += group_, ++g) {
                    float dot = 0.0f;
                    for (std::size_t c = c0; c < c0 + group_; ++c) dot += qs.q[c] * static_cast<float>(codes[c]);
                    acc += side[2 * g] * dot + side[2 * g + 1] * qs.group_sums[g];
                }
                out[t] = acc;
            }
        }
        const float* res = b.shared.data() + shared_params(nq);
        for (std::size_t t = nq; t < b.count; ++t, res += dim_) {
            float acc = 0.0f;
            for (std::size_t c = 0; c < dim_; ++c) acc += qs.q[c] * res[c];
            out[t] = acc;
        }
    }

private:
    static const char* kind() noexcept { return Mode == KiviMode::per_channel ? "KiviKeys" : "KiviValues"; }

    static int check_bits(int bits) {
        if (bits < 1 || bits > 8) detail::fail<config_error>(kind(), ": bits = ", bits, " is not in 1..8");
        return bits;
    }

    /// Shared scale/zero values for nq quantized tokens (per-channel mode only).
    [[nodiscard]] std::size_t shared_params(std::size_t nq) const noexcept {
        if constexpr (Mode == KiviMode::per_channel) return (nq + group_ - 1) / group_ * dim_ * 2;
        return 0;
    }

    [[nodiscard]] std::uint8_t encode_one(float x, float s, float z) const noexcept {
        if (!(s > 0.0f)) return 0;
        float q = std::rint((x - z) / s);
        q = std::min(std::max(q, 0.0f), levels_);
        return static_cast<std::uint8_t>(q);
    }

    [[nodiscard]] static float decode_one(std::uint8_t q, float s, float z) noexcept {
        const float scaled = static_cast<float>(q) * s;
        return scaled + z;
    }

    void check_layout(const EncodedBatch& b, const char* what) const {
        const std::size_t nq = quantized_count(b.count), r = b.count - nq;
        if (b.dim != dim_ || b.words_per_vector != words_ || b.side_per_vector != side_ || b.words.size() != nq * words_ ||
            b.side.size() != nq * side_ || b.shared.size() != shared_params(nq) + r * dim_)
            detail::fail<shape_error>(what, ": batch layout (dim ", b.dim, ", ", b.count, " tokens, ", b.words.size(),
                                      " words, ", b.side.size(), " side, ", b.shared.size(),
                                      " shared) does not match this quantizer (", name(), ", dim ", dim_, ")");
    }

    std::size_t dim_;
    int bits_;
    std::size_t group_;
    std::size_t residual_;
    SideType side_type_;
    MlxStream<> packer_;
    float levels_ = 0.0f;
    std::size_t words_ = 0, side_ = 0;
};

/// Keys: per-channel groups of G tokens.
using KiviKeys = Kivi<KiviMode::per_channel>;
/// Values: per-token groups of G channels.
using KiviValues = Kivi<KiviMode::per_token>;

static_assert(VectorQuantizer<KiviKeys> && VectorQuantizer<KiviValues>);
static_assert(VectorCodec<KiviValues> && !VectorCodec<KiviKeys>);

}  // namespace optiq

#pragma once
// Quantizer<Codebook, Preconditioner, Packer>: the composition at the heart of optiq.
//
// encode:  x -> (||x|| if the codebook wants unit vectors) -> y = Π x/||x|| -> per group of the
//          codebook: fit side data, code each coordinate -> pack codes into words.
// decode:  unpack -> centroids / affine values -> Πᵀ -> times ||x||.
// inner product with a full-precision query q: <q, Πᵀ ŷ> = <Π q, ŷ>, so the query is rotated
// once and, for fixed codebooks, turned into a lookup table lut[i][c] = (Πq)_i · centroid[c];
// each encoded vector then costs d table reads (no vector is dequantized).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/quant/concepts.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq {

template <Codebook C, Preconditioner P, Packer K>
class Quantizer {
public:
    using codebook_type = C;
    using preconditioner_type = P;
    using packer_type = K;

    struct query_type {
        std::vector<float> rotated;  ///< Π q
        std::vector<float> lut;      ///< dim x 2^bits, fixed codebooks only
    };

    Quantizer(C codebook, P preconditioner, K packer, SideType side_type = SideType::f16)
        : codebook_(std::move(codebook)), precond_(std::move(preconditioner)), packer_(std::move(packer)),
          side_type_(side_type) {
        dim_ = precond_.dim();
        if (dim_ == 0) detail::fail<shape_error>("Quantizer: dimension is 0");
        if (codebook_.bits() != packer_.bits())
            detail::fail<config_error>("Quantizer: codebook has ", codebook_.bits(), " bits but packer has ",
                                       packer_.bits());
        group_ = codebook_.group_size(dim_);
        if (group_ == 0 || dim_ % group_ != 0)
            detail::fail<shape_error>("Quantizer: dimension ", dim_, " is not a multiple of the group size ", group_);
        words_ = packer_.words_for(dim_);
        side_ = (C::wants_unit_norm ? 1u : 0u) + (dim_ / group_) * C::side_floats;
    }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    [[nodiscard]] int bits() const noexcept { return codebook_.bits(); }
    [[nodiscard]] std::size_t group_size() const noexcept { return group_; }
    [[nodiscard]] std::size_t words_per_vector() const noexcept { return words_; }
    [[nodiscard]] std::size_t side_per_vector() const noexcept { return side_; }
    [[nodiscard]] SideType side_type() const noexcept { return side_type_; }
    [[nodiscard]] const C& codebook() const noexcept { return codebook_; }
    [[nodiscard]] const P& preconditioner() const noexcept { return precond_; }
    [[nodiscard]] const K& packer() const noexcept { return packer_; }
    [[nodiscard]] std::string name() const { return "Quantizer"; }

    /// An empty batch shaped for this quantizer.
    [[nodiscard]] EncodedBatch make_batch(std::size_t n) const {
        EncodedBatch b;
        b.dim = dim_;
        b.words_per_vector = words_;
        b.side_per_vector = side_;
        b.side_type = side_type_;
        b.resize(n);
        return b;
    }

    /// Per-vector working storage: encode_vector/decode_vector with it allocate nothing.
    struct scratch_type {
        std::vector<float> y;                ///< the rotated vector
        std::vector<std::uint8_t> codes;     ///< one code per coordinate
    };
    [[nodiscard]] scratch_type make_scratch() const {
        return scratch_type{std::vector<float>(dim_), std::vector<std::uint8_t>(dim_)};
    }

    /// Encodes one vector into caller-provided storage (words_per_vector words,
    /// side_per_vector floats). x must be finite; see encode() for checked batches.
    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch) const {
        encode_vector(x, words, side, scratch.y, scratch.codes);
    }
    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side) const {
        scratch_type scratch = make_scratch();
        encode_vector(x, words, side, scratch);
    }

    /// Decodes one vector from its words and side data.
    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out,
                       scratch_type& scratch) const {
        decode_vector(words, side, out, scratch.codes);
    }
    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out) const {
        std::vector<std::uint8_t> codes(dim_);
        decode_vector(words, side, out, codes);
    }

    /// Encodes n row vectors (x.size() == n * dim()).
    [[nodiscard]] EncodedBatch encode(std::span<const float> x) const {
        return detail::encode_rows(*this, x, "Quantizer::encode",
                                   [self = this](auto xi, auto words, auto side, scratch_type& s, std::size_t) {
                                       self->encode_vector(xi, words, side, s);
                                   });
    }

    void decode(const EncodedBatch& b, std::span<float> out) const {
        check_layout(b, "Quantizer::decode");
        detail::check_decode_target(b, out, dim_, "Quantizer::decode");
        detail::decode_rows(*this, b, out);
    }

    [[nodiscard]] query_type prepare_query(std::span<const float> q) const {
        detail::check_batch(q, dim_, "Quantizer::prepare_query");
        if (q.size() != dim_) detail::fail<shape_error>("Quantizer::prepare_query: expected one ", dim_, "-vector");
        query_type s;
        s.rotated.assign(dim_, 0.0f);
        precond_.forward(q, s.rotated);
        if constexpr (FixedCodebook<C>) {
            const auto cents = codebook_.centroids();
            const std::size_t k = cents.size();
            s.lut.resize(dim_ * k);
            for (std::size_t i = 0; i < dim_; ++i)
                for (std::size_t c = 0; c < k; ++c) s.lut[i * k + c] = s.rotated[i] * cents[c];
        }
        return s;
    }

    /// Estimates <q, x> from the encoded vector alone.
    [[nodiscard]] float inner_product(const query_type& q, std::span<const std::uint32_t> words,
                                      std::span<const float> side, std::span<std::uint8_t> codes) const {
        packer_.unpack(words, codes);
        std::size_t s = 0;
        const float norm = C::wants_unit_norm ? side[s++] : 1.0f;
        float acc = 0.0f;
        if constexpr (FixedCodebook<C>) {
            const std::size_t k = std::size_t{1} << codebook_.bits();
            for (std::size_t i = 0; i < dim_; ++i) acc += q.lut[i * k + codes[i]];
        } else {
            typename C::side_type gs{};
            for (std::size_t g0 = 0; g0 < dim_; g0 += group_) {
                for (std::size_t j = 0; j < C::side_floats; ++j) gs[j] = side[s++];
                for (std::size_t i = g0; i < g0 + group_; ++i) acc += q.rotated[i] * codebook_.decode(codes[i], gs);
            }
        }
        return norm * acc;
    }

    void inner_products(const query_type& q, const EncodedBatch& b, std::span<float> out) const {
        check_layout(b, "Quantizer::inner_products");
        if (out.size() != b.count) detail::fail<shape_error>("Quantizer::inner_products: output size ", out.size(), " != batch count ", b.count);
        std::vector<std::uint8_t> codes(dim_);
        for (std::size_t i = 0; i < b.count; ++i) out[i] = inner_product(q, b.words_of(i), b.side_of(i), codes);
    }

private:
    void check_layout(const EncodedBatch& b, const char* what) const {
        if (b.dim != dim_ || b.words_per_vector != words_ || b.side_per_vector != side_ ||
            b.words.size() != b.count * words_ || b.side.size() != b.count * side_)
            detail::fail<shape_error>(what, ": batch layout (dim ", b.dim, ", ", b.words_per_vector, " words, ",
                                      b.side_per_vector, " side) does not match this quantizer (dim ", dim_, ", ",
                                      words_, " words, ", side_, " side)");
    }

    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       std::span<float> y, std::span<std::uint8_t> codes) const {
        std::size_t s = 0;
        if constexpr (C::wants_unit_norm) {
            double ss = 0.0;
            for (float v : x) ss += static_cast<double>(v) * v;
            const float norm = static_cast<float>(std::sqrt(ss));
            const float inv = norm > 0.0f ? 1.0f / norm : 0.0f;
            for (std::size_t i = 0; i < dim_; ++i) y[i] = x[i] * inv;
            precond_.forward(y, y);
            side[s++] = checked_side(norm, "norm");
        } else {
            precond_.forward(x, y);
        }
        for (std::size_t g0 = 0; g0 < dim_; g0 += group_) {
            const auto group = std::span<const float>(y.data() + g0, group_);
            const auto gs = codebook_.fit(group);
            for (std::size_t i = 0; i < group_; ++i) codes[g0 + i] = static_cast<std::uint8_t>(codebook_.encode(group[i], gs));
            for (float v : gs) side[s++] = checked_side(v, "group scale/bias");
        }
        packer_.pack(codes, words);
    }

    /// Rounds a side value to its storage type; a value that overflows it (a norm above 65504
    /// in f16) is an error, not a silent inf.
    [[nodiscard]] float checked_side(float v, const char* what) const {
        const float r = round_side(v, side_type_);
        if (!std::isfinite(r))
            detail::fail<value_error>("Quantizer::encode: ", what, " ", v, " overflows the ",
                                      side_type_ == SideType::f16 ? "f16" : "bf16", " side storage; use SideType::f32");
        return r;
    }

    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out,
                       std::span<std::uint8_t> codes) const {
        packer_.unpack(words, codes);
        std::size_t s = 0;
        const float norm = C::wants_unit_norm ? side[s++] : 1.0f;
        typename C::side_type gs{};
        for (std::size_t g0 = 0; g0 < dim_; g0 += group_) {
            for (std::size_t j = 0; j < C::side_floats; ++j) gs[j] = side[s++];
            for (std::size_t i = g0; i < g0 + group_; ++i) out[i] = codebook_.decode(codes[i], gs);
        }
        precond_.inverse(out, out);
        if constexpr (C::wants_unit_norm)
            for (auto& v : out) v *= norm;
    }

    C codebook_;
    P precond_;
    K packer_;
    SideType side_type_;
    std::size_t dim_ = 0, group_ = 0, words_ = 0, side_ = 0;
};

}  // namespace optiq

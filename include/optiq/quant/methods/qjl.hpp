#pragma once
// QJL: 1-bit quantized Johnson-Lindenstrauss sketch of keys (Zandieh, Daliri, Han; arXiv
// 2406.03482; reference-spec B; VeloxQuant preconditioners/jl_sketch.py, quantizers/qjl.py).
//
// A key k is stored as the m sign bits z = sign(S k) of a Gaussian sketch S (m x d, i.i.d. N(0,1))
// plus ‖k‖; queries stay in full precision. For one sketch row s, E[⟨s, q⟩ sign⟨s, k⟩] =
// sqrt(2/π) ⟨q, k⟩/‖k‖ (the pair (⟨s,q⟩, ⟨s,k⟩) is jointly Gaussian), hence the unbiased estimator
//   ⟨q, k⟩ ≈ (sqrt(π/2)/m) · ‖k‖ · ⟨S q, z⟩,
// with variance [(π/2)‖q‖²‖k‖² − ⟨q, k⟩²]/m. decode() returns the matching reconstruction
// k̃ = (sqrt(π/2)/m) ‖k‖ Sᵀ z, so ⟨q, k̃⟩ is the same estimate.
//
// Specified layout, so the same seed gives the same codes everywhere:
//   S[i][j] = Rng(seed).normal(), drawn row-major (row i = sketch row, j = coordinate);
//   z_i = +1 when (S k)_i >= 0 (so 0 counts as +), stored as bit i of an LSB-first stream of
//   little-endian uint32 words (bit 1 = +1): exactly MlxStream<1>'s layout of the codes (z+1)/2;
//   side data per vector: {‖k‖} at the side type (fp16 by default).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/quant/concepts.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq {

namespace detail {

/// sqrt(π/2), the QJL de-biasing factor (1 / E|N(0,1)|).
inline constexpr double sqrt_half_pi = 1.2533141373155002512;

/// An m x d matrix of i.i.d. N(0, 1) entries and the products QJL needs. Copies share the matrix.
class GaussianSketch {
public:
    GaussianSketch(std::size_t rows, std::size_t dim, std::uint64_t seed) : rows_(rows), dim_(dim) {
        if (dim == 0) fail<shape_error>("GaussianSketch: dimension is 0");
        if (rows == 0) fail<config_error>("GaussianSketch: sketch rows m is 0");
        auto s = std::make_shared<std::vector<float>>(rows * dim);
        Rng rng(seed);
        for (auto& v : *s) v = static_cast<float>(rng.normal());
        s_ = std::move(s);
    }

    [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }
    /// S row-major: entry (i, j) at [i * dim() + j].
    [[nodiscard]] std::span<const float> matrix() const noexcept { return *s_; }
    [[nodiscard]] std::size_t words() const noexcept { return (rows_ + 31) / 32; }

    /// out = S x (out: rows() floats).
    void project(std::span<const float> x, std::span<float> out) const noexcept {
        const float* s = s_->data();
        for (std::size_t i = 0; i < rows_; ++i) out[i] = dot(s + i * dim_, x.data(), dim_);
    }

    /// The sign bits of v (bit i set when v_i >= 0) into words() words, LSB first.
    void pack_signs(std::span<const float> v, std::span<std::uint32_t> words) const noexcept {
        for (std::size_t w = 0; w < words.size(); ++w) words[w] = 0u;
        for (std::size_t i = 0; i < rows_; ++i)
            if (!(v[i] < 0.0f)) words[i / 32] |= std::uint32_t{1} << (i % 32);
    }

    /// ⟨v, z⟩ with z = ±1 from the sign bits.
    [[nodiscard]] float signed_sum(std::span<const float> v, std::span<const std::uint32_t> words) const noexcept {
        float acc[4] = {0, 0, 0, 0};
        for (std::size_t i = 0; i < rows_; ++i) {
            const bool plus = ((words[i / 32] >> (i % 32)) & 1u) != 0;
            acc[i % 4] += plus ? v[i] : -v[i];
        }
        return (acc[0] + acc[2]) + (acc[1] + acc[3]);
    }

    /// out += scale · Sᵀ z (out: dim() floats), as a sum of ±rows of S. Columns are taken in
    /// chunks accumulated in a local array, which the compiler knows aliases nothing, so the
    /// row loop vectorises without run-time alias checks.
    void add_transposed_signs(std::span<const std::uint32_t> words, float scale, std::span<float> out) const noexcept {
        constexpr std::size_t chunk = 64;
        const float* s = s_->data();
        for (std::size_t j0 = 0; j0 < dim_; j0 += chunk) {
            const std::size_t len = dim_ - j0 < chunk ? dim_ - j0 : chunk;
            float acc[chunk] = {};
            for (std::size_t i = 0; i < rows_; ++i) {
                const bool plus = ((words[i / 32] >> (i % 32)) & 1u) != 0;
                const float a = plus ? scale : -scale;
                const float* row = s + i * dim_ + j0;
                if (len == chunk) {  // a constant trip count: vectorised even at -O2's cheap cost model
                    for (std::size_t j = 0; j < chunk; ++j) acc[j] += a * row[j];
                } else {
                    for (std::size_t j = 0; j < len; ++j) acc[j] += a * row[j];
                }
            }
            for (std::size_t j = 0; j < len; ++j) out[j0 + j] += acc[j];
        }
    }

    /// out += Sᵀ a (a: rows() floats, out: dim() floats), rows taken in order.
    void add_transposed(std::span<const float> a, std::span<float> out) const noexcept {
        const float* s = s_->data();
        for (std::size_t i = 0; i < rows_; ++i) {
            const float ai = a[i];
            const float* row = s + i * dim_;
            for (std::size_t j = 0; j < dim_; ++j) out[j] += ai * row[j];
        }
    }

    /// acc_i += w z_i for the sign bits z = ±1 (acc: rows() floats).
    void add_signs(std::span<const std::uint32_t> words, float w, float* acc) const noexcept {
        for (std::size_t i = 0; i < rows_; ++i) acc[i] += ((words[i / 32] >> (i % 32)) & 1u) != 0 ? w : -w;
    }

private:
    // Eight independent partial sums: a fixed summation order the compiler can vectorise.
    [[nodiscard]] static float dot(const float* a, const float* b, std::size_t n) noexcept {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::size_t j = 0;
        for (; j + 8 <= n; j += 8)
            for (std::size_t k = 0; k < 8; ++k) acc[k] += a[j + k] * b[j + k];
        // Fewer than 8 remain; the explicit k < 8 lets GCC -O3 see the bound when n is a constant.
        for (std::size_t k = 0; k < 8 && j < n; ++j, ++k) acc[k] += a[j] * b[j];
        return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }

    std::size_t rows_, dim_;
    std::shared_ptr<const std::vector<float>> s_;
};

/// ‖x‖ accumulated in double.
[[nodiscard]] inline double norm2_of(std::span<const float> x) noexcept {
    double ss = 0.0;
    for (const float v : x) ss += static_cast<double>(v) * v;
    return std::sqrt(ss);
}

/// Checks that a batch was made for a method with this layout.
inline void check_batch_layout(const EncodedBatch& b, std::size_t dim, std::size_t words, std::size_t side,
                               const char* what) {
    if (b.dim != dim || b.words_per_vector != words || b.side_per_vector != side ||
        b.words.size() != b.count * words || b.side.size() != b.count * side)
        fail<shape_error>(what, ": batch layout (dim ", b.dim, ", ", b.words_per_vector, " words, ", b.side_per_vector,
                          " side) does not match this quantizer (dim ", dim, ", ", words, " words, ", side, " side)");
}

/// v rounded to the side type; a norm beyond its range (65504 for fp16) would decode as inf,
/// so it is an error rather than a silent overflow.
[[nodiscard]] inline float checked_side(float v, SideType t, const char* what, std::size_t vector) {
    const float r = round_side(v, t);
    if (!std::isfinite(r))
        fail<value_error>(what, ": vector ", vector, " has norm ", v,
                          ", beyond the range of the side type (use SideType::f32)");
    return r;
}

/// Checks a single query vector.
inline void check_query(std::span<const float> q, std::size_t dim, const char* what) {
    check_batch(q, dim, what);
    if (q.size() != dim) fail<shape_error>(what, ": expected one ", dim, "-vector, got ", q.size(), " floats");
}

}  // namespace detail

class QJL {
public:
    struct query_type {
        std::vector<float> sketched;  ///< S q
    };

    /// sketch_rows = 0 means m = d.
    QJL(std::size_t dim, std::uint64_t seed, std::size_t sketch_rows = 0, SideType side_type = SideType::f16)
        : sketch_(sketch_rows == 0 ? dim : sketch_rows, dim, seed), seed_(seed), side_type_(side_type) {}

    [[nodiscard]] std::size_t dim() const noexcept { return sketch_.dim(); }
    /// One sign bit per sketch row (m/d bits per coordinate; 1 at the default m = d).
    [[nodiscard]] int bits() const noexcept { return 1; }
    [[nodiscard]] std::size_t sketch_rows() const noexcept { return sketch_.rows(); }
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
    [[nodiscard]] std::string name() const {
        return sketch_.rows() == sketch_.dim() ? std::string("qjl") : "qjl:m" + std::to_string(sketch_.rows());
    }
    [[nodiscard]] std::size_t words_per_vector() const noexcept { return sketch_.words(); }
    [[nodiscard]] std::size_t side_per_vector() const noexcept { return 1; }
    [[nodiscard]] SideType side_type() const noexcept { return side_type_; }
    [[nodiscard]] const detail::GaussianSketch& sketch() const noexcept { return sketch_; }

    [[nodiscard]] EncodedBatch make_batch(std::size_t n) const {
        EncodedBatch b;
        b.dim = dim();
        b.words_per_vector = words_per_vector();
        b.side_per_vector = 1;
        b.side_type = side_type_;
        b.resize(n);
        return b;
    }

    /// Per-vector working storage: the projection S x.
    struct scratch_type {
        std::vector<float> proj;
    };
    [[nodiscard]] scratch_type make_scratch() const { return scratch_type{std::vector<float>(sketch_.rows())}; }

    /// Encodes one vector: sign(S x) into words_per_vector() words, ‖x‖ into side[0].
    void encode_vector(std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch) const {
        encode_vector(x, words, side, scratch, 0);
    }

    /// (sqrt(π/2)/m) ‖k‖ Sᵀ z.
    void decode_vector(std::span<const std::uint32_t> words, std::span<const float> side, std::span<float> out,
                       scratch_type& /*scratch*/) const {
        for (auto& v : out) v = 0.0f;
        sketch_.add_transposed_signs(words, scale() * side[0], out);
    }

    /// sqrt(π/2)/m.
    [[nodiscard]] float scale() const noexcept {
        return static_cast<float>(detail::sqrt_half_pi / static_cast<double>(sketch_.rows()));
    }

    /// Encodes n row vectors (x.size() == n * dim()).
    [[nodiscard]] EncodedBatch encode(std::span<const float> x) const {
        return detail::encode_rows(*this, x, "QJL::encode", [self = this](auto xi, auto words, auto side, scratch_type& s, std::size_t i) {
            self->encode_vector(xi, words, side, s, i);
        });
    }

    /// out_i = (sqrt(π/2)/m) ‖k_i‖ Sᵀ z_i.
    void decode(const EncodedBatch& b, std::span<float> out) const {
        const std::size_t d = dim();
        detail::check_batch_layout(b, d, words_per_vector(), 1, "QJL::decode");
        detail::check_decode_target(b, out, d, "QJL::decode");
        detail::decode_rows(*this, b, out);
    }

    [[nodiscard]] query_type prepare_query(std::span<const float> q) const {
        detail::check_query(q, dim(), "QJL::prepare_query");
        query_type s;
        s.sketched.resize(sketch_.rows());
        sketch_.project(q, s.sketched);
        return s;
    }

    /// out_i = (sqrt(π/2)/m) ‖k_i‖ ⟨S q, z_i⟩.
    void inner_products(const query_type& q, const EncodedBatch& b, std::span<float> out) const {
        detail::check_batch_layout(b, dim(), words_per_vector(), 1, "QJL::inner_products");
        if (q.sketched.size() != sketch_.rows())
            detail::fail<shape_error>("QJL::inner_products: query was prepared for ", q.sketched.size(),
                                      " sketch rows, this quantizer has ", sketch_.rows());
        if (out.size() != b.count)
            detail::fail<shape_error>("QJL::inner_products: output size ", out.size(), " != batch count ", b.count);
        for (std::size_t i = 0; i < b.count; ++i)
            out[i] = scale() * b.side_of(i)[0] * sketch_.signed_sum(q.sketched, b.words_of(i));
    }

private:
    void encode_vector(std::span<const float> xi, std::span<std::uint32_t> words, std::span<float> side,
                       scratch_type& scratch, std::size_t index) const {
        sketch_.project(xi, scratch.proj);
        sketch_.pack_signs(scratch.proj, words);
        side[0] = detail::checked_side(static_cast<float>(detail::norm2_of(xi)), side_type_, "QJL::encode", index);
    }

    detail::GaussianSketch sketch_;
    std::uint64_t seed_;
    SideType side_type_;
};

static_assert(VectorQuantizer<QJL> && VectorCodec<QJL>);

}  // namespace optiq

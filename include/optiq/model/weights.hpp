#pragma once
// Linear: one weight matrix W [out, in] (row-major, HF orientation) in its stored format, plus an
// optional bias, and the matmul y[n][out] = x[n][in] · Wᵀ + b that reads that format directly:
//   f32          plain rows
//   f16, bf16    16-bit patterns, widened to f32 inside the dot product
//   mlx_affine   mx.quantize output (uint32 words, per-group scale and bias, 1..8 bits); codes are
//                unpacked inside the dot product and a group's contribution is
//                scale · Σ q_i x_i + bias · Σ x_i (as mx.quantized_matmul computes it), so no
//                dequantized row is ever formed.
//   ggml         GGUF block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K) used in place: a view
//                of the mapped file (kept alive by a shared owner), never expanded.
// Two ways to multiply (Activations): exact, x in f32 (ggml rows dequantized one at a time by
// ggml's reference rule, so the result equals an f32 copy of the matrix bit for bit), and int8, x
// rounded to 8 bits per block once per call and multiplied in integers against the stored blocks
// (backend/simd/qmatmul.hpp: ggml's scheme, for ggml and MLX affine 2/4/8-bit weights). automatic
// picks int8 for ggml blocks (what llama.cpp does with them) and exact for everything else.
// The kernels are backend/simd/matmul*.hpp: AVX-512 / AVX2 where the CPU has them (chosen once per
// call; OPTIQ_SIMD_MAX caps it), the scalar reference elsewhere and on request (matmul(..., arch)).
// A Linear is a value: sensitivity replaces one module of a Transformer by assigning another
// Linear (e.g. Linear::mlx_affine(mlx::quantize(...))) and reruns the forward pass.
// Matmuls split the output rows over a ThreadPool when one is given.
#include <algorithm>
#include <cstddef>
#include <array>
#include <memory>
#include <optional>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/matmul.hpp"
#include "optiq/backend/simd/qmatmul.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/io/ggml_quants.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/quant/encoded.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::model {

enum class WeightFormat { f32, f16, bf16, mlx_affine, ggml };

[[nodiscard]] constexpr const char* weight_format_name(WeightFormat f) noexcept {
    switch (f) {
        case WeightFormat::f32: return "f32";
        case WeightFormat::f16: return "f16";
        case WeightFormat::bf16: return "bf16";
        case WeightFormat::mlx_affine: return "mlx_affine";
        case WeightFormat::ggml: return "ggml";
    }
    return "?";
}

/// How a matmul treats its activations (see the top of this file).
enum class Activations { automatic, exact, int8 };

[[nodiscard]] constexpr const char* activations_name(Activations a) noexcept {
    switch (a) {
        case Activations::automatic: return "auto";
        case Activations::exact: return "exact";
        case Activations::int8: return "int8";
    }
    return "?";
}

/// "auto" / "exact" / "int8" (a driver flag's value); throws config_error naming `what` otherwise.
[[nodiscard]] inline Activations activations_from_name(std::string_view name, std::string_view what = "activations") {
    for (const Activations a : {Activations::automatic, Activations::exact, Activations::int8})
        if (name == activations_name(a)) return a;
    optiq::detail::fail<config_error>(what, ": unknown value '", name, "' (auto, exact, int8)");
}

/// How Linear::matmul runs: the activation rule and the kernel set (narrowed to what the CPU
/// runs; Arch::scalar is the reference of either rule).
struct MatmulOptions {
    Activations activations = Activations::automatic;
    backend::arch::Arch arch = backend::arch::best_arch();
};

class Linear {
public:
    Linear() = default;

    [[nodiscard]] static Linear f32(std::vector<float> w, std::size_t out, std::size_t in, std::string name = {}) {
        check_size(w.size(), out, in, name);
        Linear l(WeightFormat::f32, out, in, std::move(name));
        l.f32_ = std::move(w);
        return l;
    }
    /// 16-bit patterns of an f16 or bf16 matrix.
    [[nodiscard]] static Linear half(std::vector<std::uint16_t> bits, SideType type, std::size_t out, std::size_t in,
                                     std::string name = {}) {
        if (type == SideType::f32) optiq::detail::fail<config_error>("model::Linear '", name, "': half() needs f16 or bf16");
        check_size(bits.size(), out, in, name);
        Linear l(type == SideType::f16 ? WeightFormat::f16 : WeightFormat::bf16, out, in, std::move(name));
        l.h16_ = std::move(bits);
        return l;
    }
    /// An mx.quantize result for a 2-D matrix.
    [[nodiscard]] static Linear mlx_affine(mlx::QuantizedMatrix q, std::string name = {}) {
        if (q.shape.size() != 2)
            optiq::detail::fail<shape_error>("model::Linear '", name, "': quantized weight has ", q.shape.size(),
                                             " dimensions, needs 2");
        const std::size_t out = q.shape[0], in = q.shape[1];
        if (q.bits < 1 || q.bits > 8 || q.group_size == 0 || in % q.group_size != 0 || in * q.bits % 32 != 0)
            optiq::detail::fail<config_error>("model::Linear '", name, "': bits ", q.bits, " / group_size ", q.group_size,
                                              " do not fit ", in, " columns");
        if (q.words.size() != out * q.words_per_row() || q.scales.size() != out * q.groups_per_row() ||
            q.biases.size() != q.scales.size())
            optiq::detail::fail<shape_error>("model::Linear '", name, "': ", q.words.size(), " words, ", q.scales.size(),
                                             " scales, ", q.biases.size(), " biases do not match shape [", out, ", ", in,
                                             "] at ", q.bits, " bits, group ", q.group_size);
        Linear l(WeightFormat::mlx_affine, out, in, std::move(name));
        l.q_ = std::move(q);
        return l;
    }

    /// A GGUF block-type matrix used in place: `bytes` are its rows of ggml blocks (ggml type id
    /// `type`), valid while `owner` (the mapped file) lives.
    [[nodiscard]] static Linear ggml(io::GgmlType type, std::span<const std::byte> bytes, std::shared_ptr<const void> owner,
                                     std::size_t out, std::size_t in, std::string name = {}) {
        const auto tr = io::ggml_type_traits(static_cast<std::uint32_t>(type));
        if (!tr || !tr->dequantizable || tr->block_size == 1)
            optiq::detail::fail<config_error>("model::Linear '", name, "': ggml type ", io::ggml_type_name(type),
                                              " is not a block type optiq multiplies");
        if (out == 0 || in == 0 || in % tr->block_size != 0)
            optiq::detail::fail<shape_error>("model::Linear '", name, "': ", tr->name, " rows of ", in,
                                             " columns are not whole blocks of ", tr->block_size);
        const std::size_t row_bytes = in / tr->block_size * tr->type_size;
        if (bytes.size() / row_bytes < out || bytes.size() != out * row_bytes)
            optiq::detail::fail<shape_error>("model::Linear '", name, "': ", bytes.size(), " bytes for ", out, " rows of ",
                                             row_bytes, " (", tr->name, " [", out, ", ", in, "])");
        Linear l(WeightFormat::ggml, out, in, std::move(name));
        l.ggml_type_ = type;
        l.blocks_ = bytes;
        l.owner_ = std::move(owner);
        l.row_bytes_ = row_bytes;
        return l;
    }

    [[nodiscard]] bool empty() const noexcept { return out_ == 0; }
    [[nodiscard]] std::size_t out_features() const noexcept { return out_; }
    [[nodiscard]] std::size_t in_features() const noexcept { return in_; }
    [[nodiscard]] WeightFormat format() const noexcept { return format_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::vector<float>& bias() const noexcept { return bias_; }
    [[nodiscard]] const mlx::QuantizedMatrix* quantized() const noexcept {
        return format_ == WeightFormat::mlx_affine ? &q_ : nullptr;
    }
    [[nodiscard]] std::span<const float> f32_data() const noexcept { return f32_; }
    /// The ggml type of a ggml-format matrix.
    [[nodiscard]] io::GgmlType ggml_type() const noexcept { return ggml_type_; }
    /// The stored rows of a ggml-format matrix.
    [[nodiscard]] std::span<const std::byte> ggml_bytes() const noexcept { return blocks_; }

    /// The integer-kernel view of the weights, when there is one (ggml blocks; MLX affine 2/4/8-bit
    /// with groups of whole 32-column blocks).
    [[nodiscard]] std::optional<backend::qmatmul::QWeights> int8_weights() const noexcept {
        namespace qm = backend::qmatmul;
        std::optional<qm::QWeights> w;
        if (format_ == WeightFormat::ggml) {
            if (const auto f = qm::format_of_ggml(static_cast<std::uint32_t>(ggml_type_)))
                w = qm::QWeights{*f, blocks_.data(), row_bytes_, in_};
        } else if (format_ == WeightFormat::mlx_affine) {
            if (const auto f = qm::format_of_mlx(q_.bits, q_.group_size))
                w = qm::QWeights{*f, reinterpret_cast<const std::byte*>(q_.words.data()), q_.words_per_row() * 4, in_,
                                 q_.scales.data(), q_.biases.data(), q_.group_size};
        }
        if (w && !qm::supports(*w)) w.reset();
        return w;
    }
    /// Whether matmul under `a` runs the integer kernels.
    [[nodiscard]] bool uses_int8(Activations a) const noexcept {
        if (a == Activations::exact) return false;
        if (a == Activations::automatic && format_ != WeightFormat::ggml) return false;
        return int8_weights().has_value();
    }

    void set_bias(std::vector<float> b) {
        if (!b.empty() && b.size() != out_)
            optiq::detail::fail<shape_error>("model::Linear '", name_, "': bias of ", b.size(), " values, needs ", out_);
        bias_ = std::move(b);
    }

    /// "f32", "bf16", "mlx_affine:4:g64".
    [[nodiscard]] std::string describe() const {
        std::string s = weight_format_name(format_);
        if (format_ == WeightFormat::mlx_affine) {
            // Appended piece by piece: "x" + std::string trips GCC 12's -Wrestrict false positive at -O3.
            s.append(":").append(std::to_string(q_.bits)).append(":g").append(std::to_string(q_.group_size));
        }
        if (format_ == WeightFormat::ggml) s.append(":").append(io::ggml_type_name(ggml_type_));
        return s;
    }
    /// Bytes the weight occupies (biases of the layer excluded).
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        switch (format_) {
            case WeightFormat::f32: return f32_.size() * 4;
            case WeightFormat::f16:
            case WeightFormat::bf16: return h16_.size() * 2;
            case WeightFormat::mlx_affine:
                return q_.words.size() * 4 + (q_.scales.size() + q_.biases.size()) * (q_.dtype == SideType::f32 ? 4 : 2);
            case WeightFormat::ggml: return blocks_.size();
        }
        return 0;
    }

    /// Row r of W as floats (an embedding lookup): MLX rows as mx.dequantize gives them.
    void row(std::size_t r, std::span<float> out) const {
        if (r >= out_ || out.size() != in_)
            optiq::detail::fail<shape_error>("model::Linear '", name_, "': row ", r, " into ", out.size(),
                                             " floats (weight [", out_, ", ", in_, "])");
        switch (format_) {
            case WeightFormat::f32: std::copy_n(f32_.data() + r * in_, in_, out.data()); break;
            case WeightFormat::f16:
            case WeightFormat::bf16: widen_row(r, out.data()); break;
            case WeightFormat::mlx_affine: {
                std::vector<std::uint8_t> codes(in_);
                unpack_row(r, codes.data());
                const std::size_t g = q_.group_size, gpr = q_.groups_per_row();
                for (std::size_t j = 0; j < in_; ++j) {
                    const float s = q_.scales[r * gpr + j / g], b = q_.biases[r * gpr + j / g];
                    out[j] = round_side(round_side(s * static_cast<float>(codes[j]), q_.dtype) + b, q_.dtype);
                }
                break;
            }
            case WeightFormat::ggml: io::dequantize(ggml_type_, blocks_.subspan(r * row_bytes_, row_bytes_), out); break;
        }
    }
    /// The whole matrix as floats [out][in].
    [[nodiscard]] std::vector<float> dequantize() const {
        std::vector<float> w(out_ * in_);
        for (std::size_t r = 0; r < out_; ++r) row(r, {w.data() + r * in_, in_});
        return w;
    }

    /// y[n][out] = x[n][in] · Wᵀ (+ bias), by opts (automatic activations on the best kernels by
    /// default). Output rows are split over `pool` when given; `ws` (scratch of the integer path)
    /// is reused across calls when given.
    void matmul(std::span<const float> x, std::size_t n, std::span<float> y, ThreadPool* pool = nullptr,
                const MatmulOptions& opts = {}, backend::qmatmul::Workspace* ws = nullptr) const {
        check_matmul(x, n, y);
        if (uses_int8(opts.activations)) {
            backend::qmatmul::Workspace local;
            const backend::qmatmul::QJob job{*int8_weights(), out_, y.data(), out_, bias_.empty() ? nullptr : bias_.data()};
            backend::qmatmul::run({&job, 1}, x.data(), n, in_, pool, backend::qmatmul::isa_for(opts.arch),
                                  ws ? *ws : local);
            return;
        }
        exact_matmul(x, n, y, pool, opts.arch);
    }
    /// The exact (f32-activation) product on architecture `arch` (narrowed to what the CPU runs):
    /// Arch::scalar is the reference every vector kernel is tested against.
    void matmul(std::span<const float> x, std::size_t n, std::span<float> y, ThreadPool* pool,
                backend::arch::Arch arch) const {
        matmul(x, n, y, pool, MatmulOptions{Activations::exact, arch});
    }

    /// Several matmuls of the same input x [n][in] (q, k and v; gate and up): ys[i] = x · ls[i]ᵀ.
    /// The integer ones share one rounding of x and one hand-off to the pool.
    static void matmul_many(std::span<const Linear* const> ls, std::span<const float> x, std::size_t n,
                            std::span<const std::span<float>> ys, ThreadPool* pool, const MatmulOptions& opts,
                            backend::qmatmul::Workspace& ws) {
        namespace qm = backend::qmatmul;
        if (ls.size() != ys.size())
            optiq::detail::fail<shape_error>("model::Linear::matmul_many: ", ls.size(), " layers, ", ys.size(), " outputs");
        std::array<qm::QJob, 8> jobs{};
        std::size_t nj = 0;
        for (std::size_t i = 0; i < ls.size(); ++i) {
            const Linear& l = *ls[i];
            l.check_matmul(x, n, ys[i]);
            if (nj < jobs.size() && l.uses_int8(opts.activations) && l.in_ == ls[0]->in_)
                jobs[nj++] = qm::QJob{*l.int8_weights(), l.out_, ys[i].data(), l.out_, l.bias_.empty() ? nullptr : l.bias_.data()};
            else l.exact_matmul(x, n, ys[i], pool, opts.arch);
        }
        if (nj) qm::run({jobs.data(), nj}, x.data(), n, ls[0]->in_, pool, qm::isa_for(opts.arch), ws);
    }

private:
    Linear(WeightFormat f, std::size_t out, std::size_t in, std::string name)
        : format_(f), out_(out), in_(in), name_(std::move(name)) {}

    void check_matmul(std::span<const float> x, std::size_t n, std::span<float> y) const {
        if (empty()) optiq::detail::fail<config_error>("model::Linear '", name_, "': no weight assigned");
        if (x.size() != n * in_ || y.size() != n * out_)
            optiq::detail::fail<shape_error>("model::Linear '", name_, "': matmul of ", x.size(), " inputs / ", y.size(),
                                             " outputs for ", n, " tokens of [", out_, ", ", in_, "]");
    }

    void exact_matmul(std::span<const float> x, std::size_t n, std::span<float> y, ThreadPool* pool,
                      backend::arch::Arch arch) const {
        namespace mm = backend::matmul;
        const float* b = bias_.empty() ? nullptr : bias_.data();
        switch (format_) {
            case WeightFormat::f32: mm::run(mm::F32Weights{f32_.data(), in_}, out_, x, n, y, b, pool, arch); break;
            case WeightFormat::f16:
            case WeightFormat::bf16:
                mm::run(mm::HalfWeights{h16_.data(), in_, format_ == WeightFormat::bf16}, out_, x, n, y, b, pool, arch);
                break;
            case WeightFormat::mlx_affine:
                mm::run(mm::AffineWeights{q_.words.data(), q_.words.size(), q_.scales.data(), q_.biases.data(), in_,
                                          q_.group_size, q_.bits},
                        out_, x, n, y, b, pool, arch);
                break;
            case WeightFormat::ggml:
                mm::run(mm::BlockWeights{static_cast<std::uint32_t>(ggml_type_), blocks_.data(), row_bytes_, in_}, out_, x,
                        n, y, b, pool, arch);
                break;
        }
    }

    static void check_size(std::size_t got, std::size_t out, std::size_t in, const std::string& name) {
        if (out == 0 || in == 0 || got != out * in)
            optiq::detail::fail<shape_error>("model::Linear '", name, "': ", got, " values for shape [", out, ", ", in, "]");
    }

    void widen_row(std::size_t r, float* out) const noexcept {
        const std::uint16_t* h = h16_.data() + r * in_;
        if (format_ == WeightFormat::bf16)
            for (std::size_t j = 0; j < in_; ++j) out[j] = bf16_bits_to_float(h[j]);
        else
            for (std::size_t j = 0; j < in_; ++j) out[j] = f16_bits_to_float(h[j]);
    }
    void unpack_row(std::size_t r, std::uint8_t* codes) const {
        const std::size_t wpr = q_.words_per_row();
        MlxStream<>(q_.bits).unpack({q_.words.data() + r * wpr, wpr}, {codes, in_});
    }

    WeightFormat format_ = WeightFormat::f32;
    std::size_t out_ = 0, in_ = 0;
    std::string name_;
    std::vector<float> f32_;
    std::vector<std::uint16_t> h16_;
    mlx::QuantizedMatrix q_;
    io::GgmlType ggml_type_ = io::GgmlType::f32;
    std::span<const std::byte> blocks_;
    std::shared_ptr<const void> owner_;  // keeps blocks_ (a view of a mapped file) alive
    std::size_t row_bytes_ = 0;
    std::vector<float> bias_;
};

}  // namespace optiq::model

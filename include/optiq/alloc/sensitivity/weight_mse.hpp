#pragma once
// WeightMSESensitivity: a forward-pass-free cost table. For each unit (a module's 2-D weight, given
// as a tensor view) and each candidate bit-width, quantize -> dequantize with optiq::mlx::quantize
// (bit-exact with mx.quantize, in the weight's own dtype) and record the error:
//   Normalization::total    sum of squared errors (= MSE x params): additive over units, so a
//                           knapsack over it minimises the total weight distortion;
//   Normalization::relative sum of squared errors / sum of squared weights, per unit.
// Candidate 16 means "kept unquantized" and costs 0. Weights whose last dimension is not divisible by
// the group size cannot be quantized by MLX: they are left out of the table (mlx-lm's convert leaves
// them unquantized too) and listed in skipped().
// cache_key() names the model identity given by the caller, the settings, and every unit's name,
// dtype and shape (not the weight bytes: the model identity stands for them).
#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/alloc/table.hpp"
#include "optiq/core/error.hpp"
#include "optiq/io/dtype.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::alloc {

/// One unit's input: its module path and a view of its weight (f32, f16 or bf16, rank 2).
struct WeightUnit {
    std::string name;
    io::TensorView weight;
};

enum class MseNormalization { total, relative };

struct WeightMSEOptions {
    std::size_t group_size = 64;
    MseNormalization normalization = MseNormalization::total;
};

class WeightMSESensitivity {
public:
    using Normalization = MseNormalization;
    using Options = WeightMSEOptions;

    WeightMSESensitivity(std::string model_id, std::vector<WeightUnit> units, Options options = {})
        : model_id_(std::move(model_id)), opt_(options) {
        if (!Affine::mlx_group_size(opt_.group_size))
            optiq::detail::fail<config_error>("WeightMSESensitivity: group_size ", opt_.group_size, " is not 32, 64 or 128");
        for (WeightUnit& u : units) {
            const auto& w = u.weight;
            if (w.rank() != 2)
                optiq::detail::fail<shape_error>("WeightMSESensitivity: unit '", u.name, "' weight has rank ", w.rank());
            if (w.dtype != io::DType::f32 && w.dtype != io::DType::f16 && w.dtype != io::DType::bf16)
                optiq::detail::fail<config_error>("WeightMSESensitivity: unit '", u.name, "' has dtype ",
                                                  io::dtype_name(w.dtype));
            if (w.shape.back() % opt_.group_size != 0) skipped_.push_back(std::move(u.name));
            else units_.push_back(std::move(u));
        }
    }

    [[nodiscard]] const std::vector<std::string>& skipped() const noexcept { return skipped_; }

    [[nodiscard]] std::string cache_key() const {
        std::string k = model_id_ + ";weight_mse;g=" + std::to_string(opt_.group_size) +
                        (opt_.normalization == Normalization::total ? ";total" : ";relative") + ";units=";
        for (const WeightUnit& u : units_)
            k += u.name + ":" + std::string(io::dtype_name(u.weight.dtype)) + io::shape_string(u.weight.shape) + ",";
        return k;
    }

    [[nodiscard]] CostTable measure(std::span<const int> candidate_bits) const {
        CostTable t(std::vector<int>(candidate_bits.begin(), candidate_bits.end()));
        for (int b : candidate_bits)
            if (b != 16 && !Affine::mlx_bits(b))
                optiq::detail::fail<config_error>("WeightMSESensitivity: ", b, " bits is not an MLX bit-width (or 16)");
        int n_blocks = 0;
        for (const WeightUnit& u : units_) n_blocks = std::max(n_blocks, block_index(u.name) + 1);
        for (const WeightUnit& u : units_) {
            const std::vector<float> x = u.weight.to_float();
            std::vector<std::uint16_t> h;
            SideType side = SideType::f32;
            if (u.weight.dtype != io::DType::f32) {
                side = u.weight.dtype == io::DType::bf16 ? SideType::bf16 : SideType::f16;
                h.resize(x.size());
                for (std::size_t i = 0; i < x.size(); ++i)
                    h[i] = side == SideType::bf16 ? float_to_bf16_bits(x[i]) : float_to_f16_bits(x[i]);
            }
            double norm = 0;
            for (float v : x) norm += static_cast<double>(v) * v;
            std::vector<double> cost;
            for (int b : candidate_bits) {
                if (b == 16) {
                    cost.push_back(0.0);
                    continue;
                }
                const mlx::QuantizedMatrix q =
                    side == SideType::f32
                        ? mlx::quantize(x, u.weight.shape, opt_.group_size, b)
                        : mlx::quantize(std::span<const std::uint16_t>(h), side, u.weight.shape, opt_.group_size, b);
                const std::vector<float> y = mlx::dequantize(q);
                double sse = 0;
                for (std::size_t i = 0; i < x.size(); ++i) {
                    const double d = static_cast<double>(y[i]) - x[i];
                    sse += d * d;
                }
                cost.push_back(opt_.normalization == Normalization::total ? sse : (norm > 0 ? sse / norm : 0.0));
            }
            t.add(make_unit(u.name, u.weight.numel(), n_blocks), std::move(cost));
        }
        return t;
    }

private:
    std::string model_id_;
    Options opt_;
    std::vector<WeightUnit> units_;
    std::vector<std::string> skipped_;
};

}  // namespace optiq::alloc

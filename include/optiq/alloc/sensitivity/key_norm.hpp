#pragma once
// KeyNormSensitivity: RateQuant's proxy for KV-cache allocation (arXiv 2605.06675; VeloxQuant
// allocators/ratequant.py): w_l = mean over sampled tokens of ||k_t||^2 for layer l (floored at
// 1e-6), and the distortion model D_l(b) = w_l * beta^-b as the table's cost. Units are KV layers
// of equal weight (param_count 1), so the budget is the plain mean bits over layers; `weight` carries
// w_l for ReverseWaterFilling.
// cache_key() names the caller's model identity, beta, and a hash of every sample.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "optiq/alloc/table.hpp"
#include "optiq/core/error.hpp"

namespace optiq::alloc {

inline constexpr double kKeyNormFloor = 1e-6;

class KeyNormSensitivity {
public:
    explicit KeyNormSensitivity(std::string model_id, double beta = 3.5) : model_id_(std::move(model_id)), beta_(beta) {
        if (!(beta > 1.0)) optiq::detail::fail<config_error>("KeyNormSensitivity: beta = ", beta, " must be > 1");
    }

    /// Adds key samples for one layer: `keys` holds whole tokens of `token_dim` floats (all KV heads
    /// of one position), from any number of prompts. Calling again for the same name appends.
    void add_samples(const std::string& layer_name, std::span<const float> keys, std::size_t token_dim) {
        if (token_dim == 0 || keys.empty() || keys.size() % token_dim != 0)
            optiq::detail::fail<shape_error>("KeyNormSensitivity: layer '", layer_name, "': ", keys.size(),
                                             " floats do not form tokens of ", token_dim);
        Layer* l = nullptr;
        for (Layer& x : layers_)
            if (x.name == layer_name) l = &x;
        if (!l) {
            layers_.push_back(Layer{layer_name, 0.0, 0});
            l = &layers_.back();
        }
        for (std::size_t t = 0; t < keys.size() / token_dim; ++t) {
            double s = 0;
            for (std::size_t i = 0; i < token_dim; ++i) {
                const double v = keys[t * token_dim + i];
                if (!std::isfinite(v))
                    optiq::detail::fail<value_error>("KeyNormSensitivity: layer '", layer_name, "': non-finite key");
                s += v * v;
            }
            l->sum += s;
            ++l->tokens;
        }
        samples_hash_ = detail::fnv1a_hex(samples_hash_ + layer_name +
                                          std::string(reinterpret_cast<const char*>(keys.data()), keys.size_bytes()));
    }

    /// w_l = max(mean_t ||k_t||^2, 1e-6), in the order layers were first added.
    [[nodiscard]] std::vector<double> weights() const {
        std::vector<double> w;
        for (const Layer& l : layers_) w.push_back(std::max(l.sum / static_cast<double>(l.tokens), kKeyNormFloor));
        return w;
    }

    [[nodiscard]] std::string cache_key() const {
        return model_id_ + ";key_norm;beta=" + std::to_string(beta_) + ";layers=" + std::to_string(layers_.size()) +
               ";samples=" + samples_hash_;
    }

    [[nodiscard]] CostTable measure(std::span<const int> candidate_bits) const {
        if (layers_.empty()) optiq::detail::fail<config_error>("KeyNormSensitivity: no key samples were added");
        CostTable t(std::vector<int>(candidate_bits.begin(), candidate_bits.end()));
        const std::vector<double> w = weights();
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            Unit u;
            u.name = layers_[i].name;
            u.kind = UnitKind::kv_layer;
            u.block = block_index(u.name) >= 0 ? block_index(u.name) : static_cast<int>(i);
            u.param_count = 1;
            u.weight = w[i];
            std::vector<double> cost;
            for (int b : candidate_bits) cost.push_back(w[i] * std::pow(beta_, -b));
            t.add(std::move(u), std::move(cost));
        }
        return t;
    }

private:
    struct Layer {
        std::string name;
        double sum;
        std::size_t tokens;
    };
    std::string model_id_;
    double beta_;
    std::vector<Layer> layers_;
    std::string samples_hash_;
};

}  // namespace optiq::alloc

#pragma once
// Next-token sampling from logits: repetition penalty, then greedy (temperature 0) or
// temperature → top-k → softmax → top-p → min-p → draw with optiq::Rng (seeded, identical on
// every platform). The order is llama.cpp's default sampler chain (penalties, top-k, top-p, min-p,
// temperature); temperature is applied first here, which leaves top-k unchanged and makes top-p /
// min-p act on the tempered distribution, as HF transformers' warpers do.
//   repetition_penalty (CTRL, Keskar et al. 2019; HF/llama.cpp): a logit l of a token seen in the
//   last `repetition_window` tokens becomes l / p if l > 0, else l · p.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"

namespace optiq::model {

struct SamplingOptions {
    float temperature = 0.0f;         ///< <= 0: greedy (argmax, lowest id on ties)
    std::size_t top_k = 0;            ///< 0: off
    float top_p = 1.0f;               ///< 1: off
    float min_p = 0.0f;               ///< 0: off; keeps p >= min_p · p_max
    float repetition_penalty = 1.0f;  ///< 1: off
    std::size_t repetition_window = 64;  ///< 0: the whole history
    std::uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(SamplingOptions o = {}) : o_(o), rng_(o.seed) {
        if (!(o.top_p > 0.0f && o.top_p <= 1.0f))
            optiq::detail::fail<config_error>("model::Sampler: top_p ", o.top_p, " is outside (0, 1]");
        if (!(o.min_p >= 0.0f && o.min_p <= 1.0f))
            optiq::detail::fail<config_error>("model::Sampler: min_p ", o.min_p, " is outside [0, 1]");
        if (!(o.repetition_penalty > 0.0f) || !std::isfinite(o.repetition_penalty))
            optiq::detail::fail<config_error>("model::Sampler: repetition_penalty ", o.repetition_penalty,
                                              " must be positive");
        if (!std::isfinite(o.temperature))
            optiq::detail::fail<config_error>("model::Sampler: temperature ", o.temperature, " is not finite");
    }

    [[nodiscard]] const SamplingOptions& options() const noexcept { return o_; }

    /// The next token; `history` holds the tokens so far (prompt and generated) for the penalty.
    [[nodiscard]] std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> history = {}) {
        if (logits.empty()) optiq::detail::fail<value_error>("model::Sampler: no logits");
        work_.assign(logits.begin(), logits.end());
        if (o_.repetition_penalty != 1.0f) {
            const std::size_t from = o_.repetition_window && history.size() > o_.repetition_window
                                         ? history.size() - o_.repetition_window
                                         : 0;
            seen_.assign(work_.size(), 0);
            for (std::size_t i = from; i < history.size(); ++i) {
                const auto t = history[i];
                if (t < 0 || static_cast<std::size_t>(t) >= work_.size() || seen_[static_cast<std::size_t>(t)]) continue;
                seen_[static_cast<std::size_t>(t)] = 1;
                float& l = work_[static_cast<std::size_t>(t)];
                l = l > 0.0f ? l / o_.repetition_penalty : l * o_.repetition_penalty;
            }
        }
        if (o_.temperature <= 0.0f) return argmax(work_);

        const auto by_logit = [&](std::int32_t a, std::int32_t b) {
            const float la = work_[static_cast<std::size_t>(a)], lb = work_[static_cast<std::size_t>(b)];
            return la > lb || (la == lb && a < b);
        };
        std::size_t keep = 0;
        double z = 0.0;
        if (o_.top_k > 0 && o_.top_k < work_.size()) {
            // Candidates sorted by logit (descending), ties by id: the draw is then deterministic.
            idx_.resize(work_.size());
            std::iota(idx_.begin(), idx_.end(), 0);
            keep = o_.top_k;
            std::partial_sort(idx_.begin(), idx_.begin() + static_cast<std::ptrdiff_t>(keep), idx_.end(), by_logit);
            const double mx = work_[static_cast<std::size_t>(idx_[0])];
            probs_.resize(keep);
            for (std::size_t i = 0; i < keep; ++i) {
                probs_[i] = std::exp((work_[static_cast<std::size_t>(idx_[i])] - mx) / o_.temperature);
                z += probs_[i];
            }
        } else {
            // Every token: weights e^((l − max)/T) in id order, z their sum. Without top-p / min-p the
            // draw walks them in id order (no sort); otherwise only the tokens that can be in the
            // top-p prefix or above the min-p floor are sorted (all of them only for a flat
            // distribution), found by a falling threshold on the weight.
            const std::size_t V = work_.size();
            const double mx = *std::max_element(work_.begin(), work_.end());
            weights_.resize(V);
            for (std::size_t i = 0; i < V; ++i) {
                weights_[i] = std::exp((work_[i] - mx) / o_.temperature);
                z += weights_[i];
            }
            if (o_.top_p >= 1.0f && o_.min_p <= 0.0f) {
                const double u = rng_.uniform() * z;
                double c = 0.0;
                for (std::size_t i = 0; i < V; ++i) {
                    c += weights_[i];
                    if (u < c) return static_cast<std::int32_t>(i);
                }
                return static_cast<std::int32_t>(V - 1);
            }
            const double need = o_.top_p < 1.0f ? static_cast<double>(o_.top_p) * z : z;
            double tau = o_.min_p > 0.0f ? std::min(1e-4, static_cast<double>(o_.min_p)) : 1e-4;
            for (;;) {
                idx_.clear();
                double mass = 0.0;
                for (std::size_t i = 0; i < V; ++i)
                    if (weights_[i] >= tau) {
                        idx_.push_back(static_cast<std::int32_t>(i));
                        mass += weights_[i];
                    }
                if (mass >= need || o_.top_p >= 1.0f || tau == 0.0) break;
                tau = tau > 1e-300 ? tau * 1e-4 : 0.0;
            }
            std::sort(idx_.begin(), idx_.end(), by_logit);
            keep = idx_.size();
            probs_.resize(keep);
            for (std::size_t i = 0; i < keep; ++i) probs_[i] = weights_[static_cast<std::size_t>(idx_[i])];
        }
        for (std::size_t i = 0; i < keep; ++i) probs_[i] /= z;
        if (o_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
            double c = 0.0;
            std::size_t n = 0;
            while (n < keep) {
                c += probs_[n++];
                if (c >= o_.top_p) break;
            }
            keep = n;
        }
        if (o_.min_p > 0.0f) {
            const double floor = o_.min_p * probs_[0];
            std::size_t n = 1;
            while (n < keep && probs_[n] >= floor) ++n;
            keep = n;
        }
        double total = 0.0;
        for (std::size_t i = 0; i < keep; ++i) total += probs_[i];
        const double u = rng_.uniform() * total;
        double c = 0.0;
        for (std::size_t i = 0; i < keep; ++i) {
            c += probs_[i];
            if (u < c) return idx_[i];
        }
        return idx_[keep - 1];
    }

    [[nodiscard]] static std::int32_t argmax(std::span<const float> logits) noexcept {
        std::size_t best = 0;
        for (std::size_t i = 1; i < logits.size(); ++i)
            if (logits[i] > logits[best]) best = i;
        return static_cast<std::int32_t>(best);
    }

private:
    SamplingOptions o_;
    Rng rng_;
    std::vector<float> work_;
    std::vector<std::int32_t> idx_;
    std::vector<double> probs_, weights_;
    std::vector<unsigned char> seen_;
};

}  // namespace optiq::model

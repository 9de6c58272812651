#pragma once
// RateQuant's reverse water-filling (arXiv 2605.06675, Theorem 2; VeloxQuant allocators/ratequant.py):
// with D_i(b) = alpha * w_i * beta^-b, the continuous optimum is
//     b_i = bbar + (ln w_i - mean_j ln w_j) / ln beta,
// clamped to [min, max] candidate bits and snapped to the nearest candidate; then units step up or
// down greedily, ordered by the gap between continuous and allocated bits, until the total reaches
// the budget.
// Budget: parameter-weighted, so total bit-params <= bbar * sum p_i. VeloxQuant hits round(bbar * N)
// for equal-size layers; we stop at the largest total that does not exceed the budget, which is the
// same whenever bbar * N is an integer (and never overshoots when it is not).
// w_i is the unit's `weight` when the sensitivity set one, else cost at the lowest bits * beta^b_min
// (the value of w_i for which the table follows the model exactly).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "optiq/alloc/table.hpp"
#include "optiq/core/error.hpp"

namespace optiq::alloc {

/// beta for TurboQuant-style codecs, and for KIVI / QuaRot (reference-spec C).
inline constexpr double kRateQuantBetaTurboQuant = 3.5;
inline constexpr double kRateQuantBetaKivi = 5.0;

class ReverseWaterFilling {
public:
    explicit ReverseWaterFilling(double beta = kRateQuantBetaTurboQuant) : beta_(beta) {
        if (!(beta > 1.0)) optiq::detail::fail<config_error>("ReverseWaterFilling: beta = ", beta, " must be > 1");
    }
    [[nodiscard]] double beta() const noexcept { return beta_; }

    /// The unclamped continuous solution b_i.
    [[nodiscard]] std::vector<double> continuous_bits(const CostTable& t, double bbar) const {
        std::vector<double> lw(t.size());
        double mean = 0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            double w = t.unit(i).weight;
            if (w <= 0) w = t.cost(i, 0) * std::pow(beta_, t.candidate_bits()[0]);
            if (!(w > 0))
                optiq::detail::fail<value_error>("ReverseWaterFilling: unit '", t.unit(i).name, "' has weight ", w,
                                                 " (need > 0)");
            lw[i] = std::log(w);
            mean += lw[i];
        }
        mean /= static_cast<double>(t.size());
        std::vector<double> b(t.size());
        for (std::size_t i = 0; i < t.size(); ++i) b[i] = bbar + (lw[i] - mean) / std::log(beta_);
        return b;
    }

    /// Parameter-weighted bpw of the result <= budget_bpw.
    [[nodiscard]] Allocation solve(const CostTable& t, double budget_bpw) const {
        const auto& cand = t.candidate_bits();
        if (t.empty()) optiq::detail::fail<config_error>("ReverseWaterFilling: the cost table has no units");
        if (!(budget_bpw >= static_cast<double>(cand.front())))
            optiq::detail::fail<config_error>("ReverseWaterFilling: budget ", budget_bpw,
                                              " bpw is below the smallest candidate, ", cand.front(), " bits");
        const std::size_t n = t.size();
        const std::vector<double> cont = continuous_bits(t, budget_bpw);
        std::vector<std::size_t> choice(n);
        for (std::size_t i = 0; i < n; ++i) {
            const double b = std::clamp(cont[i], static_cast<double>(cand.front()), static_cast<double>(cand.back()));
            std::size_t best = 0;  // nearest candidate; ties go to the lower one
            for (std::size_t c = 1; c < cand.size(); ++c)
                if (std::abs(cand[c] - b) < std::abs(cand[best] - b)) best = c;
            choice[i] = best;
        }
        // Budget in integer bit-params, checked with bpw_fits (the same arithmetic as the result's bpw).
        const std::uint64_t P = t.total_params();
        std::uint64_t used = 0;
        for (std::size_t i = 0; i < n; ++i) used += static_cast<std::uint64_t>(cand[choice[i]]) * t.unit(i).param_count;
        const auto gap = [&](std::size_t i) { return cont[i] - static_cast<double>(cand[choice[i]]); };
        // Over budget: step down the unit allocated furthest above its continuous value.
        while (!bpw_fits(used, P, budget_bpw)) {
            std::size_t pick = n;
            for (std::size_t i = 0; i < n; ++i)
                if (choice[i] > 0 && (pick == n || gap(i) < gap(pick))) pick = i;
            if (pick == n) break;  // unreachable: budget >= min bits
            used -= static_cast<std::uint64_t>(cand[choice[pick]] - cand[choice[pick] - 1]) * t.unit(pick).param_count;
            --choice[pick];
        }
        // Under budget: step up the unit furthest below its continuous value whose step still fits.
        for (;;) {
            std::size_t pick = n;
            for (std::size_t i = 0; i < n; ++i) {
                if (choice[i] + 1 >= cand.size()) continue;
                const std::uint64_t step = static_cast<std::uint64_t>(cand[choice[i] + 1] - cand[choice[i]]) * t.unit(i).param_count;
                if (!bpw_fits(used + step, P, budget_bpw)) continue;
                if (pick == n || gap(i) > gap(pick)) pick = i;
            }
            if (pick == n) break;
            used += static_cast<std::uint64_t>(cand[choice[pick] + 1] - cand[choice[pick]]) * t.unit(pick).param_count;
            ++choice[pick];
        }
        std::vector<int> bits(n);
        for (std::size_t i = 0; i < n; ++i) bits[i] = cand[choice[i]];
        return make_allocation(t, std::move(bits));
    }

private:
    double beta_;
};

}  // namespace optiq::alloc

#pragma once
// Exact multiple-choice knapsack: minimise sum_i cost[i][c_i] subject to
//     sum_i bits[c_i] * params_i <= budget_bpw * sum_i params_i,
// i.e. the parameter-weighted mean bits within the budget.
//
// Method: dynamic programming over Pareto frontiers, exact in integer arithmetic.
// Weights are w_ic = (bits[c] - bits[0]) * params_i / g with g = gcd of all of them (dividing by a
// common factor changes no comparison), and the capacity is floor(W / g) where W is the largest number
// of bit-params above the all-minimum choice whose bpw (bits[0] * P + W) / P, computed exactly as
// weighted_bpw() computes it, is <= budget_bpw. After unit k the frontier holds, for the first k
// units, every (weight, cost) that no other partial choice beats on both weight and cost, with
// weight <= capacity. Proof of optimality: take an optimal full choice; its prefix of k units is
// either on frontier k or dominated by a frontier state s (weight <= and cost <=); replacing the
// prefix with s keeps the total feasible and its cost no larger, so by induction some optimum is
// built from frontier states only, and the answer is the cheapest state of the final frontier. The
// frontier has at most capacity + 1 states (one per distinct weight); each step merges the
// choices' shifted copies of the previous frontier, O(choices^2 * states) per unit. `max_states`
// bounds the frontier: exceeding it throws rather than give up optimality. Model tables stay small
// because the weights share a large factor (SmolLM2-135M: 192 * 576, about 7300 states at most).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "optiq/alloc/table.hpp"
#include "optiq/core/error.hpp"

namespace optiq::alloc {

class ExactKnapsack {
public:
    struct Options {
        std::size_t max_states = std::size_t{1} << 24;  ///< per frontier; exceeding it throws config_error
    };
    ExactKnapsack() = default;
    explicit ExactKnapsack(Options o) : opt_(o) {}

    /// Parameter-weighted bpw of the result <= budget_bpw, and its cost is the minimum over all
    /// such choices.
    [[nodiscard]] Allocation solve(const CostTable& t, double budget_bpw) const {
        const auto& cand = t.candidate_bits();
        if (t.empty()) optiq::detail::fail<config_error>("ExactKnapsack: the cost table has no units");
        if (!(budget_bpw >= static_cast<double>(cand.front())))
            optiq::detail::fail<config_error>("ExactKnapsack: budget ", budget_bpw,
                                              " bpw is below the smallest candidate, ", cand.front(),
                                              " bits: no choice fits");
        const std::size_t n = t.size(), m = cand.size();
        // Capacity in bit-params above the all-minimum choice: the largest W whose bpw, computed as
        // weighted_bpw computes it, is <= budget_bpw (found from an estimate by exact stepping).
        const std::uint64_t P = t.total_params();
        const std::uint64_t full = static_cast<std::uint64_t>(cand.back() - cand.front()) * P;
        const std::uint64_t base = static_cast<std::uint64_t>(cand.front()) * P;
        const auto fits = [&](std::uint64_t w) { return bpw_fits(base + w, P, budget_bpw); };
        std::uint64_t cap_bp = full;
        if (!fits(full)) {
            const long double est = std::floor((static_cast<long double>(budget_bpw) - cand.front()) * P);
            cap_bp = est <= 0 ? 0 : std::min<std::uint64_t>(full, static_cast<std::uint64_t>(est));
            while (cap_bp > 0 && !fits(cap_bp)) --cap_bp;
            while (cap_bp < full && fits(cap_bp + 1)) ++cap_bp;
        }
        std::uint64_t g = 0;
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t c = 1; c < m; ++c)
                g = std::gcd(g, static_cast<std::uint64_t>(cand[c] - cand[0]) * t.unit(i).param_count);
        if (g == 0) g = 1;  // a single candidate
        const std::uint64_t cap = cap_bp / g;

        struct State {
            std::uint64_t weight;
            double cost;
            std::uint32_t parent;  // index in the previous frontier
            std::uint8_t choice;
        };
        std::vector<std::vector<State>> frontiers;
        frontiers.reserve(n + 1);
        frontiers.push_back({State{0, 0.0, 0, 0}});
        std::vector<std::uint64_t> shift(m);
        std::vector<std::size_t> head(m);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& prev = frontiers.back();
            // The m shifted copies of the previous frontier are each sorted by weight (and by
            // decreasing cost); merging them in (weight, cost) order and keeping each state that is
            // cheaper than the last one kept yields the new frontier in O(m^2 * |frontier|).
            for (std::size_t c = 0; c < m; ++c) {
                shift[c] = static_cast<std::uint64_t>(cand[c] - cand[0]) * t.unit(i).param_count / g;
                head[c] = 0;
            }
            std::vector<State> kept;
            for (;;) {
                std::size_t best = m;
                std::uint64_t best_w = 0;
                double best_cost = 0;
                for (std::size_t c = 0; c < m; ++c) {
                    if (head[c] >= prev.size()) continue;
                    const std::uint64_t w = prev[head[c]].weight + shift[c];
                    if (w > cap) {
                        head[c] = prev.size();  // later states of this copy are heavier still
                        continue;
                    }
                    const double cost = prev[head[c]].cost + t.cost(i, c);
                    if (best == m || w < best_w || (w == best_w && cost < best_cost)) {
                        best = c;
                        best_w = w;
                        best_cost = cost;
                    }
                }
                if (best == m) break;
                if (kept.empty() || best_cost < kept.back().cost) {
                    if (kept.size() == opt_.max_states)
                        optiq::detail::fail<config_error>("ExactKnapsack: more than max_states = ", opt_.max_states,
                                                          " Pareto states at unit ", i, " ('", t.unit(i).name,
                                                          "'); the table's parameter counts share too small a factor");
                    kept.push_back(State{best_w, best_cost, static_cast<std::uint32_t>(head[best]),
                                         static_cast<std::uint8_t>(best)});
                }
                ++head[best];
            }
            frontiers.push_back(std::move(kept));
        }
        // The cheapest state is the last one (costs strictly decrease along a frontier).
        std::vector<int> bits(n);
        std::uint32_t s = static_cast<std::uint32_t>(frontiers.back().size() - 1);
        for (std::size_t i = n; i-- > 0;) {
            const State& st = frontiers[i + 1][s];
            bits[i] = cand[st.choice];
            s = st.parent;
        }
        return make_allocation(t, std::move(bits));
    }

private:
    Options opt_{};
};

}  // namespace optiq::alloc

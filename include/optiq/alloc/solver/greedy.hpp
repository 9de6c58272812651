#pragma once
// mlx-optiq's greedy knapsack (reference-spec C, "mlx-optiq weight knapsack"):
//  1. every unit starts at the lowest candidate bit-width;
//  2. block floor: in each layers.N block the top n_floor_per_block units, ranked by cost at the
//     lowest bits, are pre-upgraded to the second-lowest bits. In a block that holds attention
//     projections (a "full-attention block") the slots go to its attention projections first; a
//     block without any (linear-attention / SSM layers of hybrids) gets a floor of 1;
//  3. a max-heap on efficiency = dcost / (dbits * params) upgrades one step at a time while the
//     parameter-weighted bpw is below the target (a floor: the last step may overshoot);
//  4. protected units (outside layers.N, first and last block) have their cost multiplied by
//     protected_factor (100) so they rank first; they are not pinned to the top bits;
//  5. block-run guard (interpretation: the spec only names max_low_bit_run = 3): a block is
//     "low-bit" when the greedy gave it nothing beyond its floor; wherever more than max_low_bit_run
//     low-bit blocks follow each other, the next one gets its most efficient upgrade, which ends the
//     run. This may raise the bpw further above the target, as the floor may.
// Setting n_floor_per_block = 0, protected_factor = 1 and max_low_bit_run = 0 leaves the plain
// efficiency greedy (used to compare against ExactKnapsack).
#include <algorithm>
#include <cstddef>
#include <queue>
#include <vector>

#include "optiq/alloc/table.hpp"
#include "optiq/core/error.hpp"

namespace optiq::alloc {

class GreedyKnapsack {
public:
    struct Options {
        int n_floor_per_block = 2;
        double protected_factor = 100.0;
        int max_low_bit_run = 3;  ///< 0 disables the guard
    };

    GreedyKnapsack() = default;
    explicit GreedyKnapsack(Options o) : opt_(o) {
        if (opt_.n_floor_per_block < 0 || opt_.max_low_bit_run < 0 || !(opt_.protected_factor > 0))
            optiq::detail::fail<config_error>("GreedyKnapsack: n_floor_per_block = ", opt_.n_floor_per_block,
                                              ", max_low_bit_run = ", opt_.max_low_bit_run,
                                              ", protected_factor = ", opt_.protected_factor, " (need >= 0, >= 0, > 0)");
    }
    [[nodiscard]] const Options& options() const noexcept { return opt_; }

    /// `target_bpw` is a floor: the result's parameter-weighted bpw is >= target_bpw.
    [[nodiscard]] Allocation solve(const CostTable& t, double target_bpw) const {
        const auto& cand = t.candidate_bits();
        if (t.empty()) optiq::detail::fail<config_error>("GreedyKnapsack: the cost table has no units");
        if (!(target_bpw <= static_cast<double>(cand.back())))
            optiq::detail::fail<config_error>("GreedyKnapsack: target ", target_bpw,
                                              " bpw is above the largest candidate, ", cand.back(), " bits");
        const std::size_t n = t.size(), top = cand.size() - 1;
        std::vector<double> cost(n * cand.size());
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t c = 0; c < cand.size(); ++c)
                cost[i * cand.size() + c] = t.cost(i, c) * (t.unit(i).is_protected ? opt_.protected_factor : 1.0);
        const auto eff = [&](std::size_t i, std::size_t c) {  // upgrading unit i from choice c to c + 1
            const double dcost = cost[i * cand.size() + c] - cost[i * cand.size() + c + 1];
            const double dbits = static_cast<double>(cand[c + 1] - cand[c]);
            return dcost / (dbits * static_cast<double>(t.unit(i).param_count));
        };

        std::vector<std::size_t> choice(n, 0);
        long double total_params = static_cast<long double>(t.total_params());
        long double bit_params = 0;
        for (std::size_t i = 0; i < n; ++i) bit_params += static_cast<long double>(cand[0]) * t.unit(i).param_count;
        const auto upgrade = [&](std::size_t i) {
            bit_params += static_cast<long double>(cand[choice[i] + 1] - cand[choice[i]]) * t.unit(i).param_count;
            ++choice[i];
        };

        // 2. block floor
        const int n_blocks = t.n_blocks();
        std::vector<std::size_t> floor_choice(n, 0);
        if (top >= 1 && opt_.n_floor_per_block > 0) {
            for (int b = 0; b < n_blocks; ++b) {
                std::vector<std::size_t> members, attn;
                for (std::size_t i = 0; i < n; ++i)
                    if (t.unit(i).block == b) {
                        members.push_back(i);
                        if (t.unit(i).kind == UnitKind::attention) attn.push_back(i);
                    }
                const auto by_cost = [&](std::size_t a, std::size_t c) {
                    return t.cost(a, 0) != t.cost(c, 0) ? t.cost(a, 0) > t.cost(c, 0) : a < c;
                };
                std::sort(members.begin(), members.end(), by_cost);
                std::sort(attn.begin(), attn.end(), by_cost);
                std::vector<std::size_t> picks;
                if (attn.empty()) {
                    if (!members.empty()) picks.push_back(members[0]);
                } else {
                    for (std::size_t k = 0; k < attn.size() && picks.size() < static_cast<std::size_t>(opt_.n_floor_per_block); ++k)
                        picks.push_back(attn[k]);
                    for (std::size_t k = 0; k < members.size() && picks.size() < static_cast<std::size_t>(opt_.n_floor_per_block); ++k)
                        if (std::find(picks.begin(), picks.end(), members[k]) == picks.end()) picks.push_back(members[k]);
                }
                for (std::size_t i : picks) {
                    upgrade(i);
                    floor_choice[i] = choice[i];
                }
            }
        }

        // 3. greedy upgrades while below the target
        const auto bpw = [&] { return static_cast<double>(bit_params / total_params); };
        using Item = std::pair<double, std::size_t>;  // (efficiency, unit); ties: lower index first
        const auto less = [](const Item& a, const Item& b) {
            return a.first != b.first ? a.first < b.first : a.second > b.second;
        };
        std::priority_queue<Item, std::vector<Item>, decltype(less)> heap(less);
        for (std::size_t i = 0; i < n; ++i)
            if (choice[i] < top) heap.emplace(eff(i, choice[i]), i);
        while (bpw() < target_bpw && !heap.empty()) {
            const std::size_t i = heap.top().second;
            heap.pop();
            upgrade(i);
            if (choice[i] < top) heap.emplace(eff(i, choice[i]), i);
        }

        // 5. block-run guard
        if (opt_.max_low_bit_run > 0 && top >= 1) {
            int run = 0;
            for (int b = 0; b < n_blocks; ++b) {
                bool any = false, low = true;
                for (std::size_t i = 0; i < n; ++i)
                    if (t.unit(i).block == b) {
                        any = true;
                        if (choice[i] > floor_choice[i]) low = false;
                    }
                if (!any) continue;
                if (!low) {
                    run = 0;
                    continue;
                }
                if (++run <= opt_.max_low_bit_run) continue;
                std::size_t best = n;
                for (std::size_t i = 0; i < n; ++i)
                    if (t.unit(i).block == b && choice[i] < top && (best == n || eff(i, choice[i]) > eff(best, choice[best])))
                        best = i;
                if (best != n) {
                    upgrade(best);
                    run = 0;
                }
            }
        }

        std::vector<int> bits(n);
        for (std::size_t i = 0; i < n; ++i) bits[i] = cand[choice[i]];
        return make_allocation(t, std::move(bits));
    }

private:
    Options opt_{};
};

}  // namespace optiq::alloc

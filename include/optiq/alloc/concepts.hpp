#pragma once
// The Allocator's two slots (design.md "Allocator"):
// - Sensitivity: measures a cost table for the candidate bit-widths. It owns whatever it needs (weight
//   views, key samples, or a model runtime plus calibration tokens for KL), and names the model and
//   settings in cache_key() so a measured table can be reused from disk while they stay unchanged.
// - Solver: turns a table and a budget (parameter-weighted average bits per weight) into bits per unit.
#include <concepts>
#include <span>
#include <string>

#include "optiq/alloc/table.hpp"

namespace optiq {

template <class S>
concept Sensitivity = requires(const S& s, std::span<const int> candidate_bits) {
    { s.measure(candidate_bits) } -> std::same_as<alloc::CostTable>;
    { s.cache_key() } -> std::convertible_to<std::string>;
};

template <class S>
concept Solver = requires(const S& s, const alloc::CostTable& table, double budget_bpw) {
    { s.solve(table, budget_bpw) } -> std::same_as<alloc::Allocation>;
};

}  // namespace optiq

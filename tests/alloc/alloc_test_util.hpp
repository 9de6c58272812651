#pragma once
// Random cost tables for the solver tests: convex-ish decreasing costs, params from a few sizes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "optiq/alloc/table.hpp"

namespace optiq::alloc::test {

/// n units in `blocks` blocks of layers.N names (names cycle through q/k/v/o/gate/up/down), costs
/// decreasing in bits: c(b) = s * 2^-b * (1 + noise).
/// With `convex` false, each step down the bit list multiplies the cost by an independent U(0, 1)
/// factor, so the marginal gains are not monotone (the greedy's ratio order can mislead it).
inline CostTable random_table(std::uint64_t seed, std::size_t n, std::vector<int> bits, bool random_params = true,
                              bool convex = true) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    static const char* kNames[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                   "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    const std::uint64_t sizes[] = {64, 128, 192, 256, 448};
    CostTable t(bits);
    const int n_blocks = static_cast<int>((n + 6) / 7);
    for (std::size_t i = 0; i < n; ++i) {
        const std::string name = "model.layers." + std::to_string(i / 7) + "." + kNames[i % 7];
        const std::uint64_t params = random_params ? sizes[rng() % 5] * 64 : 4096;
        const double s = std::exp(6.0 * u(rng));
        std::vector<double> c;
        for (int b : bits) c.push_back(convex || c.empty() ? s * std::ldexp(1.0, -b) * (1.0 + 0.3 * u(rng)) : c.back() * u(rng));
        for (std::size_t k = 1; k < c.size(); ++k) c[k] = std::min(c[k], c[k - 1]);
        t.add(make_unit(name, params, n_blocks), c);
    }
    return t;
}

}  // namespace optiq::alloc::test

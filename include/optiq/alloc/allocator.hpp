#pragma once
// Allocator<Sensitivity, Solver>: measure (or reuse from the on-disk cache) a cost table, then
// solve it under a parameter-weighted bits-per-weight budget (design.md "Allocator").
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "optiq/alloc/concepts.hpp"
#include "optiq/alloc/table.hpp"

namespace optiq::alloc {

template <optiq::Sensitivity S, optiq::Solver V>
class Allocator {
public:
    struct Options {
        std::vector<int> candidate_bits{4, 8};   ///< mlx-optiq's CLI default
        std::filesystem::path cache_path{};      ///< empty: no cache
    };

    Allocator(S sensitivity, V solver, Options options)
        : sens_(std::move(sensitivity)), solver_(std::move(solver)), opt_(std::move(options)) {}

    /// The cache key: the sensitivity's model identity and settings, plus the candidate bits.
    [[nodiscard]] std::string cache_key() const {
        std::string key = std::string(sens_.cache_key()) + ";bits=";
        for (std::size_t i = 0; i < opt_.candidate_bits.size(); ++i)
            key += (i ? "," : "") + std::to_string(opt_.candidate_bits[i]);
        return key;
    }

    /// Measures once; with a cache path, reads the table from it when its key matches and writes
    /// it there after measuring otherwise.
    [[nodiscard]] const CostTable& table() {
        if (table_) return *table_;
        const std::string key = cache_key();
        if (!opt_.cache_path.empty()) {
            if (auto cached = load_table_cache(opt_.cache_path, key)) {
                table_ = std::move(cached);
                from_cache_ = true;
                return *table_;
            }
        }
        table_ = sens_.measure(opt_.candidate_bits);
        if (!opt_.cache_path.empty()) save_table_cache(opt_.cache_path, key, *table_);
        return *table_;
    }
    /// True when table() came from the cache file.
    [[nodiscard]] bool from_cache() const noexcept { return from_cache_; }

    [[nodiscard]] Allocation allocate(double budget_bpw) { return solver_.solve(table(), budget_bpw); }
    /// {unit name: bits}.
    [[nodiscard]] std::map<std::string, int> bit_map(double budget_bpw) { return allocate(budget_bpw).bit_map(table()); }

    [[nodiscard]] const S& sensitivity() const noexcept { return sens_; }
    [[nodiscard]] const V& solver() const noexcept { return solver_; }

private:
    S sens_;
    V solver_;
    Options opt_;
    std::optional<CostTable> table_;
    bool from_cache_ = false;
};

}  // namespace optiq::alloc

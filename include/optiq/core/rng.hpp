#pragma once
// A specified pseudo-random generator, so the same seed gives the same rotation,
// signs and sketches on every platform and standard library (std::normal_distribution
// differs between libstdc++, libc++ and MSVC).
//   seeding: SplitMix64 (Steele, Lea, Flood 2014) expands the 64-bit seed;
//   stream:  xoshiro256** 1.0 (Blackman, Vigna 2018);
//   uniform: top 53 bits / 2^53;  normal: Box-Muller, both outputs used.
#include <cmath>
#include <cstdint>
#include <numbers>

namespace optiq {

class Rng {
public:
    explicit Rng(std::uint64_t seed) noexcept {
        std::uint64_t x = seed;
        for (auto& s : state_) s = splitmix64(x);
    }

    [[nodiscard]] std::uint64_t next_u64() noexcept {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    /// Uniform double in [0, 1).
    [[nodiscard]] double uniform() noexcept {
        return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
    }

    /// Standard normal N(0, 1) by Box-Muller.
    [[nodiscard]] double normal() noexcept {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = uniform();
        while (u1 <= 0.0) u1 = uniform();
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double theta = 2.0 * std::numbers::pi * u2;
        spare_ = r * std::sin(theta);
        has_spare_ = true;
        return r * std::cos(theta);
    }

    /// +1 or -1 with equal probability.
    [[nodiscard]] float sign() noexcept { return (next_u64() >> 63) != 0 ? -1.0f : 1.0f; }

    /// Derives an independent seed for a sub-stream (layer i, head j, ...).
    [[nodiscard]] static std::uint64_t derive(std::uint64_t seed, std::uint64_t stream) noexcept {
        std::uint64_t x = seed ^ (0x9E3779B97F4A7C15ull * (stream + 1));
        return splitmix64(x);
    }

private:
    static std::uint64_t splitmix64(std::uint64_t& x) noexcept {
        std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

    std::uint64_t state_[4]{};
    double spare_ = 0.0;
    bool has_spare_ = false;
};

}  // namespace optiq

#pragma once
// Test helpers for tests/kv: random streams and a naive attention written independently of
// the library (plain loops in the reference order documented in kv/attention.hpp).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/core/rng.hpp"

namespace optiq::kv::test {

/// Every architecture this CPU runs, scalar first (each SIMD path is tested, not only the best).
inline std::vector<backend::arch::Arch> archs() {
    using backend::arch::Arch;
    std::vector<Arch> a{Arch::scalar};
    const Arch best = backend::arch::best_arch();
    if (best == Arch::avx2 || best == Arch::avx512) a.push_back(Arch::avx2);
    if (best == Arch::avx512) a.push_back(Arch::avx512);
    if (best == Arch::neon) a.push_back(Arch::neon);
    return a;
}

/// n values N(0, sigma^2) from a seeded generator.
inline std::vector<float> gaussian(std::size_t n, std::uint64_t seed, float sigma = 1.0f) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(rng.normal()) * sigma;
    return v;
}

/// Causal attention; keys/values [T][hkv][d] (all T tokens), queries [nq][hq][d] at positions
/// T-nq..T-1; window W > 0 restricts each query to positions > p - W.
inline std::vector<float> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                          const std::vector<float>& v, std::size_t hq, std::size_t hkv, std::size_t d,
                                          float scale, std::size_t window = 0) {
    const std::size_t T = k.size() / (hkv * d), nq = q.size() / (hq * d), rep = hq / hkv;
    std::vector<float> out(q.size(), 0.0f);
    for (std::size_t i = 0; i < nq; ++i) {
        const std::size_t p = T - nq + i;
        const std::size_t lo = window != 0 && p + 1 > window ? p + 1 - window : 0;
        for (std::size_t h = 0; h < hq; ++h) {
            const std::size_t g = h / rep;
            const float* qv = &q[(i * hq + h) * d];
            std::vector<float> s(p + 1 - lo);
            for (std::size_t t = lo; t <= p; ++t) {
                float acc = 0.0f;
                for (std::size_t c = 0; c < d; ++c) acc += qv[c] * k[(t * hkv + g) * d + c];
                s[t - lo] = acc * scale;
            }
            float m = -std::numeric_limits<float>::infinity();
            for (float x : s) m = std::max(m, x);
            float z = 0.0f;
            for (auto& x : s) {
                x = std::exp(x - m);
                z += x;
            }
            for (auto& x : s) x = x / z;
            float* o = &out[(i * hq + h) * d];
            for (std::size_t t = lo; t <= p; ++t)
                for (std::size_t c = 0; c < d; ++c) o[c] += s[t - lo] * v[(t * hkv + g) * d + c];
        }
    }
    return out;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    float m = 0.0f;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

/// ||a - b|| / ||b||.
inline float rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0.0, den = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        num += static_cast<double>(a[i] - b[i]) * (a[i] - b[i]);
        den += static_cast<double>(b[i]) * b[i];
    }
    return static_cast<float>(std::sqrt(num / den));
}

inline float max_abs(const std::vector<float>& a) {
    float m = 0.0f;
    for (float x : a) m = std::max(m, std::abs(x));
    return m;
}

}  // namespace optiq::kv::test

#pragma once
// Measures a quantizer the way the TurboQuant paper does (Sec. 4.1): reconstruction MSE of unit
// vectors (D_mse), inner-product error against random unit queries (bias and RMSE, D_prod), cosine
// similarity, storage actually used, and encode / decode time. Used by optiq-quant-report and tests.
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/quant/any_quantizer.hpp"

namespace optiq {

/// n points drawn uniformly on the unit sphere S^{d-1} (normalised Gaussian vectors), row-major.
[[nodiscard]] inline std::vector<float> random_unit_vectors(std::size_t n, std::size_t d, std::uint64_t seed) {
    if (d == 0) detail::fail<shape_error>("random_unit_vectors: dimension is 0");
    Rng rng(seed);
    std::vector<float> x(n * d);
    std::vector<double> g(d);
    for (std::size_t i = 0; i < n; ++i) {
        double ss = 0.0;
        for (auto& v : g) {
            v = rng.normal();
            ss += v * v;
        }
        const double inv = 1.0 / std::sqrt(ss);
        for (std::size_t j = 0; j < d; ++j) x[i * d + j] = static_cast<float>(g[j] * inv);
    }
    return x;
}

struct QuantStats {
    std::string method;
    int bits = 0;
    double bits_per_coord = 0;  ///< storage incl. side data / (vectors * dim)
    double mse = 0;             ///< mean ||x - x~||^2 (for unit x: D_mse)
    double ip_bias = 0;         ///< mean(<q, x~>_est - <q, x>)
    double ip_rmse = 0;         ///< sqrt(mean(err^2))
    double ip_var_d = 0;        ///< d * Var(err) (TurboQuant's D_prod * d for unit q)
    double cosine = 0;          ///< mean cos(x, x~)
    double encode_ns = 0;       ///< per vector
    double decode_ns = 0;       ///< per vector
};

/// Evaluates q on row vectors x (n x d) and queries (m x d).
[[nodiscard]] inline QuantStats evaluate(const AnyQuantizer& q, std::span<const float> x, std::span<const float> queries) {
    using clock = std::chrono::steady_clock;
    const std::size_t d = q.dim();
    const std::size_t n = detail::check_batch(x, d, "evaluate(vectors)");
    const std::size_t m = detail::check_batch(queries, d, "evaluate(queries)");
    QuantStats s;
    s.method = q.spec().empty() ? q.name() : q.spec();
    s.bits = q.bits();

    const auto t0 = clock::now();
    const EncodedBatch enc = q.encode(x);
    const auto t1 = clock::now();
    std::vector<float> y(n * d);
    q.decode(enc, y);
    const auto t2 = clock::now();
    s.encode_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
    s.decode_ns = std::chrono::duration<double, std::nano>(t2 - t1).count() / static_cast<double>(n);
    s.bits_per_coord = enc.bits_per_coord();

    double mse = 0.0, cos = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        double err = 0.0, xy = 0.0, xx = 0.0, yy = 0.0;
        for (std::size_t j = 0; j < d; ++j) {
            const double a = x[i * d + j], b = y[i * d + j];
            err += (a - b) * (a - b);
            xy += a * b;
            xx += a * a;
            yy += b * b;
        }
        mse += err;
        cos += (xx > 0 && yy > 0) ? xy / std::sqrt(xx * yy) : 0.0;
    }
    s.mse = mse / static_cast<double>(n);
    s.cosine = cos / static_cast<double>(n);

    std::vector<float> est(n);
    double sum = 0.0, sum2 = 0.0;
    for (std::size_t k = 0; k < m; ++k) {
        const auto qv = queries.subspan(k * d, d);
        q.inner_products(qv, enc, est);
        for (std::size_t i = 0; i < n; ++i) {
            double truth = 0.0;
            for (std::size_t j = 0; j < d; ++j) truth += static_cast<double>(qv[j]) * x[i * d + j];
            const double e = est[i] - truth;
            sum += e;
            sum2 += e * e;
        }
    }
    const double count = static_cast<double>(n * m);
    s.ip_bias = sum / count;
    s.ip_rmse = std::sqrt(sum2 / count);
    s.ip_var_d = (sum2 / count - s.ip_bias * s.ip_bias) * static_cast<double>(d);
    return s;
}

}  // namespace optiq

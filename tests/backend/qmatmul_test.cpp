#include "optiq/backend/simd/qmatmul.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "optiq/core/half.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/io/ggml_quants.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::backend::qmatmul {
namespace {

constexpr QFormat kGgml[] = {QFormat::q4_0, QFormat::q4_1, QFormat::q5_0, QFormat::q5_1, QFormat::q8_0,
                             QFormat::q2_k, QFormat::q3_k, QFormat::q4_k, QFormat::q5_k, QFormat::q6_k};

io::GgmlType ggml_type(QFormat f) {
    switch (f) {
        case QFormat::q4_0: return io::GgmlType::q4_0;
        case QFormat::q4_1: return io::GgmlType::q4_1;
        case QFormat::q5_0: return io::GgmlType::q5_0;
        case QFormat::q5_1: return io::GgmlType::q5_1;
        case QFormat::q8_0: return io::GgmlType::q8_0;
        case QFormat::q2_k: return io::GgmlType::q2_k;
        case QFormat::q3_k: return io::GgmlType::q3_k;
        case QFormat::q4_k: return io::GgmlType::q4_k;
        case QFormat::q5_k: return io::GgmlType::q5_k;
        case QFormat::q6_k: return io::GgmlType::q6_k;
        default: break;
    }
    return io::GgmlType::f32;
}

/// Offsets of the f16 fields of a block (set to finite values; every other byte is random).
std::vector<std::size_t> half_fields(QFormat f) {
    switch (f) {
        case QFormat::q4_0:
        case QFormat::q5_0:
        case QFormat::q8_0: return {0};
        case QFormat::q4_1:
        case QFormat::q5_1:
        case QFormat::q4_k:
        case QFormat::q5_k: return {0, 2};
        case QFormat::q2_k: return {80, 82};
        case QFormat::q3_k: return {108};
        case QFormat::q6_k: return {208};
        default: return {};
    }
}

/// Random blocks of format f for a [rows, cols] matrix, with finite f16 scales.
std::vector<std::byte> random_blocks(QFormat f, std::size_t rows, std::size_t cols, Rng& rng) {
    const FormatInfo fi = format_info(f);
    const std::size_t blocks = rows * cols / fi.block;
    std::vector<std::byte> b(blocks * fi.bytes);
    for (auto& v : b) v = static_cast<std::byte>(rng.next_u64() & 0xFF);
    for (std::size_t k = 0; k < blocks; ++k)
        for (std::size_t off : half_fields(f)) {
            const auto h = float_to_f16_bits(static_cast<float>(0.01 + 0.05 * rng.uniform()) * rng.sign());
            std::memcpy(b.data() + k * fi.bytes + off, &h, 2);
        }
    return b;
}

/// x rounded as the kernels round it: per block of `block` columns, d = amax/127, q = round(x·127/amax).
std::vector<double> rounded(const std::vector<float>& x, std::size_t block) {
    std::vector<double> r(x.size());
    for (std::size_t b = 0; b < x.size(); b += block) {
        float amax = 0.0f;
        for (std::size_t i = b; i < b + block; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        for (std::size_t i = b; i < b + block; ++i) r[i] = static_cast<double>(d) * std::nearbyint(x[i] * id);
    }
    return r;
}

std::vector<float> random_x(std::size_t n, Rng& rng) {
    std::vector<float> x(n);
    for (auto& v : x) v = static_cast<float>(rng.normal());
    return x;
}

struct Case {
    std::size_t rows, cols, tokens;
};

/// y for every ISA; each equals the portable copy bit for bit, and the portable copy equals
/// Σ w·x̃ (w from the reference dequantizer, x̃ the rounded activation) within float rounding.
void check(const QWeights& w, std::size_t rows, const std::vector<float>& x, std::size_t n,
           const std::vector<float>& wref, std::size_t act_block, const std::string& what) {
    const std::size_t in = w.in;
    std::vector<float> bias(rows);
    for (std::size_t r = 0; r < rows; ++r) bias[r] = 0.25f * static_cast<float>(r % 7);
    std::vector<float> want(n * rows), scale(n * rows);
    for (std::size_t t = 0; t < n; ++t) {
        const std::vector<float> xt(x.begin() + static_cast<std::ptrdiff_t>(t * in),
                                    x.begin() + static_cast<std::ptrdiff_t>((t + 1) * in));
        const auto xr = rounded(xt, act_block);
        for (std::size_t r = 0; r < rows; ++r) {
            double s = 0.0, a = 0.0;
            for (std::size_t i = 0; i < in; ++i) {
                s += static_cast<double>(wref[r * in + i]) * xr[i];
                a += std::fabs(static_cast<double>(wref[r * in + i]) * xr[i]);
            }
            want[t * rows + r] = static_cast<float>(s + bias[r]);
            scale[t * rows + r] = static_cast<float>(a + 1.0);
        }
    }
    std::vector<float> ref;
    ThreadPool pool(2);
    for (const Isa isa : supported_isas()) {
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            std::vector<float> y(n * rows, -1.0f);
            Workspace ws;
            const QJob job{w, rows, y.data(), rows, bias.data()};
            run({&job, 1}, x.data(), n, in, p, isa, ws);
            if (isa == Isa::portable && !p) {
                for (std::size_t i = 0; i < y.size(); ++i)
                    ASSERT_NEAR(y[i], want[i], 2e-6 * scale[i]) << what << " portable, output " << i;
                ref = y;
            } else {
                for (std::size_t i = 0; i < y.size(); ++i)
                    ASSERT_EQ(std::memcmp(&y[i], &ref[i], 4), 0)
                        << what << " " << isa_name(isa) << (p ? " pool" : "") << ", output " << i << ": " << y[i]
                        << " vs portable " << ref[i];
            }
        }
    }
}

TEST(QMatmul, GgufBlockFormatsEqualTheReferenceDequantizerTimesTheRoundedActivation) {
    Rng rng(7);
    for (const QFormat f : kGgml) {
        const FormatInfo fi = format_info(f);
        // n >= kTokenKernelMin runs the token-vector kernels (8-bit formats excepted): 16 tokens are
        // two full groups of eight, 21 leave a partial group and an odd group out.
        for (const Case c : {Case{5, fi.block * 2, 1}, Case{37, fi.block * 3, 6}, Case{16, 512, 4},
                             Case{37, 512, 16}, Case{19, fi.block * 3, 21}, Case{4, 256, 33}}) {
            const auto blocks = random_blocks(f, c.rows, c.cols, rng);
            std::vector<float> wref(c.rows * c.cols);
            io::dequantize(ggml_type(f), blocks, wref);
            QWeights w{f, blocks.data(), c.cols / fi.block * fi.bytes, c.cols};
            ASSERT_TRUE(supports(w)) << fi.name;
            const auto x = random_x(c.tokens * c.cols, rng);
            check(w, c.rows, x, c.tokens, wref, act_block(f, c.tokens),
                  std::string(fi.name) + " " + std::to_string(c.rows) + "x" + std::to_string(c.cols) + " n=" +
                      std::to_string(c.tokens));
        }
    }
}

TEST(QMatmul, MlxAffineEqualsDequantizeTimesTheRoundedActivation) {
    Rng rng(11);
    for (int bits : {2, 4, 8})
        for (std::size_t group : {32u, 64u, 128u}) {
          for (const std::size_t n : {std::size_t{5}, std::size_t{24}}) {
            const std::size_t rows = 19, cols = 256;
            std::vector<float> wf(rows * cols);
            for (auto& v : wf) v = static_cast<float>(rng.normal() * 0.05);
            const auto q = mlx::quantize(wf, {rows, cols}, group, bits);
            const auto wref = mlx::dequantize(q);
            const auto fmt = format_of_mlx(bits, group);
            ASSERT_TRUE(fmt);
            QWeights w{*fmt, reinterpret_cast<const std::byte*>(q.words.data()), q.words_per_row() * 4, cols,
                       q.scales.data(), q.biases.data(), group};
            ASSERT_TRUE(supports(w));
            const auto x = random_x(n * cols, rng);
            check(w, rows, x, n, wref, 32,
                  "mlx " + std::to_string(bits) + "-bit g" + std::to_string(group) + " n=" + std::to_string(n));
          }
        }
}

TEST(QMatmul, FusedJobsShareOneQuantizationAndMatchSeparateCalls) {
  for (const std::size_t n : {std::size_t{3}, std::size_t{18}}) {
    Rng rng(3);
    const std::size_t in = 512;
    const auto x = random_x(n * in, rng);
    const auto b1 = random_blocks(QFormat::q4_k, 40, in, rng);
    const auto b2 = random_blocks(QFormat::q5_0, 24, in, rng);
    const QWeights w1{QFormat::q4_k, b1.data(), in / 256 * 144, in}, w2{QFormat::q5_0, b2.data(), in / 32 * 22, in};
    std::vector<float> y1(n * 40), y2(n * 24), s1(n * 40), s2(n * 24);
    ThreadPool pool(2);
    Workspace ws;
    const QJob jobs[] = {{w1, 40, y1.data(), 40, nullptr}, {w2, 24, y2.data(), 24, nullptr}};
    run(jobs, x.data(), n, in, &pool, isa_for(arch::best_arch()), ws);
    const QJob j1{w1, 40, s1.data(), 40, nullptr}, j2{w2, 24, s2.data(), 24, nullptr};
    run({&j1, 1}, x.data(), n, in, nullptr, isa_for(arch::best_arch()), ws);
    run({&j2, 1}, x.data(), n, in, nullptr, isa_for(arch::best_arch()), ws);
    EXPECT_EQ(y1, s1);
    EXPECT_EQ(y2, s2);
  }
}

TEST(QMatmul, TokenKernelsTakeEveryFormatBut8Bit) {
    EXPECT_TRUE(uses_token_kernels(QFormat::q4_k, kTokenKernelMin));
    EXPECT_FALSE(uses_token_kernels(QFormat::q4_k, kTokenKernelMin - 1));
    EXPECT_FALSE(uses_token_kernels(QFormat::q8_0, 64));
    EXPECT_FALSE(uses_token_kernels(QFormat::mlx8, 64));
    EXPECT_EQ(act_block(QFormat::q6_k, 1), 256u);
    EXPECT_EQ(act_block(QFormat::q6_k, 64), 32u);
}

TEST(QMatmul, SupportsNeedsWholeBlocksAndMatchingRowBytes) {
    EXPECT_FALSE(supports(QWeights{QFormat::q4_k, nullptr, 144, 128}));
    EXPECT_TRUE(supports(QWeights{QFormat::q4_k, nullptr, 144, 256}));
    EXPECT_FALSE(supports(QWeights{QFormat::q4_k, nullptr, 143, 256}));
    EXPECT_FALSE(supports(QWeights{QFormat::mlx4, nullptr, 32, 64, nullptr, nullptr, 64}));
    EXPECT_FALSE(format_of_mlx(3, 64));
    EXPECT_FALSE(format_of_mlx(4, 16));
    EXPECT_EQ(format_of_ggml(12), QFormat::q4_k);
    EXPECT_FALSE(format_of_ggml(0));
}

}  // namespace
}  // namespace optiq::backend::qmatmul

// Every vector matmul kernel (backend/simd/matmul_avx2.hpp, matmul_avx512.hpp) against the scalar
// reference (matmul_scalar.hpp), through model::Linear::matmul(..., arch), for every architecture
// this CPU runs (looped explicitly, not only the best), every weight format, affine widths 1..8,
// odd shapes (in not a multiple of the vector width, out not a multiple of the row block, n = 1..9
// so token blocks of 4 leave remainders) and group sizes down to 8 (narrower tags take over).
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <cstdint>
#include <string>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/matmul.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/model/weights.hpp"
#include "optiq/pack/mlx_stream.hpp"

namespace optiq::model::test {
namespace {

using backend::arch::Arch;

std::vector<float> normals(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
    Rng r(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(r.normal()) * scale;
    return v;
}

/// A random affine matrix built directly (random codes packed with MlxStream, random scales and
/// biases), so any bits 1..8 and any group size can be tested, not only mx.quantize's.
mlx::QuantizedMatrix random_affine(std::size_t out, std::size_t in, int bits, std::size_t group, std::uint64_t seed) {
    Rng r(seed);
    mlx::QuantizedMatrix q;
    q.shape = {out, in};
    q.bits = bits;
    q.group_size = group;
    q.dtype = SideType::f32;
    const std::size_t wpr = q.words_per_row(), gpr = q.groups_per_row();
    q.words.assign(out * wpr, 0u);
    std::vector<std::uint8_t> codes(in);
    for (std::size_t row = 0; row < out; ++row) {
        for (auto& c : codes) c = static_cast<std::uint8_t>(r.next_u64() >> (64 - bits));
        MlxStream<>(bits).pack(codes, {q.words.data() + row * wpr, wpr});
    }
    q.scales.resize(out * gpr);
    q.biases.resize(out * gpr);
    for (std::size_t i = 0; i < out * gpr; ++i) {
        q.scales[i] = static_cast<float>(0.01 + 0.1 * r.uniform());
        q.biases[i] = static_cast<float>(r.normal() * 0.5);
    }
    return q;
}

/// Per output, the sum of the magnitudes the matmul adds up: Σ|w x| for dense weights, and for
/// affine ones Σ_groups (|s| Σ|q x| + |b| Σ|x|) (the MLX form adds those terms, which may cancel).
std::vector<double> magnitudes(const Linear& l, const std::vector<float>& x, std::size_t n) {
    const std::size_t out = l.out_features(), in = l.in_features();
    std::vector<double> m(n * out, 0.0);
    if (const auto* q = l.quantized()) {
        const std::size_t g = q->group_size, gpr = q->groups_per_row(), wpr = q->words_per_row();
        std::vector<std::uint8_t> codes(in);
        for (std::size_t r = 0; r < out; ++r) {
            MlxStream<>(q->bits).unpack({q->words.data() + r * wpr, wpr}, codes);
            for (std::size_t t = 0; t < n; ++t)
                for (std::size_t c = 0; c < in; ++c) {
                    const std::size_t k = c / g;
                    const double xv = std::abs(static_cast<double>(x[t * in + c]));
                    m[t * out + r] += std::abs(q->scales[r * gpr + k]) * codes[c] * xv + std::abs(q->biases[r * gpr + k]) * xv;
                }
        }
    } else {
        const std::vector<float> w = l.dequantize();
        for (std::size_t t = 0; t < n; ++t)
            for (std::size_t r = 0; r < out; ++r)
                for (std::size_t c = 0; c < in; ++c)
                    m[t * out + r] += std::abs(static_cast<double>(w[r * in + c]) * x[t * in + c]);
    }
    return m;
}

/// For every supported arch and n = 1..9: matmul equals the scalar reference to float rounding of
/// a different summation order, and neither splitting the rows over a pool nor the other tokens of
/// the batch change any result.
void expect_all_archs_match_reference(const Linear& l, const std::string& what) {
    const std::size_t out = l.out_features(), in = l.in_features();
    ThreadPool pool(2);
    // 4 ulp-sized steps per summed term is far looser than a reordered float sum needs, and far
    // tighter than a wrong code, column order or group would give (errors of order 1).
    const double tol = 4.0 * static_cast<double>(in + 16) * 0x1.0p-24;
    for (std::size_t n = 1; n <= 9; ++n) {
        const std::vector<float> x = normals(n * in, 1000 + n);
        const std::vector<double> mag = magnitudes(l, x, n);
        std::vector<float> ref(n * out);
        l.matmul(x, n, ref, nullptr, Arch::scalar);
        for (const Arch a : backend::matmul::supported_archs()) {
            std::vector<float> y(n * out, -1.0f), yp(n * out, -2.0f);
            l.matmul(x, n, y, nullptr, a);
            l.matmul(x, n, yp, &pool, a);
            double worst = 0.0;
            for (std::size_t i = 0; i < y.size(); ++i)
                worst = std::max(worst, std::abs(static_cast<double>(y[i]) - ref[i]) / (mag[i] + 1e-30));
            EXPECT_LE(worst, tol) << what << " arch " << backend::arch::arch_name(a) << " n " << n;
            EXPECT_EQ(y, yp) << what << " arch " << backend::arch::arch_name(a) << " n " << n << ": pool split";
            if (a == Arch::scalar) {
                EXPECT_EQ(y, ref) << what;
            }
            // Batch invariance: each token alone gives bit for bit its row of the batch (chunked
            // prefill, decode and forward_batch must agree whatever tokens share a matmul).
            for (std::size_t t = 0; t < n; ++t) {
                std::vector<float> one(out);
                l.matmul(std::span(x).subspan(t * in, in), 1, one, nullptr, a);
                EXPECT_EQ(one, std::vector<float>(y.begin() + static_cast<std::ptrdiff_t>(t * out),
                                                  y.begin() + static_cast<std::ptrdiff_t>((t + 1) * out)))
                    << what << " arch " << backend::arch::arch_name(a) << " token " << t << " of " << n;
            }
        }
    }
}

TEST(LinearMatmul, SupportedArchsStartWithScalarAndEndWithBest) {
    const auto a = backend::matmul::supported_archs();
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(a.front(), Arch::scalar);
    EXPECT_EQ(a.back(), backend::arch::best_arch());
}

TEST(LinearMatmul, F32EveryArchMatchesReferenceOnOddShapes) {
    for (const std::size_t in : {1u, 7u, 8u, 15u, 16u, 17u, 31u, 33u, 64u, 100u, 173u})
        for (const std::size_t out : {1u, 5u, 37u, 70u}) {
            Linear l = Linear::f32(normals(out * in, in * 131 + out), out, in, "f32");
            if (out % 5 == 0) l.set_bias(normals(out, 7));
            expect_all_archs_match_reference(l, "f32 [" + std::to_string(out) + ", " + std::to_string(in) + "]");
        }
}

TEST(LinearMatmul, HalfFormatsEveryArchMatchReferenceOnOddShapes) {
    for (const SideType type : {SideType::f16, SideType::bf16})
        for (const std::size_t in : {1u, 7u, 9u, 16u, 23u, 40u, 100u})
            for (const std::size_t out : {3u, 37u}) {
                std::vector<float> w = normals(out * in, in * 17 + out);
                if (type == SideType::f16) w[0] = 3.0e-6f;  // an f16 subnormal: vcvtph2ps widens it exactly
                std::vector<std::uint16_t> bits(w.size());
                for (std::size_t i = 0; i < w.size(); ++i)
                    bits[i] = type == SideType::f16 ? float_to_f16_bits(w[i]) : float_to_bf16_bits(w[i]);
                Linear l = Linear::half(bits, type, out, in, "half");
                l.set_bias(normals(out, 9));
                expect_all_archs_match_reference(l, std::string(type == SideType::f16 ? "f16" : "bf16") + " [" +
                                                        std::to_string(out) + ", " + std::to_string(in) + "]");
            }
}

TEST(LinearMatmul, AffineEveryArchEveryWidthMatchesReference) {
    // MLX widths and 7 (the packer's rule extends to it); groups of 16..128 hit every kernel path
    // (8-bit, 4-bit nibble-split, the any-width vpshufb path); in up to 576 covers SmolLM2's rows.
    for (const int bits : {1, 2, 3, 4, 5, 6, 7, 8})
        for (const std::size_t group : {std::size_t{16}, std::size_t{32}, std::size_t{64}, std::size_t{128}})
            for (const std::size_t in : {group, 3 * group, std::size_t{576}}) {
                if (in % group != 0 || in * static_cast<std::size_t>(bits) % 32 != 0) continue;
                for (const std::size_t out : {1u, 5u, 37u}) {
                    Linear l = Linear::mlx_affine(random_affine(out, in, bits, group, bits * 1000 + in + out), "aff");
                    if (out == 5) l.set_bias(normals(out, 11));
                    expect_all_archs_match_reference(l, "affine bits " + std::to_string(bits) + " group " +
                                                            std::to_string(group) + " [" + std::to_string(out) + ", " +
                                                            std::to_string(in) + "]");
                }
            }
}

TEST(LinearMatmul, AffineGroupsNarrowerThanAVectorFallBackCorrectly) {
    // group 8: AVX-512 (16 lanes) hands over to AVX2, which runs it; the x order must follow.
    for (const int bits : {4, 8}) {
        const Linear l = Linear::mlx_affine(random_affine(19, 64, bits, 8, 77 + bits), "g8");
        expect_all_archs_match_reference(l, "affine group 8 bits " + std::to_string(bits));
    }
}

TEST(LinearMatmul, AffineRowsShorterThanALoadReadOnlyTheirOwnBytes) {
    // 3-bit rows of 32 codes are 12 bytes: the any-width kernels read 8 or 16 bytes at a time, so
    // the last rows run from a padded copy. A whole matrix this small checks every such row.
    for (const int bits : {1, 3, 5, 6}) {
        auto q = random_affine(4, 32, bits, 32, 5 + bits);
        q.words.shrink_to_fit();
        const Linear l = Linear::mlx_affine(std::move(q), "short");
        expect_all_archs_match_reference(l, "short rows bits " + std::to_string(bits));
    }
}

TEST(LinearMatmul, AffineFromMlxQuantizeMatchesDequantizedWeights) {
    // Independent of the reference kernel: y from the codes equals y from mx.dequantize's weights
    // (double sum) on every arch, for mx.quantize output of every MLX width.
    const std::size_t out = 40, in = 192, n = 5;
    const auto w = normals(out * in, 21, 0.05f);
    const auto x = normals(n * in, 22);
    for (const int bits : {2, 3, 4, 5, 6, 8}) {
        const Linear l = Linear::mlx_affine(mlx::quantize(w, {out, in}, 64, bits), "q");
        const auto deq = l.dequantize();
        const auto mag = magnitudes(l, x, n);
        for (const Arch a : backend::matmul::supported_archs()) {
            std::vector<float> y(n * out);
            l.matmul(x, n, y, nullptr, a);
            for (std::size_t t = 0; t < n; ++t)
                for (std::size_t r = 0; r < out; ++r) {
                    double want = 0.0;
                    for (std::size_t c = 0; c < in; ++c) want += static_cast<double>(deq[r * in + c]) * x[t * in + c];
                    EXPECT_NEAR(y[t * out + r], want, 1e-5 * mag[t * out + r])
                        << "bits " << bits << " arch " << backend::arch::arch_name(a);
                }
        }
    }
}

}  // namespace
}  // namespace optiq::model::test

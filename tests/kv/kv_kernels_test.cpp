// backend/simd/kv_attention.hpp: every architecture's run kernels (dot_run, axpy_run,
// softmax_row) against the scalar reference kernels on random records, for every coding and code
// width, 1..4 query states, strided records and scores, and d that is and is not a multiple of
// the vector width (the kernels then fall back to the scalar loops) or of a split decoder's
// block (2- and 4-bit codes: 48 is one AVX2 block multiple but no AVX-512 one). Each tag this CPU supports is
// called explicitly, not only the best one.
#include "optiq/backend/simd/kv_attention.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kv_test_util.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/rng.hpp"

namespace optiq::backend::kv {
namespace {

/// f(tag, name) for every vector tag this CPU runs.
template <class F>
void for_each_vector_arch(F&& f) {
#if defined(OPTIQ_SIMD_X86)
    const auto best = arch::best_arch();
    if (best == arch::Arch::avx2 || best == arch::Arch::avx512) f(arch::avx2{}, "avx2");
    if (best == arch::Arch::avx512) f(arch::avx512{}, "avx512");
#elif defined(OPTIQ_SIMD_NEON)
    f(arch::neon{}, "neon");
#else
    (void)f;
#endif
}

/// Random records of `count` tokens, `stride` words each, with finite 16/32-bit floats where the
/// coding reads floats, and side floats {‖x‖, scale, bias, ...}.
struct Fixture {
    std::vector<std::uint32_t> words;
    std::vector<float> side, table, q, w;
    std::size_t count, stride, side_stride = 6;

    Fixture(const VectorCoding& c, std::size_t n_tokens, std::uint64_t seed) : count(n_tokens) {
        Rng rng(seed);
        // Room for every affine group's {scale, bias} after side_offset (d = 128 in groups of 32: 9 floats).
        if (c.coding == Coding::affine && c.group > 0)
            side_stride = std::max(side_stride, c.side_offset + 2 * ((c.dim + c.group - 1) / c.group) + 1);
        stride = c.word_offset + (c.coding == Coding::f32 ? c.dim : (c.dim * 16 + 31) / 32) + 1;
        words.resize(count * stride);
        for (std::size_t j = 0; j < count; ++j)
            for (std::size_t i = 0; i < stride; ++i) {
                auto& x = words[j * stride + i];
                const float a = static_cast<float>(rng.normal()), b = static_cast<float>(rng.normal());
                switch (c.coding) {
                    case Coding::f32: x = std::bit_cast<std::uint32_t>(a); break;
                    case Coding::f16:
                        x = float_to_f16_bits(a) | (static_cast<std::uint32_t>(float_to_f16_bits(b)) << 16);
                        break;
                    case Coding::bf16:
                        x = float_to_bf16_bits(a) | (static_cast<std::uint32_t>(float_to_bf16_bits(b)) << 16);
                        break;
                    default: x = static_cast<std::uint32_t>(rng.next_u64()); break;
                }
            }
        side.resize(count * side_stride);
        for (auto& x : side) x = static_cast<float>(rng.normal());
        table.resize(256);
        for (auto& x : table) x = static_cast<float>(rng.normal());
        q.resize(4 * c.dim);
        for (auto& x : q) x = static_cast<float>(rng.normal());
        w.resize(4 * count);
        for (auto& x : w) x = static_cast<float>(rng.uniform());
    }
    [[nodiscard]] Records records() const { return {words.data(), stride, side.data(), side_stride, count}; }
};

std::vector<VectorCoding> codings(std::size_t d) {
    std::vector<VectorCoding> v;
    for (int b = 1; b <= 8; ++b) {
        v.push_back({Coding::codebook, b, d, 1, 0, 0, nullptr});
        v.push_back({Coding::affine, b, d, 1, d % 32 == 0 ? 32 : d, 1, nullptr});
        v.push_back({Coding::integer, b, d, 0, 0, 0, nullptr});
    }
    for (const Coding c : {Coding::f16, Coding::bf16, Coding::f32, Coding::signs}) v.push_back({c, 0, d, 1, 0, 0, nullptr});
    return v;
}

std::string label(const VectorCoding& c) {
    return "coding " + std::to_string(static_cast<int>(c.coding)) + " bits " + std::to_string(c.bits) + " d " +
           std::to_string(c.dim);
}

TEST(KVKernels, DotAndAxpyMatchTheScalarKernels) {
    int checked = 0;
    for (const std::size_t d : {std::size_t{16}, std::size_t{48}, std::size_t{64}, std::size_t{128}, std::size_t{40}}) {
        for (VectorCoding c : codings(d)) {
            Fixture f(c, 37, 1000 + d + static_cast<std::size_t>(c.bits) * 10 + static_cast<std::size_t>(c.coding));
            if (c.coding == Coding::codebook) c.table = f.table.data();
            const Records r = f.records();
            const float* q[4] = {f.q.data(), f.q.data() + d, f.q.data() + 2 * d, f.q.data() + 3 * d};
            const TokenScale ts{f.side.data(), f.side.data() + 1, f.side_stride, 0.75f};
            for (std::size_t n = 1; n <= max_states; ++n) {
                const std::size_t os = f.count + 3;  // strided score rows
                std::vector<float> ref(n * os, 0.5f), acc_ref(n * (d + 5), 0.25f);
                dot_run(arch::scalar{}, c, r, ts, q, n, ref.data(), os, false);
                axpy_run(arch::scalar{}, c, r, ts, f.w.data(), f.count, n, acc_ref.data(), d + 5);
                std::vector<float> ref_add = ref;
                dot_run(arch::scalar{}, c, r, {}, q, n, ref_add.data(), os, true);
                for_each_vector_arch([&](auto tag, const char* name) {
                    SCOPED_TRACE(label(c) + " " + name + " states " + std::to_string(n));
                    std::vector<float> out(n * os, 0.5f), acc(n * (d + 5), 0.25f);
                    dot_run(tag, c, r, ts, q, n, out.data(), os, false);
                    axpy_run(tag, c, r, ts, f.w.data(), f.count, n, acc.data(), d + 5);
                    const float m = std::max(1.0f, optiq::kv::test::max_abs(ref));
                    EXPECT_LT(optiq::kv::test::max_abs_diff(out, ref), 2e-5f * m);
                    const float ma = std::max(1.0f, optiq::kv::test::max_abs(acc_ref));
                    EXPECT_LT(optiq::kv::test::max_abs_diff(acc, acc_ref), 2e-5f * ma);
                    // Padding between rows/accumulators is left alone.
                    for (std::size_t k = 0; k < n; ++k) {
                        for (std::size_t j = f.count; j < os; ++j) EXPECT_EQ(out[k * os + j], 0.5f);
                        for (std::size_t i = d; i < d + 5; ++i) EXPECT_EQ(acc[k * (d + 5) + i], 0.25f);
                    }
                    dot_run(tag, c, r, {}, q, n, out.data(), os, true);
                    EXPECT_LT(optiq::kv::test::max_abs_diff(out, ref_add),
                              2e-5f * std::max(1.0f, optiq::kv::test::max_abs(ref_add)));
                    ++checked;
                });
            }
        }
    }
    std::printf("%d (coding, arch, states) combinations checked\n", checked);
}

// The scalar kernels themselves against plain decoding: codebook codes read from MLX's stream.
TEST(KVKernels, ScalarKernelsDecodeTheStream) {
    const std::size_t d = 32;
    std::vector<float> table(16);
    for (std::size_t i = 0; i < 16; ++i) table[i] = static_cast<float>(i);
    // Codes 0, 1, ..., 15, 0, 1, ... at 4 bits: word k holds codes 8k..8k+7, LSB first.
    std::vector<std::uint32_t> words(4);
    for (std::size_t i = 0; i < d; ++i) words[i / 8] |= static_cast<std::uint32_t>(i % 16) << (4 * (i % 8));
    const VectorCoding c{Coding::codebook, 4, d, 0, 0, 0, table.data()};
    std::vector<float> ones(d, 1.0f), out(1);
    const float* q[1] = {ones.data()};
    const Records r{words.data(), 4, nullptr, 0, 1};
    dot_run(arch::scalar{}, c, r, {}, q, 1, out.data(), 1, false);
    EXPECT_EQ(out[0], 2.0f * (15.0f * 16.0f / 2.0f));
    for_each_vector_arch([&](auto tag, const char*) {
        std::vector<float> o(1);
        dot_run(tag, c, r, {}, q, 1, o.data(), 1, false);
        EXPECT_EQ(o[0], out[0]);
    });
}

// Int8 attention (kv_int8.hpp): the VNNI kernels compute the int8 rule (the same integers and
// final float operations as its scalar definition), for d with and without a half chunk, runs
// over several weight tiles and a tile with a negative weight (accumulated exactly), records at a
// word offset; the rule stays within a few percent of exact arithmetic; and tags without an int8
// kernel ignore the flag. On AArch64 built with the dot-product extension (the optiq_kv_dotprod_tests
// program of cross builds), the NEON sdot key scores follow the rule too.
TEST(KVKernels, Int8KernelsComputeTheInt8Rule) {
    int checked = 0;
    for (const std::size_t d : {std::size_t{64}, std::size_t{128}, std::size_t{192}, std::size_t{512}}) {
        for (const std::size_t count : {std::size_t{3}, std::size_t{37}, std::size_t{130}}) {
            VectorCoding c{Coding::codebook, 4, d, 1, 0, 0, nullptr};
            Fixture f(c, count, 7000 + d + count);
            c.table = f.table.data();
            for (std::size_t j = 0; j < count; ++j) f.side[j * f.side_stride] = std::fabs(f.side[j * f.side_stride]);
            if (count == 130) f.w[70] = -0.5f;  // state 0, second tile: exact
            const Records r = f.records();
            const float* q[4] = {f.q.data(), f.q.data() + d, f.q.data() + 2 * d, f.q.data() + 3 * d};
            const TokenScale ts{f.side.data(), nullptr, f.side_stride, 1.0f};
            VectorCoding ci = c;
            ci.int8 = true;
            ASSERT_TRUE(int8_coding(ci));
            for (std::size_t n = 1; n <= max_states; ++n) {
                SCOPED_TRACE("d " + std::to_string(d) + " count " + std::to_string(count) + " states " +
                             std::to_string(n));
                std::vector<float> exact(n * count), rule(n * count), acc_exact(n * d, 0.25f), acc_rule(n * d, 0.25f);
                dot_run(arch::scalar{}, c, r, ts, q, n, exact.data(), count, false);
                dot_run_int8_reference(ci, r, ts, q, n, rule.data(), count, false);
                axpy_run(arch::scalar{}, c, r, ts, f.w.data(), count, n, acc_exact.data(), d);
                axpy_run_int8_reference(ci, r, ts, f.w.data(), count, n, acc_rule.data(), d);
                const float ms = optiq::kv::test::max_abs(exact), ma = optiq::kv::test::max_abs(acc_exact);
                EXPECT_GT(optiq::kv::test::max_abs_diff(rule, exact), 0.0f);  // it is not the exact path
                if (count >= 37) {  // enough tokens for the largest score to be a fair scale
                    EXPECT_LT(optiq::kv::test::max_abs_diff(rule, exact), 0.03f * ms);
                    EXPECT_LT(optiq::kv::test::max_abs_diff(acc_rule, acc_exact), 0.03f * ma);
                }
                // The scalar and AVX2 tags ignore the flag.
                std::vector<float> plain(n * count);
                dot_run(arch::scalar{}, ci, r, ts, q, n, plain.data(), count, false);
                EXPECT_EQ(plain, exact);
#if defined(OPTIQ_SIMD_X86)
                if (arch::best_arch() != arch::Arch::avx512 || !arch::has_avx512_vnni()) continue;
                std::vector<float> out(n * count, 0.5f), acc(n * d, 0.25f);
                dot_run(arch::avx512{}, ci, r, ts, q, n, out.data(), count, false);
                axpy_run(arch::avx512{}, ci, r, ts, f.w.data(), count, n, acc.data(), d);
                EXPECT_LT(optiq::kv::test::max_abs_diff(out, rule), 1e-6f * ms);
                EXPECT_LT(optiq::kv::test::max_abs_diff(acc, acc_rule), 1e-6f * ma);
                std::vector<float> added = out;
                dot_run(arch::avx512{}, ci, r, ts, q, n, added.data(), count, true);
                for (std::size_t i = 0; i < added.size(); ++i) EXPECT_FLOAT_EQ(added[i], 2.0f * out[i]);
                ++checked;
#endif
#if defined(OPTIQ_NEON_INT8_KEYS)
                // AArch64 with FEAT_DotProd: sdot key scores follow the rule; values stay exact.
                std::vector<float> nout(n * count, 0.5f), nacc(n * d, 0.25f), nacc_exact(n * d, 0.25f);
                dot_run(arch::neon{}, ci, r, ts, q, n, nout.data(), count, false);
                EXPECT_LT(optiq::kv::test::max_abs_diff(nout, rule), 1e-6f * ms);
                axpy_run(arch::neon{}, ci, r, ts, f.w.data(), count, n, nacc.data(), d);
                axpy_run(arch::neon{}, c, r, ts, f.w.data(), count, n, nacc_exact.data(), d);
                EXPECT_EQ(nacc, nacc_exact);
                ++checked;
#endif
            }
        }
    }
    if (checked == 0) std::printf("no int8 kernels on this CPU or build: the int8 rule was checked, its kernels were not\n");
}

TEST(KVKernels, SoftmaxMatchesTheReferenceOrder) {
    Rng rng(5);
    std::vector<float> row(1000);
    for (auto& x : row) x = static_cast<float>(rng.normal()) * 6.0f;
    row[17] = 80.0f;  // terms far below the maximum underflow to 0 in both
    for (const std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{16}, std::size_t{33}, std::size_t{1000}}) {
        std::vector<float> ref(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(n));
        softmax_row(arch::scalar{}, ref.data(), n, 0.3f);
        float sum = 0.0f;
        for (const float p : ref) sum += p;
        EXPECT_NEAR(sum, 1.0f, 1e-5f);
        for_each_vector_arch([&](auto tag, const char* name) {
            std::vector<float> out(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(n));
            softmax_row(tag, out.data(), n, 0.3f);
            for (std::size_t j = 0; j < n; ++j)
                EXPECT_NEAR(out[j], ref[j], 2e-6f * std::max(ref[j], 1e-30f) + 1e-30f) << name << " n " << n << " j " << j;
        });
    }
}

}  // namespace
}  // namespace optiq::backend::kv

#pragma once
// y[n][out] = x[n][in] · Wᵀ (+ b) for weights in their stored format (f32, f16, bf16, MLX affine),
// on one architecture chosen once per call (arch.hpp's tag chain: the widest kernel this CPU runs,
// capped by OPTIQ_SIMD_MAX, or an explicit arch::Arch for tests and benchmarks):
//
//   backend::matmul::run(F32Weights{w, in}, out, x, n, y, bias, &pool);               // best arch
//   backend::matmul::run(F32Weights{w, in}, out, x, n, y, bias, &pool, Arch::scalar);  // reference
//
// The output rows are split over the pool (in blocks large enough to pay for the hand-off); within
// a block, rows go in groups of kRowBlock and each block meets the tokens max_tokens(tag) at a time,
// so a block's weights stay in L1/L2 while every token passes over them (prefill), and decode
// (n = 1) streams each weight byte once. For affine weights x is prepared once per call: Σx per
// group (the bias term) and, where the kernel unpacks 4-bit codes even-then-odd, a permuted copy.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/matmul_avx2.hpp"
#include "optiq/backend/simd/matmul_avx512.hpp"
#include "optiq/backend/simd/matmul_scalar.hpp"
#include "optiq/backend/simd/matmul_types.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/io/ggml_quants.hpp"

namespace optiq::backend::matmul {

/// Rows a kernel call takes before the next token block (their weights stay cached meanwhile).
inline constexpr std::size_t kRowBlock = 32;
/// Multiply-adds a block of rows handed to a thread holds at least (~5 us of vector work): waking
/// a pool thread costs a few microseconds, which a matmul of one block does not win back, so it
/// runs on the calling thread alone.
inline constexpr std::size_t kMinChunkWork = std::size_t{1} << 17;

/// The architectures this process can run, scalar (the reference) first, best_arch() last.
[[nodiscard]] inline std::vector<arch::Arch> supported_archs() {
    std::vector<arch::Arch> a{arch::Arch::scalar};
    const arch::Arch best = arch::best_arch();
    if (best == arch::Arch::avx2 || best == arch::Arch::avx512) a.push_back(arch::Arch::avx2);
    if (best == arch::Arch::avx512) a.push_back(arch::Arch::avx512);
    if (best == arch::Arch::neon) a.push_back(arch::Arch::neon);
    return a;
}

namespace detail {

/// Σ x over each group of each token [n][in / group], in column order.
[[nodiscard]] inline std::vector<float> group_sums(const float* x, std::size_t n, std::size_t in, std::size_t group) {
    const std::size_t gpr = in / group;
    std::vector<float> s(n * gpr);
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t k = 0; k < gpr; ++k) {
            float a = 0.0f;
            for (std::size_t i = 0; i < group; ++i) a += x[t * in + k * group + i];
            s[t * gpr + k] = a;
        }
    return s;
}

/// x with each chunk of `chunk` columns reordered to its even columns, then its odd ones.
[[nodiscard]] inline std::vector<float> nibble_order(const float* x, std::size_t n, std::size_t in, std::size_t chunk) {
    std::vector<float> p(n * in);
    const std::size_t half = chunk / 2;
    for (std::size_t t = 0; t < n; ++t)
        for (std::size_t c = 0; c < in; c += chunk) {
            const float* src = x + t * in + c;
            float* dst = p.data() + t * in + c;
            for (std::size_t j = 0; j < half; ++j) {
                dst[j] = src[2 * j];
                dst[half + j] = src[2 * j + 1];
            }
        }
    return p;
}

[[nodiscard]] inline std::size_t in_features(const F32Weights& w) noexcept { return w.in; }
[[nodiscard]] inline std::size_t in_features(const HalfWeights& w) noexcept { return w.in; }
[[nodiscard]] inline std::size_t in_features(const AffineWeights& w) noexcept { return w.in; }
[[nodiscard]] inline std::size_t in_features(const BlockWeights& w) noexcept { return w.in; }

/// Rows of ggml blocks: each row dequantized once (ggml's reference rule) and multiplied by the
/// tag's f32 kernel for every token of the call.
template <class Tag>
void rows(Tag tag, const BlockWeights& w, const Input& x, const Output& y, std::size_t r0, std::size_t r1,
          std::size_t t0, std::size_t nt) {
    std::vector<float> row(w.in);
    for (std::size_t r = r0; r < r1; ++r) {
        io::dequantize(static_cast<io::GgmlType>(w.type), {w.data + r * w.row_bytes, w.row_bytes}, row);
        const Output yr{y.y + r, y.ld, y.bias ? y.bias + r : nullptr};
        rows(tag, F32Weights{row.data(), w.in}, x, yr, 0, 1, t0, nt);
    }
}

template <class Tag, class W>
void run_tag(Tag tag, const W& w, std::size_t out, const Input& x, const Output& y, ThreadPool* pool) {
    // Block rows are dequantized once per call, so they meet every token in one pass.
    const std::size_t n = x.n, tb = std::is_same_v<W, BlockWeights> ? n : std::max<std::size_t>(1, max_tokens(tag));
    const auto chunk = [&](std::size_t begin, std::size_t end) {
        if (n <= tb) {
            rows(tag, w, x, y, begin, end, 0, n);
            return;
        }
        for (std::size_t rb = begin; rb < end; rb += kRowBlock) {
            const std::size_t re = std::min(end, rb + kRowBlock);
            for (std::size_t t0 = 0; t0 < n; t0 += tb) rows(tag, w, x, y, rb, re, t0, std::min(tb, n - t0));
        }
    };
    const std::size_t work_per_row = std::max<std::size_t>(1, x.in * n);
    std::size_t block = std::max<std::size_t>(1, (kMinChunkWork + work_per_row - 1) / work_per_row);
    block = (block + kRowBlock - 1) / kRowBlock * kRowBlock;
    if (!pool || pool->size() < 2 || out <= block) {
        chunk(0, out);
        return;
    }
    // Rows are handed out block by block from a shared counter rather than cut into one fixed
    // chunk per thread: on a machine whose cores are shared, a thread that starts late takes
    // fewer blocks instead of the whole call waiting for its fixed half.
    std::atomic<std::size_t> next{0};
    pool->parallel_for(pool->size(), [&](std::size_t b, std::size_t e, std::size_t) {
        for (std::size_t i = b; i < e; ++i)
            for (std::size_t r = next.fetch_add(block); r < out; r = next.fetch_add(block)) chunk(r, std::min(out, r + block));
    });
}

}  // namespace detail

/// y[n][out] = x[n][in] · Wᵀ (+ bias, when not null) on architecture `a` (narrowed to what the
/// CPU and the weights allow). Shapes are the caller's to check: x.size() == n·in, y.size() == n·out.
template <class W>
void run(const W& w, std::size_t out, std::span<const float> x, std::size_t n, std::span<float> y, const float* bias,
         ThreadPool* pool, arch::Arch a = arch::best_arch()) {
    const std::size_t in = detail::in_features(w);
    arch::dispatch(
        [&](auto tag) {
            Input xin{x.data(), n, in, nullptr};
            const Output yout{y.data(), out, bias};
            if constexpr (std::is_same_v<W, AffineWeights>) {
                const std::vector<float> xsum = detail::group_sums(x.data(), n, in, w.group);
                xin.xsum = xsum.data();
                std::vector<float> permuted;
                if (const std::size_t c = affine_nibble_chunk(tag, w.bits, w.group); c != 0) {
                    permuted = detail::nibble_order(x.data(), n, in, c);
                    xin.x = permuted.data();
                }
                detail::run_tag(tag, w, out, xin, yout, pool);
            } else {
                detail::run_tag(tag, w, out, xin, yout, pool);
            }
        },
        a);
}

}  // namespace optiq::backend::matmul

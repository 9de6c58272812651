#pragma once
// Integer-activation matmul over weights kept in their stored block format (GGUF Q4_0..Q8_0 and
// Q2_K..Q6_K used in place, MLX affine 2/4/8-bit): x is rounded to 8 bits once per call (per block
// of 32 or 256, qmatmul_types.hpp), and every weight block meets it in integer dot products:
// vpmaddubsw (AVX2), vpdpbusd (AVX-512 VNNI), sdot (NEON with FEAT_DotProd).
//
//   qmatmul::QJob jobs[] = {{wq, q_out, q, q_out, bq}, {wk, ...}, {wv, ...}};   // q, k and v
//   qmatmul::run(jobs, x, n, in, &pool, arch::best_arch(), workspace);          // x quantized once
//
// The kernels are written once (qmatmul_kernels-inl.hpp) over a small vector-traits type
// (qmatmul_vec-inl.hpp), and compiled once per target by including both files in a namespace of
// that target with its instruction set switched on for the functions they define (Highway's
// foreach_target.h approach): portable C++ (arch::scalar; it also runs where no other target
// does), AVX2, AVX-512 VNNI (x86-64, chosen at run time), NEON (AArch64). The targets give the
// same bits (the vector-traits operations are defined lane for lane), so the portable copy is the
// ground truth of the integer path and io::dequantize + a float dot product that of the exact path.
//
// Rows of all jobs of one call are handed to the pool's threads in chunks from one shared counter,
// so fused matmuls (q/k/v, gate/up) cost one hand-off, and a late thread takes fewer chunks.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/qmatmul_types.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/threads.hpp"

namespace optiq::backend::qmatmul::portable {
#define OPTIQ_QM_ISA 0
#include "optiq/backend/simd/qmatmul_vec-inl.hpp"
#include "optiq/backend/simd/qmatmul_kernels-inl.hpp"
#undef OPTIQ_QM_ISA
}  // namespace optiq::backend::qmatmul::portable

#if defined(OPTIQ_SIMD_X86) && (defined(__GNUC__) || defined(__clang__))
#define OPTIQ_QM_HAVE_X86 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
namespace optiq::backend::qmatmul::x86_avx2 {
#define OPTIQ_QM_ISA 1
#include "optiq/backend/simd/qmatmul_vec-inl.hpp"
#include "optiq/backend/simd/qmatmul_kernels-inl.hpp"
#undef OPTIQ_QM_ISA
}  // namespace optiq::backend::qmatmul::x86_avx2
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#endif
namespace optiq::backend::qmatmul::x86_vnni {
#define OPTIQ_QM_ISA 2
#include "optiq/backend/simd/qmatmul_vec-inl.hpp"
#include "optiq/backend/simd/qmatmul_kernels-inl.hpp"
#undef OPTIQ_QM_ISA
}  // namespace optiq::backend::qmatmul::x86_vnni
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

#if defined(OPTIQ_SIMD_NEON)
#define OPTIQ_QM_HAVE_NEON 1
namespace optiq::backend::qmatmul::neon {
#define OPTIQ_QM_ISA 3
#include "optiq/backend/simd/qmatmul_vec-inl.hpp"
#include "optiq/backend/simd/qmatmul_kernels-inl.hpp"
#undef OPTIQ_QM_ISA
}  // namespace optiq::backend::qmatmul::neon
#endif

namespace optiq::backend::qmatmul {

/// The compiled copies of the kernels (one per instruction set), in the order of increasing width.
enum class Isa : std::uint8_t { portable, avx2, avx512_vnni, neon };

[[nodiscard]] constexpr const char* isa_name(Isa i) noexcept {
    switch (i) {
        case Isa::portable: return "portable";
        case Isa::avx2: return "avx2";
        case Isa::avx512_vnni: return "avx512_vnni";
        case Isa::neon: return "neon";
    }
    return "?";
}

/// The copy that runs for architecture `a` on this CPU (arch::scalar: the portable copy; avx512
/// without VNNI: the AVX2 copy).
[[nodiscard]] inline Isa isa_for(arch::Arch a) noexcept {
    const arch::Arch best = arch::best_arch();
    switch (a) {
        case arch::Arch::avx512:
            if (best == arch::Arch::avx512 && arch::has_avx512_vnni()) return Isa::avx512_vnni;
            [[fallthrough]];
        case arch::Arch::avx2:
            if (best == arch::Arch::avx2 || best == arch::Arch::avx512) return Isa::avx2;
            return Isa::portable;
        case arch::Arch::neon: return best == arch::Arch::neon ? Isa::neon : Isa::portable;
        case arch::Arch::scalar: break;
    }
    return Isa::portable;
}

/// Every copy this CPU runs, portable first.
[[nodiscard]] inline std::vector<Isa> supported_isas() {
    std::vector<Isa> v{Isa::portable};
    for (const arch::Arch a : {arch::Arch::avx2, arch::Arch::avx512, arch::Arch::neon})
        if (const Isa i = isa_for(a); std::find(v.begin(), v.end(), i) == v.end()) v.push_back(i);
    return v;
}

/// Whether the kernels can run `w` (whole blocks; MLX groups of whole 32-column blocks). False on
/// big-endian hosts, where the in-place block reads would need byte swaps.
[[nodiscard]] inline bool supports(const QWeights& w) noexcept {
    if constexpr (std::endian::native != std::endian::little) return false;
    const FormatInfo f = format_info(w.format);
    if (w.in == 0 || w.in % f.block != 0) return false;
    const bool mlx = w.format == QFormat::mlx2 || w.format == QFormat::mlx4 || w.format == QFormat::mlx8;
    if (mlx) return w.group != 0 && w.group % 32 == 0 && w.in % w.group == 0 && w.scales && w.biases;
    return w.row_bytes == w.in / f.block * f.bytes;
}

/// Tokens from which a call runs the token-vector kernels (eight tokens per vector, decoded weights
/// shared by sixteen tokens): prefill and batched decode. Fewer tokens (a decode step) run the
/// row-major kernels, which read each weight once per four tokens.
/// (OPTIQ_QM_TOKEN_KERNEL_MIN overrides it at compile time; a huge value turns the path off.)
#ifndef OPTIQ_QM_TOKEN_KERNEL_MIN
#define OPTIQ_QM_TOKEN_KERNEL_MIN 16
#endif
inline constexpr std::size_t kTokenKernelMin = OPTIQ_QM_TOKEN_KERNEL_MIN;

/// Whether `f` has token-vector kernels: every format with codes of at most 6 bits.
[[nodiscard]] constexpr bool token_kernels(QFormat f) noexcept { return f != QFormat::q8_0 && f != QFormat::mlx8; }

/// Whether a call of n tokens runs `f` on the token-vector kernels.
[[nodiscard]] constexpr bool uses_token_kernels(QFormat f, std::size_t n) noexcept {
    return n >= kTokenKernelMin && token_kernels(f);
}

/// The activation rounding of `f` in a call of n tokens: the token-vector kernels take q8_32
/// (the block's column order) for every format, K-quants included.
[[nodiscard]] constexpr ActKind act_kind(QFormat f, std::size_t n) noexcept {
    const ActKind k = format_info(f).act;
    return uses_token_kernels(f, n) && k == ActKind::q8_256 ? ActKind::q8_32 : k;
}

/// Columns that share one activation scale d in a call of n tokens (32 or 256).
[[nodiscard]] constexpr std::size_t act_block(QFormat f, std::size_t n) noexcept {
    return act_kind(f, n) == ActKind::q8_256 ? 256 : 32;
}

namespace detail {

struct IsaFns {
    void (*quantize)(const float*, std::size_t, std::size_t, ActBuffer&) noexcept;
    void (*rows)(const QJob&, const ActBuffer&, std::size_t, std::size_t, std::size_t, std::size_t) noexcept;
    void (*tok_rows)(const QJob&, const TokPanel&, std::size_t, std::size_t) noexcept;
};

[[nodiscard]] inline IsaFns fns(Isa i) noexcept {
    switch (i) {
#if defined(OPTIQ_QM_HAVE_X86)
        case Isa::avx2: return {&x86_avx2::quantize_rows, &x86_avx2::rows, &x86_avx2::tok_rows};
        case Isa::avx512_vnni: return {&x86_vnni::quantize_rows, &x86_vnni::rows, &x86_vnni::tok_rows};
#endif
#if defined(OPTIQ_QM_HAVE_NEON)
        case Isa::neon: return {&neon::quantize_rows, &neon::rows, &neon::tok_rows};
#endif
        default: break;
    }
    return {&portable::quantize_rows, &portable::rows, &portable::tok_rows};
}

/// Multiply-adds a chunk of rows handed to a thread holds at least (a few microseconds of work).
inline constexpr std::size_t kMinChunkWork = std::size_t{1} << 15;

}  // namespace detail

/// Scratch buffers of a caller that runs many matmuls (one per activation kind): reused, so a
/// decode loop allocates nothing.
struct Workspace {
    std::array<ActBuffer, kActKinds> acts;
    std::array<TokPanel, kActKinds> panels;
    std::vector<std::pair<std::size_t, std::size_t>> chunks;  // (job, first row)
};

/// Rounds x [n][in] to 8 bits as `kind` wants it, into buf (on the pool when it pays).
inline void quantize(ActKind kind, const float* x, std::size_t n, std::size_t in, ActBuffer& buf, ThreadPool* pool,
                     Isa isa) {
    buf.shape(kind, n, in);
    const auto q = detail::fns(isa).quantize;
    if (pool && pool->size() > 1 && n * in >= (std::size_t{1} << 15))
        pool->parallel_for(n, [&](std::size_t b, std::size_t e, std::size_t) { q(x, b, e, buf); });
    else q(x, 0, n, buf);
}

/// Every job's y = W · x̃ (+ bias) for the n tokens of x [n][in] (each job's W has `in` columns and
/// supports() it: the caller checks). Rows are spread over the pool.
inline void run(std::span<const QJob> jobs, const float* x, std::size_t n, std::size_t in, ThreadPool* pool, Isa isa,
                Workspace& ws) {
    if (jobs.empty() || n == 0) return;
    bool need[kActKinds] = {}, panel[kActKinds] = {};
    for (const QJob& j : jobs) {
        const auto k = static_cast<std::size_t>(act_kind(j.w.format, n));
        need[k] = true;
        panel[k] = panel[k] || uses_token_kernels(j.w.format, n);
    }
    for (std::size_t k = 0; k < kActKinds; ++k) {
        if (need[k]) quantize(static_cast<ActKind>(k), x, n, in, ws.acts[k], pool, isa);
        if (panel[k]) ws.panels[k].build(ws.acts[k]);
    }
    const auto fns = detail::fns(isa);
    const auto kind_of = [&](const QJob& j) { return static_cast<std::size_t>(act_kind(j.w.format, n)); };
    // Chunks of rows large enough to pay for a hand-off, multiples of 16 rows.
    const std::size_t per_row = std::max<std::size_t>(1, in * n);
    std::size_t chunk = (detail::kMinChunkWork + per_row - 1) / per_row;
    chunk = std::max<std::size_t>(16, (chunk + 15) / 16 * 16);
    ws.chunks.clear();
    for (std::size_t j = 0; j < jobs.size(); ++j)
        for (std::size_t r = 0; r < jobs[j].out; r += chunk) ws.chunks.emplace_back(j, r);
    const auto run_chunk = [&](std::size_t c) {
        const auto [j, r0] = ws.chunks[c];
        const QJob& job = jobs[j];
        const std::size_t r1 = std::min(job.out, r0 + chunk);
        if (uses_token_kernels(job.w.format, n)) fns.tok_rows(job, ws.panels[kind_of(job)], r0, r1);
        else fns.rows(job, ws.acts[kind_of(job)], r0, r1, 0, n);
    };
    if (!pool || pool->size() < 2 || ws.chunks.size() < 2) {
        for (std::size_t c = 0; c < ws.chunks.size(); ++c) run_chunk(c);
        return;
    }
    std::atomic<std::size_t> next{0};
    const std::size_t count = ws.chunks.size();
    pool->run_on_all([&](std::size_t) {
        for (std::size_t c = next.fetch_add(1, std::memory_order_relaxed); c < count;
             c = next.fetch_add(1, std::memory_order_relaxed))
            run_chunk(c);
    });
}

}  // namespace optiq::backend::qmatmul

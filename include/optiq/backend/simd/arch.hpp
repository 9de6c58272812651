#pragma once
// SIMD architecture tags (namespace backend::arch; backend::simd is the backend tag) the xsimd / Highway way: a chain of types (avx512 : avx2 : scalar on x86-64,
// neon : scalar on arm64) so a kernel overloaded for the tags where it pays is found for any richer
// tag by derived-to-base conversion. The CPU is asked once (cached in a function-local static: the
// answer never changes while the process runs), and dispatch() calls the kernel with the best tag.
//
//   float dot(arch::scalar, const float* a, const float* b, std::size_t n);
//   OPTIQ_TARGET_AVX2 float dot(arch::avx2, const float* a, const float* b, std::size_t n);
//   float r = arch::dispatch([&](auto tag) { return dot(tag, a, b, n); });
//
// x86 kernels are compiled with target attributes (OPTIQ_TARGET_AVX2 / OPTIQ_TARGET_AVX512), so the
// library needs no -mavx2 and runs on any x86-64; OPTIQ_SIMD_MAX=scalar|avx2 (environment) caps the
// choice, for tests and benchmarks that compare the paths on one machine.
#include <cstdlib>
#include <string_view>

#if defined(__x86_64__) || defined(_M_X64)
#define OPTIQ_SIMD_X86 1
#include <immintrin.h>
#define OPTIQ_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define OPTIQ_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define OPTIQ_TARGET_AVX512_VNNI \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#elif defined(__aarch64__) || defined(_M_ARM64)
#define OPTIQ_SIMD_NEON 1
#include <arm_neon.h>
#endif

// Before a loop of a few iterations over registers (query states, chunks of a block): unrolled at
// -O2 too, so arrays of __m512 stay in registers. GCC 12 at -O2 (CMake's RelWithDebInfo, distro
// builds) keeps such arrays in memory and the KV kernels ran 2-3x slower than at -O3.
#if defined(__GNUC__) || defined(__clang__)
#define OPTIQ_UNROLL _Pragma("GCC unroll 16")
#else
#define OPTIQ_UNROLL
#endif

namespace optiq::backend::arch {

struct scalar {
    static constexpr std::string_view name = "scalar";
};
#if defined(OPTIQ_SIMD_X86)
struct avx2 : scalar {
    static constexpr std::string_view name = "avx2";
};
struct avx512 : avx2 {
    static constexpr std::string_view name = "avx512";
};
#endif
#if defined(OPTIQ_SIMD_NEON)
struct neon : scalar {
    static constexpr std::string_view name = "neon";
};
#endif

enum class Arch { scalar, avx2, avx512, neon };

namespace detail {

[[nodiscard]] inline Arch detect() noexcept {
    Arch best = Arch::scalar;
#if defined(OPTIQ_SIMD_X86) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    // F16C is not a __builtin_cpu_supports name in clang 14; every AVX2 CPU has it.
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Arch::avx2;
    if (best == Arch::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        best = Arch::avx512;
#elif defined(OPTIQ_SIMD_NEON)
    best = Arch::neon;  // Advanced SIMD is mandatory on AArch64
#endif
    if (const char* cap = std::getenv("OPTIQ_SIMD_MAX")) {  // NOLINT(concurrency-mt-unsafe): read once
        const std::string_view c(cap);
        if (c == "scalar") best = Arch::scalar;
        else if (c == "avx2" && best == Arch::avx512) best = Arch::avx2;
    }
    return best;
}

}  // namespace detail

/// Whether the AVX-512 tag may also use VNNI (int8 dot products: kv_int8.hpp): asked once.
[[nodiscard]] inline bool has_avx512_vnni() noexcept {
#if defined(OPTIQ_SIMD_X86) && (defined(__GNUC__) || defined(__clang__))
    static const bool v = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512vnni") != 0;
    }();
    return v;
#else
    return false;
#endif
}

/// The best architecture this CPU supports (asked once per process).
[[nodiscard]] inline Arch best_arch() noexcept {
    static const Arch a = detail::detect();
    return a;
}

[[nodiscard]] inline std::string_view arch_name(Arch a) noexcept {
    switch (a) {
        case Arch::avx2: return "avx2";
        case Arch::avx512: return "avx512";
        case Arch::neon: return "neon";
        case Arch::scalar: break;
    }
    return "scalar";
}

/// Calls f(tag) with the tag of best_arch() (or of `a`, if it is given and supported).
template <class F>
decltype(auto) dispatch(F&& f, Arch a = best_arch()) {
#if defined(OPTIQ_SIMD_X86)
    if (a == Arch::avx512 && best_arch() == Arch::avx512) return f(avx512{});
    if ((a == Arch::avx2 || a == Arch::avx512) && best_arch() != Arch::scalar) return f(avx2{});
#elif defined(OPTIQ_SIMD_NEON)
    if (a == Arch::neon) return f(neon{});
#endif
    return f(scalar{});
}

}  // namespace optiq::backend::arch

#pragma once
// AVX2 + FMA + F16C weight-format matmul kernels (arch::avx2; matmul_scalar.hpp is the reference).
// The AVX-512 kernels (matmul_avx512.hpp) at half the width, same structure:
//   f32, f16, bf16   four accumulators per token, two tokens a pass; f16 through vcvtph2ps, bf16 by a 16-bit shift;
//                    the last in % 8 columns by a masked load (f32) or a zero-padded copy (16-bit)
//   mlx_affine       8 bits: 8 bytes -> 8 lanes; 4 bits: 8 bytes -> 16 codes, even codes `& 15`,
//                    odd codes `>> 4`, x permuted to even-then-odd within each 16-code chunk;
//                    other b: 8 codes are b bytes, one 8-byte load broadcast to both 128-bit
//                    lanes, vpshufb + vpsrlvd + mask
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/matmul_scalar.hpp"
#include "optiq/backend/simd/matmul_types.hpp"

#if defined(OPTIQ_SIMD_X86)

namespace optiq::backend::matmul {

[[nodiscard]] constexpr std::size_t max_tokens(arch::avx2) noexcept { return 4; }

[[nodiscard]] constexpr bool affine_supported(arch::avx2, int bits, std::size_t group) noexcept {
    return bits >= 1 && bits <= 8 && group % 8 == 0;
}
[[nodiscard]] constexpr std::size_t affine_nibble_chunk(arch::avx2, int bits, std::size_t group) noexcept {
    return bits == 4 && group % 16 == 0 ? 16 : 0;
}

namespace avx2_detail {

/// All-ones in the first n (< 8) int32 lanes.
[[nodiscard]] OPTIQ_TARGET_AVX2 inline __m256i tail_mask(std::size_t n) noexcept {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

[[nodiscard]] OPTIQ_TARGET_AVX2 inline float hsum(__m256 v) noexcept {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// The last n (< 8) 16-bit values, zero-padded to 8.
[[nodiscard]] OPTIQ_TARGET_AVX2 inline __m128i load_part16(const std::uint16_t* p, std::size_t n) noexcept {
    std::uint16_t buf[8] = {};
    std::memcpy(buf, p, n * sizeof(std::uint16_t));
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf));
}

struct LoadF32 {
    using E = float;
    OPTIQ_TARGET_AVX2 static __m256 full(const float* p) noexcept { return _mm256_loadu_ps(p); }
    OPTIQ_TARGET_AVX2 static __m256 part(const float* p, std::size_t n, __m256i m) noexcept {
        (void)n;
        return _mm256_maskload_ps(p, m);
    }
};
struct LoadF16 {
    using E = std::uint16_t;
    OPTIQ_TARGET_AVX2 static __m256 full(const std::uint16_t* p) noexcept {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    OPTIQ_TARGET_AVX2 static __m256 part(const std::uint16_t* p, std::size_t n, __m256i) noexcept {
        return _mm256_cvtph_ps(load_part16(p, n));
    }
};
struct LoadBF16 {
    using E = std::uint16_t;
    OPTIQ_TARGET_AVX2 static __m256 widen(__m128i h) noexcept {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    OPTIQ_TARGET_AVX2 static __m256 full(const std::uint16_t* p) noexcept {
        return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    OPTIQ_TARGET_AVX2 static __m256 part(const std::uint16_t* p, std::size_t n, __m256i) noexcept {
        return widen(load_part16(p, n));
    }
};

/// Rows [r0, r1) of a dense matrix for tokens t0..t0+T-1, four independent accumulators per token
/// (one token alone would otherwise wait on the FMA latency of a single chain), the same four for
/// every T: a token's result does not depend on how many tokens share its pass.
template <int T, class L, int A = 4>
OPTIQ_TARGET_AVX2 void dense_rows(const typename L::E* wm, std::size_t in, const Input& x, const Output& y,
                                    std::size_t r0, std::size_t r1, std::size_t t0) noexcept {
    const float* xs[T];
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) xs[t] = x.x + (t0 + static_cast<std::size_t>(t)) * x.in;
    constexpr std::size_t W = 8, step = W * A;
    const std::size_t tail = in % W;
    const __m256i m = tail_mask(tail);
    for (std::size_t r = r0; r < r1; ++r) {
        const typename L::E* w = wm + r * in;
        __m256 acc[T][A];
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t)
            OPTIQ_UNROLL
            for (int a = 0; a < A; ++a) acc[t][a] = _mm256_setzero_ps();
        std::size_t i = 0;
        for (; i + step <= in; i += step)
            OPTIQ_UNROLL
            for (int a = 0; a < A; ++a) {
                const __m256 wv = L::full(w + i + a * W);
                OPTIQ_UNROLL
                for (int t = 0; t < T; ++t) acc[t][a] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[t] + i + a * W), acc[t][a]);
            }
        for (; i + W <= in; i += W) {
            const __m256 wv = L::full(w + i);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[t] + i), acc[t][0]);
        }
        if (tail != 0) {
            const __m256 wv = L::part(w + i, tail, m);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t][A - 1] = _mm256_fmadd_ps(wv, _mm256_maskload_ps(xs[t] + i, m), acc[t][A - 1]);
        }
        const float b = y.bias ? y.bias[r] : 0.0f;
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) {
            __m256 s = acc[t][0];
            OPTIQ_UNROLL
            for (int a = 1; a < A; ++a) s = _mm256_add_ps(s, acc[t][a]);
            y.y[(t0 + static_cast<std::size_t>(t)) * y.ld + r] = hsum(s) + b;
        }
    }
}

struct Unpack8 {
    static constexpr std::size_t codes = 8, vectors = 1;
    static constexpr bool reads_ahead = false;
    OPTIQ_TARGET_AVX2 void operator()(const std::uint8_t* p, __m256* q) const noexcept {
        q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    }
};

struct Unpack4 {
    static constexpr std::size_t codes = 16, vectors = 2;
    static constexpr bool reads_ahead = false;
    OPTIQ_TARGET_AVX2 void operator()(const std::uint8_t* p, __m256* q) const noexcept {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
        q[0] = _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
        q[1] = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
    }
};

/// Any width b: 8 codes in b bytes, read with one 8-byte load (up to 8 - b bytes past them).
struct UnpackAny {
    static constexpr std::size_t codes = 8, vectors = 1;
    static constexpr bool reads_ahead = true;
    __m256i select, shift, mask;
    OPTIQ_TARGET_AVX2 explicit UnpackAny(int bits) noexcept {
        std::uint8_t sel[32];
        std::uint32_t sh[8];
        const auto b = static_cast<unsigned>(bits);
        for (unsigned i = 0; i < 8; ++i) {
            const unsigned bit = b * i, byte = bit / 8, used = (bit % 8 + b > 8) ? 2 : 1;
            for (unsigned j = 0; j < 4; ++j) sel[4 * i + j] = static_cast<std::uint8_t>(j < used ? byte + j : 0x80u);
            sh[i] = bit % 8;
        }
        select = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sel));
        shift = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sh));
        mask = _mm256_set1_epi32(static_cast<int>((1u << b) - 1u));
    }
    OPTIQ_TARGET_AVX2 void operator()(const std::uint8_t* p, __m256* q) const noexcept {
        __m256i v = _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
        v = _mm256_srlv_epi32(_mm256_shuffle_epi8(v, select), shift);
        q[0] = _mm256_cvtepi32_ps(_mm256_and_si256(v, mask));
    }
};

template <int T, class U>
OPTIQ_TARGET_AVX2 void affine_rows(const U& unpack, const AffineWeights& w, const Input& x, const Output& y,
                                   std::size_t r0, std::size_t r1, std::size_t t0) {
    const std::size_t g = w.group, gpr = w.groups(), row_bytes = w.row_bytes();
    const std::size_t chunks = g / U::codes, chunk_bytes = U::codes * static_cast<std::size_t>(w.bits) / 8;
    const std::size_t group_bytes = chunks * chunk_bytes;
    const auto* base = reinterpret_cast<const std::uint8_t*>(w.words);
    const std::uint8_t* const end = base + w.n_words * 4;
    std::vector<std::uint8_t> padded;
    const float* xs[T];
    const float* xsum[T];
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) {
        xs[t] = x.x + (t0 + static_cast<std::size_t>(t)) * x.in;
        xsum[t] = x.xsum + (t0 + static_cast<std::size_t>(t)) * gpr;
    }
    const std::size_t btail = gpr % 8;
    const __m256i bm = tail_mask(btail);
    for (std::size_t r = r0; r < r1; ++r) {
        const std::uint8_t* row = base + r * row_bytes;
        if constexpr (U::reads_ahead) {
            if (static_cast<std::size_t>(end - row) < row_bytes + 8) {
                padded.assign(row, row + row_bytes);
                padded.resize(row_bytes + 8, 0);
                row = padded.data();
            }
        }
        const float* sc = w.scales + r * gpr;
        const float* bi = w.biases + r * gpr;
        __m256 acc[T];
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
        for (std::size_t k = 0; k < gpr; ++k) {
            const std::uint8_t* p = row + k * group_bytes;
            const std::size_t xo = k * g;
            __m256 g0[T], g1[T];
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) g0[t] = g1[t] = _mm256_setzero_ps();
            if constexpr (U::vectors == 2) {
                for (std::size_t c = 0; c < chunks; ++c) {
                    __m256 q[2];
                    unpack(p + c * chunk_bytes, q);
                    const std::size_t o = xo + c * 16;
                    OPTIQ_UNROLL
                    for (int t = 0; t < T; ++t) {
                        g0[t] = _mm256_fmadd_ps(q[0], _mm256_loadu_ps(xs[t] + o), g0[t]);
                        g1[t] = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xs[t] + o + 8), g1[t]);
                    }
                }
            } else {
                std::size_t c = 0;
                for (; c + 2 <= chunks; c += 2) {
                    __m256 q0[1], q1[1];
                    unpack(p + c * chunk_bytes, q0);
                    unpack(p + (c + 1) * chunk_bytes, q1);
                    const std::size_t o = xo + c * 8;
                    OPTIQ_UNROLL
                    for (int t = 0; t < T; ++t) {
                        g0[t] = _mm256_fmadd_ps(q0[0], _mm256_loadu_ps(xs[t] + o), g0[t]);
                        g1[t] = _mm256_fmadd_ps(q1[0], _mm256_loadu_ps(xs[t] + o + 8), g1[t]);
                    }
                }
                if (c < chunks) {
                    __m256 q0[1];
                    unpack(p + c * chunk_bytes, q0);
                    OPTIQ_UNROLL
                    for (int t = 0; t < T; ++t) g0[t] = _mm256_fmadd_ps(q0[0], _mm256_loadu_ps(xs[t] + xo + c * 8), g0[t]);
                }
            }
            const __m256 s = _mm256_set1_ps(sc[k]);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(s, _mm256_add_ps(g0[t], g1[t]), acc[t]);
        }
        std::size_t k = 0;
        for (; k + 8 <= gpr; k += 8) {
            const __m256 b = _mm256_loadu_ps(bi + k);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(b, _mm256_loadu_ps(xsum[t] + k), acc[t]);
        }
        if (btail != 0) {
            const __m256 b = _mm256_maskload_ps(bi + k, bm);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(b, _mm256_maskload_ps(xsum[t] + k, bm), acc[t]);
        }
        const float lb = y.bias ? y.bias[r] : 0.0f;
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) y.y[(t0 + static_cast<std::size_t>(t)) * y.ld + r] = hsum(acc[t]) + lb;
    }
}

template <class L>
OPTIQ_TARGET_AVX2 void dense(const typename L::E* w, std::size_t in, const Input& x, const Output& y, std::size_t r0,
                             std::size_t r1, std::size_t t0, std::size_t nt) noexcept {
    // Two tokens a pass: 2 x 4 accumulators, 4 more registers for x and w of the 16.
    for (; nt >= 2; nt -= 2, t0 += 2) dense_rows<2, L>(w, in, x, y, r0, r1, t0);
    if (nt == 1) dense_rows<1, L>(w, in, x, y, r0, r1, t0);
}

template <class U>
OPTIQ_TARGET_AVX2 void affine(const U& u, const AffineWeights& w, const Input& x, const Output& y, std::size_t r0,
                              std::size_t r1, std::size_t t0, std::size_t nt) {
    for (; nt >= 4; nt -= 4, t0 += 4) affine_rows<4>(u, w, x, y, r0, r1, t0);
    switch (nt) {
        case 3: affine_rows<3>(u, w, x, y, r0, r1, t0); break;
        case 2: affine_rows<2>(u, w, x, y, r0, r1, t0); break;
        case 1: affine_rows<1>(u, w, x, y, r0, r1, t0); break;
        default: break;
    }
}

}  // namespace avx2_detail

OPTIQ_TARGET_AVX2 inline void rows(arch::avx2, const F32Weights& w, const Input& x, const Output& y, std::size_t r0,
                                   std::size_t r1, std::size_t t0, std::size_t nt) {
    avx2_detail::dense<avx2_detail::LoadF32>(w.w, w.in, x, y, r0, r1, t0, nt);
}

OPTIQ_TARGET_AVX2 inline void rows(arch::avx2, const HalfWeights& w, const Input& x, const Output& y, std::size_t r0,
                                   std::size_t r1, std::size_t t0, std::size_t nt) {
    if (w.bf16) avx2_detail::dense<avx2_detail::LoadBF16>(w.w, w.in, x, y, r0, r1, t0, nt);
    else avx2_detail::dense<avx2_detail::LoadF16>(w.w, w.in, x, y, r0, r1, t0, nt);
}

/// x must be in the order affine_nibble_chunk(arch::avx2{}, ...) names.
OPTIQ_TARGET_AVX2 inline void rows(arch::avx2, const AffineWeights& w, const Input& x, const Output& y, std::size_t r0,
                                   std::size_t r1, std::size_t t0, std::size_t nt) {
    namespace d = avx2_detail;
    if (!affine_supported(arch::avx2{}, w.bits, w.group)) return rows(arch::scalar{}, w, x, y, r0, r1, t0, nt);
    if (w.bits == 8) d::affine(d::Unpack8{}, w, x, y, r0, r1, t0, nt);
    else if (affine_nibble_chunk(arch::avx2{}, w.bits, w.group) == 16) d::affine(d::Unpack4{}, w, x, y, r0, r1, t0, nt);
    else d::affine(d::UnpackAny(w.bits), w, x, y, r0, r1, t0, nt);
}

}  // namespace optiq::backend::matmul

#endif  // OPTIQ_SIMD_X86

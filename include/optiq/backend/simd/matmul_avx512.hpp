#pragma once
// AVX-512 weight-format matmul kernels (arch::avx512; matmul_scalar.hpp is the reference they are
// tested against). Sixteen f32 lanes; every weight vector is widened once and multiplied into up
// to max_tokens() = 4 tokens, so a prefill reads and unpacks each weight row once per four tokens
// (8 tokens measured no faster: the 4-bit kernel then runs out of its 32 vector registers). Per format:
//   f32          four accumulators per token (the FMA latency, not the port, bounds one chain)
//   f16          vcvtph2ps (exact for every binary16 value, subnormals included)
//   bf16         zero-extend to 32 bits and shift left 16 (bf16 is the top half of an f32)
//   mlx_affine   codes unpacked into int32 lanes, converted (exact), then FMA with x; a group's
//                scale multiplies its partial sums once, and Σ_groups bias·Σx is one more
//                vector FMA (the MLX identity of matmul_scalar.hpp, different summation order):
//     8 bits     16 bytes -> 16 lanes (vpmovzxbd), code order
//     4 bits     16 bytes -> 32 codes: lanes hold bytes, whose low nibbles are the even codes and
//                high nibbles (`>> 4`) the odd ones, each turned into a float by a vpermps table
//                lookup; x is permuted once per call (matmul.hpp) to even-then-odd order within
//                each 32-code chunk instead of shuffling every weight vector
//     other      16 codes of b bits are 2b bytes: one 16-byte load broadcast to the four
//                128-bit lanes, vpshufb moves the (at most two) bytes of code i into lane i,
//                vpsrlvd aligns it and a mask keeps b bits (any b in 1..8, code order)
#include <cstddef>
#include <cstdint>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/matmul_avx2.hpp"
#include "optiq/backend/simd/matmul_scalar.hpp"
#include "optiq/backend/simd/matmul_types.hpp"

#if defined(OPTIQ_SIMD_X86)

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge source, and its
// -Wmaybe-uninitialized flags every inlined use (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace optiq::backend::matmul {

[[nodiscard]] constexpr std::size_t max_tokens(arch::avx512) noexcept { return 4; }

/// Every code width, groups of whole 16-code vectors.
[[nodiscard]] constexpr bool affine_supported(arch::avx512, int bits, std::size_t group) noexcept {
    return bits >= 1 && bits <= 8 && group % 16 == 0;
}
[[nodiscard]] constexpr std::size_t affine_nibble_chunk(arch::avx512, int bits, std::size_t group) noexcept {
    return bits == 4 && group % 32 == 0 ? 32 : 0;
}

namespace avx512_detail {

struct LoadF32 {
    using E = float;
    OPTIQ_TARGET_AVX512 static __m512 full(const float* p) noexcept { return _mm512_loadu_ps(p); }
    OPTIQ_TARGET_AVX512 static __m512 part(const float* p, __mmask16 m) noexcept { return _mm512_maskz_loadu_ps(m, p); }
};
struct LoadF16 {
    using E = std::uint16_t;
    OPTIQ_TARGET_AVX512 static __m512 full(const std::uint16_t* p) noexcept {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    OPTIQ_TARGET_AVX512 static __m512 part(const std::uint16_t* p, __mmask16 m) noexcept {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    }
};
struct LoadBF16 {
    using E = std::uint16_t;
    OPTIQ_TARGET_AVX512 static __m512 widen(__m256i h) noexcept {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    OPTIQ_TARGET_AVX512 static __m512 full(const std::uint16_t* p) noexcept {
        return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    OPTIQ_TARGET_AVX512 static __m512 part(const std::uint16_t* p, __mmask16 m) noexcept {
        return widen(_mm256_maskz_loadu_epi16(m, p));
    }
};

/// Σ of the 16 lanes (the upper 256 bits folded onto the lower, then the AVX2 sum).
[[nodiscard]] OPTIQ_TARGET_AVX512 inline float hsum(__m512 v) noexcept {
    const __m512 h = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));  // + the other 256-bit half
    return avx2_detail::hsum(_mm512_castps512_ps256(h));
}

[[nodiscard]] OPTIQ_TARGET_AVX512 inline __mmask16 tail_mask(std::size_t n) noexcept {
    return static_cast<__mmask16>((1u << n) - 1u);
}

/// Rows [r0, r1) of a dense matrix for tokens t0..t0+T-1, four independent accumulators per token
/// (one token alone would otherwise wait on the FMA latency of a single chain), the same four for
/// every T: a token's result does not depend on how many tokens share its pass.
template <int T, class L, int A = 4>
OPTIQ_TARGET_AVX512 void dense_rows(const typename L::E* wm, std::size_t in, const Input& x, const Output& y,
                                    std::size_t r0, std::size_t r1, std::size_t t0) noexcept {
    const float* xs[T];
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) xs[t] = x.x + (t0 + static_cast<std::size_t>(t)) * x.in;
    constexpr std::size_t W = 16, step = W * A;
    const std::size_t tail = in % W;
    const __mmask16 m = tail_mask(tail);
    for (std::size_t r = r0; r < r1; ++r) {
        const typename L::E* w = wm + r * in;
        __m512 acc[T][A];
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t)
            OPTIQ_UNROLL
            for (int a = 0; a < A; ++a) acc[t][a] = _mm512_setzero_ps();
        std::size_t i = 0;
        for (; i + step <= in; i += step)
            OPTIQ_UNROLL
            for (int a = 0; a < A; ++a) {
                const __m512 wv = L::full(w + i + a * W);
                OPTIQ_UNROLL
                for (int t = 0; t < T; ++t) acc[t][a] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[t] + i + a * W), acc[t][a]);
            }
        for (; i + W <= in; i += W) {
            const __m512 wv = L::full(w + i);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[t] + i), acc[t][0]);
        }
        if (tail != 0) {
            const __m512 wv = L::part(w + i, m);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t][A - 1] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xs[t] + i), acc[t][A - 1]);
        }
        const float b = y.bias ? y.bias[r] : 0.0f;
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) {
            __m512 s = acc[t][0];
            OPTIQ_UNROLL
            for (int a = 1; a < A; ++a) s = _mm512_add_ps(s, acc[t][a]);
            y.y[(t0 + static_cast<std::size_t>(t)) * y.ld + r] = hsum(s) + b;
        }
    }
}

/// 8-bit codes: 16 bytes, 16 codes in order.
struct Unpack8 {
    static constexpr std::size_t codes = 16, vectors = 1;
    static constexpr bool reads_ahead = false;
    OPTIQ_TARGET_AVX512 void operator()(const std::uint8_t* p, __m512* q) const noexcept {
        q[0] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    }
};

/// 4-bit codes: 16 bytes, 32 codes; q[0] the even ones, q[1] the odd ones. A code becomes its
/// float by a 16-entry table lookup (vpermps reads only the low 4 bits of each index lane), one
/// uop where `& 15` + vcvtdq2ps take two: the inner loop is bound by vector-port uops.
struct Unpack4 {
    static constexpr std::size_t codes = 32, vectors = 2;
    static constexpr bool reads_ahead = false;
    __m512 table;
    OPTIQ_TARGET_AVX512 Unpack4() noexcept
        : table(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)) {}
    OPTIQ_TARGET_AVX512 void operator()(const std::uint8_t* p, __m512* q) const noexcept {
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        q[0] = _mm512_permutexvar_ps(v, table);
        q[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
    }
};

/// Any width b: 16 codes in 2b bytes, read with one 16-byte load (up to 16 - 2b bytes past them).
struct UnpackAny {
    static constexpr std::size_t codes = 16, vectors = 1;
    static constexpr bool reads_ahead = true;
    __m512i select, shift, mask;
    OPTIQ_TARGET_AVX512 explicit UnpackAny(int bits) noexcept {
        std::uint8_t sel[64];
        std::uint32_t sh[16];
        const auto b = static_cast<unsigned>(bits);
        for (unsigned i = 0; i < 16; ++i) {
            const unsigned bit = b * i, byte = bit / 8, used = (bit % 8 + b > 8) ? 2 : 1;
            for (unsigned j = 0; j < 4; ++j) sel[4 * i + j] = static_cast<std::uint8_t>(j < used ? byte + j : 0x80u);
            sh[i] = bit % 8;
        }
        select = _mm512_loadu_si512(sel);
        shift = _mm512_loadu_si512(sh);
        mask = _mm512_set1_epi32(static_cast<int>((1u << b) - 1u));
    }
    OPTIQ_TARGET_AVX512 void operator()(const std::uint8_t* p, __m512* q) const noexcept {
        __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        v = _mm512_srlv_epi32(_mm512_shuffle_epi8(v, select), shift);
        q[0] = _mm512_cvtepi32_ps(_mm512_and_si512(v, mask));
    }
};

/// Rows [r0, r1) of an affine matrix for tokens t0..t0+T-1 (x in the order U unpacks codes).
template <int T, class U>
OPTIQ_TARGET_AVX512 void affine_rows(const U& unpack, const AffineWeights& w, const Input& x, const Output& y,
                                     std::size_t r0, std::size_t r1, std::size_t t0) {
    const std::size_t g = w.group, gpr = w.groups(), row_bytes = w.row_bytes();
    const std::size_t chunks = g / U::codes, chunk_bytes = U::codes * static_cast<std::size_t>(w.bits) / 8;
    const std::size_t group_bytes = chunks * chunk_bytes;
    const auto* base = reinterpret_cast<const std::uint8_t*>(w.words);
    const std::uint8_t* const end = base + w.n_words * 4;
    std::vector<std::uint8_t> padded;  // a last row that U would read past the matrix's end
    const float* xs[T];
    const float* xsum[T];
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) {
        xs[t] = x.x + (t0 + static_cast<std::size_t>(t)) * x.in;
        xsum[t] = x.xsum + (t0 + static_cast<std::size_t>(t)) * gpr;
    }
    const std::size_t btail = gpr % 16;
    const __mmask16 bm = tail_mask(btail);
    for (std::size_t r = r0; r < r1; ++r) {
        const std::uint8_t* row = base + r * row_bytes;
        if constexpr (U::reads_ahead) {
            if (static_cast<std::size_t>(end - row) < row_bytes + 16) {
                padded.assign(row, row + row_bytes);
                padded.resize(row_bytes + 16, 0);
                row = padded.data();
            }
        }
        const float* sc = w.scales + r * gpr;
        const float* bi = w.biases + r * gpr;
        __m512 acc[T];
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
        for (std::size_t k = 0; k < gpr; ++k) {
            const std::uint8_t* p = row + k * group_bytes;
            const std::size_t xo = k * g;
            __m512 g0[T], g1[T];
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) g0[t] = g1[t] = _mm512_setzero_ps();
            if constexpr (U::vectors == 2) {
                for (std::size_t c = 0; c < chunks; ++c) {
                    __m512 q[2];
                    unpack(p + c * chunk_bytes, q);
                    const std::size_t o = xo + c * 32;
                    OPTIQ_UNROLL
                    for (int t = 0; t < T; ++t) {
                        g0[t] = _mm512_fmadd_ps(q[0], _mm512_loadu_ps(xs[t] + o), g0[t]);
                        g1[t] = _mm512_fmadd_ps(q[1], _mm512_loadu_ps(xs[t] + o + 16), g1[t]);
                    }
                }
            } else {
                std::size_t c = 0;
                for (; c + 2 <= chunks; c += 2) {
                    __m512 q0[1], q1[1];
                    unpack(p + c * chunk_bytes, q0);
                    unpack(p + (c + 1) * chunk_bytes, q1);
                    const std::size_t o = xo + c * 16;
                    OPTIQ_UNROLL
                    for (int t = 0; t < T; ++t) {
                        g0[t] = _mm512_fmadd_ps(q0[0], _mm512_loadu_ps(xs[t] + o), g0[t]);
                        g1[t] = _mm512_fmadd_ps(q1[0], _mm512_loadu_ps(xs[t] + o + 16), g1[t]);
                    }
                }
                if (c < chunks) {
                    __m512 q0[1];
                    unpack(p + c * chunk_bytes, q0);
                    OPTIQ_UNROLL
                    for (int t = 0; t < T; ++t) g0[t] = _mm512_fmadd_ps(q0[0], _mm512_loadu_ps(xs[t] + xo + c * 16), g0[t]);
                }
            }
            const __m512 s = _mm512_set1_ps(sc[k]);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(s, _mm512_add_ps(g0[t], g1[t]), acc[t]);
        }
        // Σ_k bias_k · Σx_k, sixteen groups per FMA.
        std::size_t k = 0;
        for (; k + 16 <= gpr; k += 16) {
            const __m512 b = _mm512_loadu_ps(bi + k);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(b, _mm512_loadu_ps(xsum[t] + k), acc[t]);
        }
        if (btail != 0) {
            const __m512 b = _mm512_maskz_loadu_ps(bm, bi + k);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(b, _mm512_maskz_loadu_ps(bm, xsum[t] + k), acc[t]);
        }
        const float lb = y.bias ? y.bias[r] : 0.0f;
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) y.y[(t0 + static_cast<std::size_t>(t)) * y.ld + r] = hsum(acc[t]) + lb;
    }
}

template <class L>
OPTIQ_TARGET_AVX512 void dense(const typename L::E* w, std::size_t in, const Input& x, const Output& y, std::size_t r0,
                               std::size_t r1, std::size_t t0, std::size_t nt) noexcept {
    for (; nt >= 4; nt -= 4, t0 += 4) dense_rows<4, L>(w, in, x, y, r0, r1, t0);
    switch (nt) {
        case 3: dense_rows<3, L>(w, in, x, y, r0, r1, t0); break;
        case 2: dense_rows<2, L>(w, in, x, y, r0, r1, t0); break;
        case 1: dense_rows<1, L>(w, in, x, y, r0, r1, t0); break;
        default: break;
    }
}

template <class U>
OPTIQ_TARGET_AVX512 void affine(const U& u, const AffineWeights& w, const Input& x, const Output& y, std::size_t r0,
                                std::size_t r1, std::size_t t0, std::size_t nt) {
    for (; nt >= 4; nt -= 4, t0 += 4) affine_rows<4>(u, w, x, y, r0, r1, t0);
    switch (nt) {
        case 3: affine_rows<3>(u, w, x, y, r0, r1, t0); break;
        case 2: affine_rows<2>(u, w, x, y, r0, r1, t0); break;
        case 1: affine_rows<1>(u, w, x, y, r0, r1, t0); break;
        default: break;
    }
}

}  // namespace avx512_detail

OPTIQ_TARGET_AVX512 inline void rows(arch::avx512, const F32Weights& w, const Input& x, const Output& y, std::size_t r0,
                                     std::size_t r1, std::size_t t0, std::size_t nt) {
    avx512_detail::dense<avx512_detail::LoadF32>(w.w, w.in, x, y, r0, r1, t0, nt);
}

OPTIQ_TARGET_AVX512 inline void rows(arch::avx512, const HalfWeights& w, const Input& x, const Output& y, std::size_t r0,
                                     std::size_t r1, std::size_t t0, std::size_t nt) {
    if (w.bf16) avx512_detail::dense<avx512_detail::LoadBF16>(w.w, w.in, x, y, r0, r1, t0, nt);
    else avx512_detail::dense<avx512_detail::LoadF16>(w.w, w.in, x, y, r0, r1, t0, nt);
}

/// x must be in the order affine_nibble_chunk(arch::avx512{}, ...) names.
OPTIQ_TARGET_AVX512 inline void rows(arch::avx512, const AffineWeights& w, const Input& x, const Output& y,
                                     std::size_t r0, std::size_t r1, std::size_t t0, std::size_t nt) {
    namespace d = avx512_detail;
    // Unsupported here implies no permutation at avx2 either (its chunk needs group % 16 == 0).
    if (!affine_supported(arch::avx512{}, w.bits, w.group)) return rows(arch::avx2{}, w, x, y, r0, r1, t0, nt);
    if (w.bits == 8) d::affine(d::Unpack8{}, w, x, y, r0, r1, t0, nt);
    else if (affine_nibble_chunk(arch::avx512{}, w.bits, w.group) == 32) d::affine(d::Unpack4(), w, x, y, r0, r1, t0, nt);
    else d::affine(d::UnpackAny(w.bits), w, x, y, r0, r1, t0, nt);
}

}  // namespace optiq::backend::matmul

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // OPTIQ_SIMD_X86

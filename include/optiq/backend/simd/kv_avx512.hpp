#pragma once
// AVX-512 KV-attention kernels (arch::avx512; kv_scalar.hpp is the reference they are tested
// against). A record's vector is decoded 16 coordinates at a time straight into a register and
// used at once, never stored:
//   codes      16 codes of b bits are 2b bytes; 8 codes are exactly b bytes, so two 64-bit loads
//              (bytes [0, b) and [b, 2b)) are broadcast to the low and high four qword lanes and
//              vpsrlvq by 2m·b and (2m+1)·b puts codes 2m and 2m+1 in the two dwords of qword m
//   codebook   b ≤ 4: the whole table is one register, vpermps looks 16 codes up at once (the
//              point of TurboQuant's single Lloyd-Max table for every rotated coordinate);
//              b = 5: vpermi2ps over two registers; b ≥ 6: a gather
//   affine     vcvtdq2ps, then one FMA with the group's broadcast {scale, bias}
//   f16, bf16  vcvtph2ps / zero-extend and shift (both exact); signs: a mask blend of ±1
// dot_run keeps one accumulator per query state (≤ 4) and reduces them together at the end of a
// token (three vhaddps for four states); axpy_run walks tiles of 64 tokens with the accumulators
// of two 16-coordinate chunks for every state in registers. softmax_row uses the Cephes expf
// polynomial (about 1 ulp) and vscalefps for 2^n.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_scalar.hpp"
#include "optiq/backend/simd/kv_types.hpp"

#if defined(OPTIQ_SIMD_X86)

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge source, and its
// -Wmaybe-uninitialized flags every inlined use (GCC bug 105593, fixed in GCC 13); at -O3 some
// uses are reported as -Wuninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace optiq::backend::kv {

/// Whether the AVX-512 kernels take this coding (else they run the scalar loops).
[[nodiscard]] inline bool supported(arch::avx512, const VectorCoding& c) noexcept {
    if (c.dim == 0 || c.dim % 16 != 0) return false;
    switch (c.coding) {
        case Coding::codebook: return c.bits >= 1 && c.bits <= 8 && c.table != nullptr;
        case Coding::affine: return c.bits >= 1 && c.bits <= 8 && c.group != 0 && c.group % 16 == 0;
        case Coding::integer: return c.bits >= 1 && c.bits <= 8;
        case Coding::f16:
        case Coding::bf16:
        case Coding::f32:
        case Coding::signs: return true;
    }
    return false;
}

namespace avx512_detail {

/// Codes [16c, 16c + 16) of a b-bit stream starting at p (p = the chunk's first byte).
template <int B>
OPTIQ_TARGET_AVX512 inline __m512i unpack16(const std::uint8_t* p) noexcept {
    if constexpr (B == 8) {
        return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
        std::uint64_t lo = 0, hi = 0;
        std::memcpy(&lo, p, B);
        std::memcpy(&hi, p + B, B);
        const __m512i src = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi64(static_cast<long long>(lo)),
                                                    _mm512_set1_epi64(static_cast<long long>(hi)));
        const __m512i even = _mm512_set_epi64(6 * B, 4 * B, 2 * B, 0, 6 * B, 4 * B, 2 * B, 0);
        const __m512i odd = _mm512_add_epi64(even, _mm512_set1_epi64(B));
        const __m512i mask = _mm512_set1_epi64((1 << B) - 1);
        const __m512i e = _mm512_and_si512(_mm512_srlv_epi64(src, even), mask);
        const __m512i o = _mm512_and_si512(_mm512_srlv_epi64(src, odd), mask);
        return _mm512_or_si512(e, _mm512_slli_epi64(o, 32));
    }
}

// Decoders: d(rec, side, c) = coordinates [16c, 16c + 16) of the vector at rec (its first byte).
template <int B>
struct Codebook {
    __m512 t0, t1;
    const float* table;
    OPTIQ_TARGET_AVX512 static Codebook make(const VectorCoding& c) noexcept {
        Codebook d;
        d.table = c.table;
        d.t0 = _mm512_loadu_ps(c.table);
        d.t1 = B == 5 ? _mm512_loadu_ps(c.table + 16) : d.t0;
        return d;
    }
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const __m512i idx = unpack16<B>(rec + c * 2 * B);
        if constexpr (B <= 4) {
            return _mm512_permutexvar_ps(idx, t0);
        } else if constexpr (B == 5) {
            return _mm512_permutex2var_ps(t0, idx, t1);
        } else {
            return _mm512_i32gather_ps(idx, table, 4);
        }
    }
};

template <int B>
struct Affine {
    std::size_t group_chunks, side_offset;
    OPTIQ_TARGET_AVX512 static Affine make(const VectorCoding& c) noexcept { return {c.group / 16, c.side_offset}; }
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float* side, std::size_t c) const noexcept {
        const float* gs = side + side_offset + 2 * (c / group_chunks);
        const __m512 codes = _mm512_cvtepi32_ps(unpack16<B>(rec + c * 2 * B));
        return _mm512_fmadd_ps(codes, _mm512_set1_ps(gs[0]), _mm512_set1_ps(gs[1]));
    }
};

template <int B>
struct Integer {
    OPTIQ_TARGET_AVX512 static Integer make(const VectorCoding&) noexcept { return {}; }
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm512_cvtepi32_ps(unpack16<B>(rec + c * 2 * B));
    }
};

struct F16 {
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32 * c)));
    }
};
struct BF16 {
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32 * c));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
};
struct F32 {
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm512_loadu_ps(reinterpret_cast<const float*>(rec + 64 * c));
    }
};
struct Signs {
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        std::uint16_t bits = 0;
        std::memcpy(&bits, rec + 2 * c, 2);
        return _mm512_mask_blend_ps(static_cast<__mmask16>(bits), _mm512_set1_ps(-1.0f), _mm512_set1_ps(1.0f));
    }
};

/// Calls op(decoder) with the decoder of c's coding and bits (one switch per kernel call).
template <template <int> class D, class Op>
OPTIQ_TARGET_AVX512 void with_bits(const VectorCoding& c, const Op& op) {
    switch (c.bits) {
        case 1: op(D<1>::make(c)); break;
        case 2: op(D<2>::make(c)); break;
        case 3: op(D<3>::make(c)); break;
        case 4: op(D<4>::make(c)); break;
        case 5: op(D<5>::make(c)); break;
        case 6: op(D<6>::make(c)); break;
        case 7: op(D<7>::make(c)); break;
        default: op(D<8>::make(c)); break;
    }
}
template <class Op>
OPTIQ_TARGET_AVX512 void with_decoder(const VectorCoding& c, const Op& op) {
    switch (c.coding) {
        case Coding::codebook: with_bits<Codebook>(c, op); break;
        case Coding::affine: with_bits<Affine>(c, op); break;
        case Coding::integer: with_bits<Integer>(c, op); break;
        case Coding::f16: op(F16{}); break;
        case Coding::bf16: op(BF16{}); break;
        case Coding::f32: op(F32{}); break;
        case Coding::signs: op(Signs{}); break;
    }
}

/// [Σ a0, Σ a1, Σ a2, Σ a3].
OPTIQ_TARGET_AVX512 inline __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) noexcept {
    const __m256 x0 = _mm256_add_ps(_mm512_castps512_ps256(a0), _mm512_extractf32x8_ps(a0, 1));
    const __m256 x1 = _mm256_add_ps(_mm512_castps512_ps256(a1), _mm512_extractf32x8_ps(a1, 1));
    const __m256 x2 = _mm256_add_ps(_mm512_castps512_ps256(a2), _mm512_extractf32x8_ps(a2, 1));
    const __m256 x3 = _mm256_add_ps(_mm512_castps512_ps256(a3), _mm512_extractf32x8_ps(a3, 1));
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(x0, x1), _mm256_hadd_ps(x2, x3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

struct DotArgs {
    const Records* r;
    std::size_t word_offset, chunks;
    const TokenScale* ts;
    const float* const* q;
    std::size_t n;
    float* out;
    std::size_t os;
    bool add;
};

template <std::size_t N, class Dec>
OPTIQ_TARGET_AVX512 void dot_n(const Dec& dec, const DotArgs& a) noexcept {
    const Records& r = *a.r;
    for (std::size_t j = 0; j < r.count; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (std::size_t c = 0; c < a.chunks; ++c) {
            const __m512 y = dec(rec, side, c);
            for (std::size_t k = 0; k < N; ++k) acc[k] = _mm512_fmadd_ps(_mm512_loadu_ps(a.q[k] + 16 * c), y, acc[k]);
        }
        alignas(16) float s[4];
        _mm_store_ps(s, reduce4(acc[0], acc[1], acc[2], acc[3]));
        const float f = a.ts->at(j);
        for (std::size_t k = 0; k < N; ++k) {
            float* o = a.out + k * a.os + j;
            *o = a.add ? *o + f * s[k] : f * s[k];
        }
    }
}

struct DotOp {
    const DotArgs* a;
    template <class Dec>
    OPTIQ_TARGET_AVX512 void operator()(const Dec& dec) const noexcept {
        switch (a->n) {
            case 1: dot_n<1>(dec, *a); break;
            case 2: dot_n<2>(dec, *a); break;
            case 3: dot_n<3>(dec, *a); break;
            default: dot_n<4>(dec, *a); break;
        }
    }
};

struct AxpyArgs {
    const Records* r;
    std::size_t word_offset, chunks;
    const TokenScale* ts;
    const float* w;
    std::size_t ws, n;
    float* acc;
    std::size_t as;
};

inline constexpr std::size_t axpy_tile = 64;

/// Chunks [c0, c0 + C) of every state over tokens [j0, j1), weights wt[k][j - j0].
template <std::size_t N, std::size_t C, class Dec>
OPTIQ_TARGET_AVX512 void axpy_pass(const Dec& dec, const AxpyArgs& a, std::size_t j0, std::size_t j1, std::size_t c0,
                                   float (*wt)[axpy_tile]) noexcept {
    const Records& r = *a.r;
    __m512 acc[N][C];
    for (std::size_t k = 0; k < N; ++k)
        for (std::size_t u = 0; u < C; ++u) acc[k][u] = _mm512_loadu_ps(a.acc + k * a.as + 16 * (c0 + u));
    for (std::size_t j = j0; j < j1; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        __m512 y[C];
        for (std::size_t u = 0; u < C; ++u) y[u] = dec(rec, side, c0 + u);
        for (std::size_t k = 0; k < N; ++k) {
            const __m512 w = _mm512_set1_ps(wt[k][j - j0]);
            for (std::size_t u = 0; u < C; ++u) acc[k][u] = _mm512_fmadd_ps(w, y[u], acc[k][u]);
        }
    }
    for (std::size_t k = 0; k < N; ++k)
        for (std::size_t u = 0; u < C; ++u) _mm512_storeu_ps(a.acc + k * a.as + 16 * (c0 + u), acc[k][u]);
}

template <std::size_t N, class Dec>
OPTIQ_TARGET_AVX512 void axpy_n(const Dec& dec, const AxpyArgs& a) noexcept {
    // Two chunks per pass for four states, four for one or two: at most 8 accumulators live.
    constexpr std::size_t C = N <= 2 ? 4 : 2;
    float wt[N][axpy_tile];
    for (std::size_t j0 = 0; j0 < a.r->count; j0 += axpy_tile) {
        const std::size_t j1 = j0 + axpy_tile < a.r->count ? j0 + axpy_tile : a.r->count;
        for (std::size_t j = j0; j < j1; ++j) {
            const float f = a.ts->at(j);
            for (std::size_t k = 0; k < N; ++k) wt[k][j - j0] = a.w[k * a.ws + j] * f;
        }
        std::size_t c0 = 0;
        for (; c0 + C <= a.chunks; c0 += C) axpy_pass<N, C>(dec, a, j0, j1, c0, wt);
        for (; c0 < a.chunks; ++c0) axpy_pass<N, 1>(dec, a, j0, j1, c0, wt);
    }
}

struct AxpyOp {
    const AxpyArgs* a;
    template <class Dec>
    OPTIQ_TARGET_AVX512 void operator()(const Dec& dec) const noexcept {
        switch (a->n) {
            case 1: axpy_n<1>(dec, *a); break;
            case 2: axpy_n<2>(dec, *a); break;
            case 3: axpy_n<3>(dec, *a); break;
            default: axpy_n<4>(dec, *a); break;
        }
    }
};

/// e^x (Cephes expf: x = n ln2 + r, |r| ≤ ln2/2, a degree-7 polynomial for e^r, then 2^n).
OPTIQ_TARGET_AVX512 inline __m512 exp16(__m512 x) noexcept {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
    const __m512 n =
        _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

}  // namespace avx512_detail

OPTIQ_TARGET_AVX512 inline void dot_run(arch::avx512, const VectorCoding& c, const Records& r, const TokenScale& ts,
                                        const float* const* q, std::size_t n, float* out, std::size_t os,
                                        bool add) noexcept {
    if (!supported(arch::avx512{}, c) || n == 0 || n > max_states) {
        dot_run(arch::scalar{}, c, r, ts, q, n, out, os, add);
        return;
    }
    const avx512_detail::DotArgs a{&r, c.word_offset, c.dim / 16, &ts, q, n, out, os, add};
    avx512_detail::with_decoder(c, avx512_detail::DotOp{&a});
}

OPTIQ_TARGET_AVX512 inline void axpy_run(arch::avx512, const VectorCoding& c, const Records& r, const TokenScale& ts,
                                         const float* w, std::size_t ws, std::size_t n, float* acc,
                                         std::size_t as) noexcept {
    if (!supported(arch::avx512{}, c) || n == 0 || n > max_states) {
        axpy_run(arch::scalar{}, c, r, ts, w, ws, n, acc, as);
        return;
    }
    const avx512_detail::AxpyArgs a{&r, c.word_offset, c.dim / 16, &ts, w, ws, n, acc, as};
    avx512_detail::with_decoder(c, avx512_detail::AxpyOp{&a});
}

OPTIQ_TARGET_AVX512 inline void softmax_row(arch::avx512, float* row, std::size_t n, float scale) noexcept {
    if (n == 0) return;
    const __m512 s = _mm512_set1_ps(scale);
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    const std::size_t full = n / 16 * 16;
    const auto tail = static_cast<__mmask16>((1u << (n - full)) - 1u);
    for (std::size_t j = 0; j < full; j += 16) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(row + j), s);
        _mm512_storeu_ps(row + j, v);
        mx = _mm512_max_ps(mx, v);
    }
    if (tail != 0) {
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + full), s);
        _mm512_mask_storeu_ps(row + full, tail, v);
        mx = _mm512_mask_max_ps(mx, tail, mx, v);
    }
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 z = _mm512_setzero_ps();
    for (std::size_t j = 0; j < full; j += 16) {
        const __m512 e = avx512_detail::exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
        _mm512_storeu_ps(row + j, e);
        z = _mm512_add_ps(z, e);
    }
    if (tail != 0) {
        const __m512 e = avx512_detail::exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + full), m));
        _mm512_mask_storeu_ps(row + full, tail, e);
        z = _mm512_mask_add_ps(z, tail, z, e);
    }
    const __m512 zz = _mm512_set1_ps(_mm512_reduce_add_ps(z));
    for (std::size_t j = 0; j < full; j += 16) _mm512_storeu_ps(row + j, _mm512_div_ps(_mm512_loadu_ps(row + j), zz));
    if (tail != 0)
        _mm512_mask_storeu_ps(row + full, tail, _mm512_div_ps(_mm512_maskz_loadu_ps(tail, row + full), zz));
}

}  // namespace optiq::backend::kv

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // OPTIQ_SIMD_X86

#pragma once
// AVX2 KV-attention kernels (arch::avx2; kv_scalar.hpp is the reference they are tested against).
// The kv_avx512.hpp scheme on 8 lanes: 8 codes of b bits are exactly b bytes, one 64-bit load
// broadcast to the four qword lanes, vpsrlvq by 2m·b and (2m+1)·b; a 16-entry codebook (b = 4) is
// two registers, vpermps on each and a blend on bit 3 of the code; b ≤ 3 one vpermps; b ≥ 5 a
// gather. f16 through F16C. softmax_row uses the Cephes expf polynomial with 2^n built in the
// exponent field.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_scalar.hpp"
#include "optiq/backend/simd/kv_types.hpp"

#if defined(OPTIQ_SIMD_X86)

namespace optiq::backend::kv {

/// Whether the AVX2 kernels take this coding (else they run the scalar loops).
[[nodiscard]] inline bool supported(arch::avx2, const VectorCoding& c) noexcept {
    if (c.dim == 0 || c.dim % 8 != 0) return false;
    switch (c.coding) {
        case Coding::codebook: return c.bits >= 1 && c.bits <= 8 && c.table != nullptr;
        case Coding::affine: return c.bits >= 1 && c.bits <= 8 && c.group != 0 && c.group % 8 == 0;
        case Coding::integer: return c.bits >= 1 && c.bits <= 8;
        case Coding::f16:
        case Coding::bf16:
        case Coding::f32:
        case Coding::signs: return true;
    }
    return false;
}

namespace avx2_detail {

/// Codes [8c, 8c + 8) of a b-bit stream, p = the chunk's first byte (8 codes = b bytes).
template <int B>
OPTIQ_TARGET_AVX2 inline __m256i unpack8(const std::uint8_t* p) noexcept {
    if constexpr (B == 8) {
        return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    } else {
        const std::uint64_t v = load_bytes<B>(p);
        const __m256i src = _mm256_set1_epi64x(static_cast<long long>(v));
        const __m256i even = _mm256_set_epi64x(6 * B, 4 * B, 2 * B, 0);
        const __m256i odd = _mm256_add_epi64(even, _mm256_set1_epi64x(B));
        const __m256i mask = _mm256_set1_epi64x((1 << B) - 1);
        const __m256i e = _mm256_and_si256(_mm256_srlv_epi64(src, even), mask);
        const __m256i o = _mm256_and_si256(_mm256_srlv_epi64(src, odd), mask);
        return _mm256_or_si256(e, _mm256_slli_epi64(o, 32));
    }
}

template <int B>
struct Codebook {
    static constexpr std::size_t S = 1;
    __m256 t0, t1;
    const float* table;
    OPTIQ_TARGET_AVX2 static Codebook make(const VectorCoding& c) noexcept {
        Codebook d;
        d.table = c.table;
        d.t0 = _mm256_loadu_ps(c.table);
        d.t1 = _mm256_loadu_ps(c.table + 8);
        return d;
    }
    OPTIQ_TARGET_AVX2 __m256 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const __m256i idx = unpack8<B>(rec + c * B);
        if constexpr (B <= 3) {
            return _mm256_permutevar8x32_ps(t0, idx);
        } else if constexpr (B == 4) {
            const __m256 hi_sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));  // bit 3 -> sign bit
            return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, idx), _mm256_permutevar8x32_ps(t1, idx), hi_sel);
        } else {
            return _mm256_i32gather_ps(table, idx, 4);
        }
    }
};

template <int B>
struct Affine {
    static constexpr std::size_t S = 1;
    std::size_t group_chunks, side_offset;
    OPTIQ_TARGET_AVX2 static Affine make(const VectorCoding& c) noexcept { return {c.group / 8, c.side_offset}; }
    OPTIQ_TARGET_AVX2 __m256 operator()(const std::uint8_t* rec, const float* side, std::size_t c) const noexcept {
        const float* gs = side + side_offset + 2 * (c / group_chunks);
        const __m256 codes = _mm256_cvtepi32_ps(unpack8<B>(rec + c * B));
        return _mm256_fmadd_ps(codes, _mm256_set1_ps(gs[0]), _mm256_set1_ps(gs[1]));
    }
};

template <int B>
struct Integer {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX2 static Integer make(const VectorCoding&) noexcept { return {}; }
    OPTIQ_TARGET_AVX2 __m256 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm256_cvtepi32_ps(unpack8<B>(rec + c * B));
    }
};

struct F16 {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX2 __m256 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 16 * c)));
    }
};
struct BF16 {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX2 __m256 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 16 * c));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
};
struct F32 {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX2 __m256 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(rec + 32 * c));
    }
};
struct Signs {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX2 __m256 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const __m256i bit = _mm256_set_epi32(128, 64, 32, 16, 8, 4, 2, 1);
        const __m256i v = _mm256_and_si256(_mm256_set1_epi32(rec[c]), bit);
        const __m256 clear = _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, _mm256_setzero_si256()));
        return _mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(-1.0f), clear);
    }
};

// Split decoders for 4-bit codes (kv_avx512.hpp has the scheme): the 8 bytes of a block of 16
// coordinates widened to dwords; register 0 gets the low nibbles (coordinates 16b + 2i), register
// 1 the high ones (16b + 2i + 1). vpermps reads the low 3 bits of the index and the blend bit 3,
// so the low nibble needs no mask.
OPTIQ_TARGET_AVX2 inline __m256i widen8(const std::uint8_t* p) noexcept {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

struct SplitCodebook4 {
    static constexpr std::size_t S = 2;
    __m256 t0, t1;
    OPTIQ_TARGET_AVX2 static SplitCodebook4 make(const VectorCoding& c) noexcept {
        return {_mm256_loadu_ps(c.table), _mm256_loadu_ps(c.table + 8)};
    }
    OPTIQ_TARGET_AVX2 __m256 lookup(__m256i idx) const noexcept {
        const __m256 hi_sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));  // bit 3 -> sign bit
        return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, idx), _mm256_permutevar8x32_ps(t1, idx), hi_sel);
    }
    OPTIQ_TARGET_AVX2 void block(const std::uint8_t* rec, const float*, std::size_t b, __m256* y) const noexcept {
        const __m256i x = widen8(rec + 8 * b);
        y[0] = lookup(x);
        y[1] = lookup(_mm256_srli_epi32(x, 4));
    }
};

template <bool Scaled>
struct SplitAffine4 {
    static constexpr std::size_t S = 2;
    std::size_t group_blocks, side_offset;
    OPTIQ_TARGET_AVX2 static SplitAffine4 make(const VectorCoding& c) noexcept {
        return {Scaled ? c.group / 16 : 1, c.side_offset};
    }
    OPTIQ_TARGET_AVX2 void block(const std::uint8_t* rec, const float* side, std::size_t b, __m256* y) const noexcept {
        const __m256i x = widen8(rec + 8 * b);
        y[0] = _mm256_cvtepi32_ps(_mm256_and_si256(x, _mm256_set1_epi32(15)));
        y[1] = _mm256_cvtepi32_ps(_mm256_srli_epi32(x, 4));
        if constexpr (Scaled) {
            const float* gs = side + side_offset + 2 * (b / group_blocks);
            const __m256 sc = _mm256_set1_ps(gs[0]), bi = _mm256_set1_ps(gs[1]);
            y[0] = _mm256_fmadd_ps(y[0], sc, bi);
            y[1] = _mm256_fmadd_ps(y[1], sc, bi);
        }
    }
};

/// The largest d the split kernels take (their permuted queries and accumulators live on the stack).
inline constexpr std::size_t max_split_dim = 512;

[[nodiscard]] inline bool splits(const VectorCoding& c) noexcept {
    if (c.bits != 4 || c.dim % 16 != 0 || c.dim > max_split_dim) return false;
    if (c.coding == Coding::affine) return c.group % 16 == 0;
    return c.coding == Coding::codebook || c.coding == Coding::integer;
}

/// y[0, C) = chunks [c0, c0 + C) of the record (split decoders: C and c0 even).
template <std::size_t C, class Dec>
OPTIQ_TARGET_AVX2 inline void decode_chunks(const Dec& dec, const std::uint8_t* rec, const float* side,
                                            std::size_t c0, __m256* y) noexcept {
    if constexpr (Dec::S == 1) {
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; ++u) y[u] = dec(rec, side, c0 + u);
    } else {
        static_assert(C % Dec::S == 0);
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; u += Dec::S) dec.block(rec, side, (c0 + u) / Dec::S, y + u);
    }
}

template <template <int> class D, class Op>
OPTIQ_TARGET_AVX2 void with_bits(const VectorCoding& c, const Op& op) {
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
OPTIQ_TARGET_AVX2 void with_decoder(const VectorCoding& c, const Op& op) {
    if (splits(c)) {
        switch (c.coding) {
            case Coding::codebook: op(SplitCodebook4::make(c)); return;
            case Coding::affine: op(SplitAffine4<true>::make(c)); return;
            default: op(SplitAffine4<false>::make(c)); return;
        }
    }
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
OPTIQ_TARGET_AVX2 inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) noexcept {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
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
OPTIQ_TARGET_AVX2 void dot_n(const Dec& dec, const DotArgs& a) noexcept {
    constexpr std::size_t S = Dec::S;
    const Records& r = *a.r;
    // Split decoders: the queries in the decoder's coordinate order (once per call).
    [[maybe_unused]] alignas(32) float qs[S > 1 ? N * max_split_dim : 1];
    const float* q[N];
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k) {
        if constexpr (S > 1) {
            permute_split(a.q[k], qs + k * max_split_dim, 8 * a.chunks, S, 8, false);
            q[k] = qs + k * max_split_dim;
        } else {
            q[k] = a.q[k];
        }
    }
    for (std::size_t j = 0; j < r.count; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (std::size_t c = 0; c < a.chunks; c += S) {
            __m256 y[S];
            decode_chunks<S>(dec, rec, side, c, y);
            OPTIQ_UNROLL
            for (std::size_t u = 0; u < S; ++u)
                OPTIQ_UNROLL
                for (std::size_t k = 0; k < N; ++k)
                    acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(q[k] + 8 * (c + u)), y[u], acc[k]);
        }
        alignas(16) float s[4];
        _mm_store_ps(s, reduce4(acc[0], acc[1], acc[2], acc[3]));
        const float f = a.ts->at(j);
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) {
            float* o = a.out + k * a.os + j;
            *o = a.add ? *o + f * s[k] : f * s[k];
        }
    }
}

struct DotOp {
    const DotArgs* a;
    template <class Dec>
    OPTIQ_TARGET_AVX2 void operator()(const Dec& dec) const noexcept {
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

template <std::size_t N, std::size_t C, class Dec>
OPTIQ_TARGET_AVX2 void axpy_pass(const Dec& dec, const AxpyArgs& a, std::size_t j0, std::size_t j1, std::size_t c0,
                                 float (*wt)[axpy_tile]) noexcept {
    const Records& r = *a.r;
    __m256 acc[N][C];
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k)
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; ++u) acc[k][u] = _mm256_loadu_ps(a.acc + k * a.as + 8 * (c0 + u));
    for (std::size_t j = j0; j < j1; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        __m256 y[C];
        decode_chunks<C>(dec, rec, side, c0, y);
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) {
            const __m256 w = _mm256_set1_ps(wt[k][j - j0]);
            OPTIQ_UNROLL
            for (std::size_t u = 0; u < C; ++u) acc[k][u] = _mm256_fmadd_ps(w, y[u], acc[k][u]);
        }
    }
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k)
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; ++u) _mm256_storeu_ps(a.acc + k * a.as + 8 * (c0 + u), acc[k][u]);
}

template <std::size_t N, class Dec>
OPTIQ_TARGET_AVX2 void axpy_n(const Dec& dec, const AxpyArgs& a_in) noexcept {
    constexpr std::size_t S = Dec::S;
    constexpr std::size_t C = N <= 2 ? 4 : 2;  // at most 8 of the 16 registers hold accumulators
    // Split decoders: the accumulators in the decoder's coordinate order for the call.
    [[maybe_unused]] alignas(32) float acc_split[S > 1 ? N * max_split_dim : 1];
    AxpyArgs a = a_in;
    if constexpr (S > 1) {
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k)
            permute_split(a_in.acc + k * a_in.as, acc_split + k * max_split_dim, 8 * a.chunks, S, 8, false);
        a.acc = acc_split;
        a.as = max_split_dim;
    }
    float wt[N][axpy_tile];
    for (std::size_t j0 = 0; j0 < a.r->count; j0 += axpy_tile) {
        const std::size_t j1 = j0 + axpy_tile < a.r->count ? j0 + axpy_tile : a.r->count;
        for (std::size_t j = j0; j < j1; ++j) {
            const float f = a.ts->at(j);
            OPTIQ_UNROLL
            for (std::size_t k = 0; k < N; ++k) wt[k][j - j0] = a.w[k * a.ws + j] * f;
        }
        std::size_t c0 = 0;
        for (; c0 + C <= a.chunks; c0 += C) axpy_pass<N, C>(dec, a, j0, j1, c0, wt);
        for (; c0 < a.chunks; c0 += S) axpy_pass<N, S>(dec, a, j0, j1, c0, wt);
    }
    if constexpr (S > 1) {
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k)
            permute_split(acc_split + k * max_split_dim, a_in.acc + k * a_in.as, 8 * a.chunks, S, 8, true);
    }
}

struct AxpyOp {
    const AxpyArgs* a;
    template <class Dec>
    OPTIQ_TARGET_AVX2 void operator()(const Dec& dec) const noexcept {
        switch (a->n) {
            case 1: axpy_n<1>(dec, *a); break;
            case 2: axpy_n<2>(dec, *a); break;
            case 3: axpy_n<3>(dec, *a); break;
            default: axpy_n<4>(dec, *a); break;
        }
    }
};

/// e^x, the kv_avx512.hpp polynomial; 2^n in the exponent field (n ≥ −126: below, e^x < 2^−126
/// is flushed to 0, which a softmax weight of a term e^−87 below the maximum can afford).
OPTIQ_TARGET_AVX2 inline __m256 exp8(__m256 x) noexcept {
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

OPTIQ_TARGET_AVX2 inline float hsum8(__m256 v) noexcept {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
OPTIQ_TARGET_AVX2 inline float hmax8(__m256 v) noexcept {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

}  // namespace avx2_detail

OPTIQ_TARGET_AVX2 inline void dot_run(arch::avx2, const VectorCoding& c, const Records& r, const TokenScale& ts,
                                      const float* const* q, std::size_t n, float* out, std::size_t os,
                                      bool add) noexcept {
    if (!supported(arch::avx2{}, c) || n == 0 || n > max_states) {
        dot_run(arch::scalar{}, c, r, ts, q, n, out, os, add);
        return;
    }
    const avx2_detail::DotArgs a{&r, c.word_offset, c.dim / 8, &ts, q, n, out, os, add};
    avx2_detail::with_decoder(c, avx2_detail::DotOp{&a});
}

OPTIQ_TARGET_AVX2 inline void axpy_run(arch::avx2, const VectorCoding& c, const Records& r, const TokenScale& ts,
                                       const float* w, std::size_t ws, std::size_t n, float* acc,
                                       std::size_t as) noexcept {
    if (!supported(arch::avx2{}, c) || n == 0 || n > max_states) {
        axpy_run(arch::scalar{}, c, r, ts, w, ws, n, acc, as);
        return;
    }
    const avx2_detail::AxpyArgs a{&r, c.word_offset, c.dim / 8, &ts, w, ws, n, acc, as};
    avx2_detail::with_decoder(c, avx2_detail::AxpyOp{&a});
}

OPTIQ_TARGET_AVX2 inline void softmax_row(arch::avx2, float* row, std::size_t n, float scale) noexcept {
    if (n == 0) return;
    const std::size_t full = n / 8 * 8;
    const __m256 s = _mm256_set1_ps(scale);
    __m256 mx = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::size_t j = 0; j < full; j += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(row + j), s);
        _mm256_storeu_ps(row + j, v);
        mx = _mm256_max_ps(mx, v);
    }
    float m = avx2_detail::hmax8(mx);
    for (std::size_t j = full; j < n; ++j) {
        row[j] *= scale;
        m = row[j] > m ? row[j] : m;
    }
    const __m256 mv = _mm256_set1_ps(m);
    __m256 z = _mm256_setzero_ps();
    for (std::size_t j = 0; j < full; j += 8) {
        const __m256 e = avx2_detail::exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), mv));
        _mm256_storeu_ps(row + j, e);
        z = _mm256_add_ps(z, e);
    }
    float zs = avx2_detail::hsum8(z);
    for (std::size_t j = full; j < n; ++j) {
        row[j] = std::exp(row[j] - m);
        zs += row[j];
    }
    const __m256 zv = _mm256_set1_ps(zs);
    for (std::size_t j = 0; j < full; j += 8) _mm256_storeu_ps(row + j, _mm256_div_ps(_mm256_loadu_ps(row + j), zv));
    for (std::size_t j = full; j < n; ++j) row[j] = row[j] / zs;
}

}  // namespace optiq::backend::kv

#endif  // OPTIQ_SIMD_X86

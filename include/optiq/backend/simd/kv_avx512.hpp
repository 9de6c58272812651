#pragma once
// AVX-512 KV-attention kernels (arch::avx512; kv_scalar.hpp is the reference they are tested
// against). A record's vector is decoded 16 coordinates at a time straight into a register and
// used at once, never stored:
//   codes      16 codes of b bits are 2b bytes: exact loads, broadcast to the four 128-bit
//              lanes, vpshufb brings each code's one or two bytes into its dword, vpsrlvd and a
//              mask finish; 2- and 4-bit codes of a whole block go through split decoders (below)
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
#include "optiq/backend/simd/kv_avx512_int8.hpp"
#include "optiq/backend/simd/kv_int8.hpp"
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

/// vpshufb selectors and vpsrlvd shifts that put code i of 16 b-bit codes (2b bytes) in dword i:
/// the one or two bytes holding it, shifted down by its bit offset.
template <int B>
struct UnpackTables {
    alignas(64) std::uint8_t select[64];
    alignas(64) std::uint32_t shift[16];
};
template <int B>
inline constexpr UnpackTables<B> unpack_tables = [] {
    UnpackTables<B> t{};
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned bit = B * i, byte = bit / 8, used = bit % 8 + B > 8 ? 2 : 1;
        for (unsigned j = 0; j < 4; ++j) t.select[4 * i + j] = static_cast<std::uint8_t>(j < used ? byte + j : 0x80u);
        t.shift[i] = bit % 8;
    }
    return t;
}();

/// Codes [16c, 16c + 16) of a b-bit stream starting at p (p = the chunk's first byte). Exactly
/// the 2b bytes are read (a record may end the buffer) in loads of 1-8 bytes combined in
/// registers: a b-byte memcpy makes a stack round trip that stalls store forwarding, and a
/// byte-masked vmovdqu8 is as slow on AMD Zen 4.
template <int B>
OPTIQ_TARGET_AVX512 inline __m512i unpack16(const std::uint8_t* p) noexcept {
    if constexpr (B == 8) {
        return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
        __m128i bytes;
        if constexpr (2 * B < 8) {
            bytes = _mm_cvtsi64_si128(static_cast<long long>(load_bytes<2 * B>(p)));
        } else if constexpr (2 * B == 8) {
            bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        } else {
            bytes = _mm_insert_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)),
                                     static_cast<long long>(load_bytes<2 * B - 8>(p + 8)), 1);
        }
        const __m512i v =
            _mm512_shuffle_epi8(_mm512_broadcast_i32x4(bytes), _mm512_load_si512(unpack_tables<B>.select));
        return _mm512_and_si512(_mm512_srlv_epi32(v, _mm512_load_si512(unpack_tables<B>.shift)),
                                _mm512_set1_epi32((1 << B) - 1));
    }
}

// Decoders: d(rec, side, c) = coordinates [16c, 16c + 16) of the vector at rec (its first byte).
template <int B>
struct Codebook {
    static constexpr std::size_t S = 1;
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
    static constexpr std::size_t S = 1;
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
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX512 static Integer make(const VectorCoding&) noexcept { return {}; }
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm512_cvtepi32_ps(unpack16<B>(rec + c * 2 * B));
    }
};

struct F16 {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32 * c)));
    }
};
struct BF16 {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32 * c));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
};
struct F32 {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return _mm512_loadu_ps(reinterpret_cast<const float*>(rec + 64 * c));
    }
};
struct Signs {
    static constexpr std::size_t S = 1;
    OPTIQ_TARGET_AVX512 __m512 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        std::uint16_t bits = 0;
        std::memcpy(&bits, rec + 2 * c, 2);
        return _mm512_mask_blend_ps(static_cast<__mmask16>(bits), _mm512_set1_ps(-1.0f), _mm512_set1_ps(1.0f));
    }
};

// Split decoders (S > 1 registers per block): the 16 bytes of a block widened to dwords, so dword
// i holds codes S·i .. S·i + S − 1 of the block, and register s gets code S·i + s of every dword
// (a shift; vpermps reads only the low 4 bits of an index, so the codebook needs no mask). The
// registers hold the block's coordinates interleaved: lane i of register s is coordinate
// 16·S·b + S·i + s. The kernels permute the queries (dot) or the accumulators (axpy) to match
// once per call, so 4-bit codes cost one widening load, one shift and two lookups per 32
// coordinates (instead of a general unpack per 16), 2-bit codes one load, three shifts and four
// lookups per 64, 3-bit codebook codes (SplitCodebook3) one load, two permutes, seven shifts and
// eight lookups per 128.
OPTIQ_TARGET_AVX512 inline __m512i widen16(const std::uint8_t* p) noexcept {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

/// 16-entry register of a 2^B-entry codebook repeated (entry i = table[i mod 2^B]), so a
/// lookup may ignore the bits above a code.
template <int B>
OPTIQ_TARGET_AVX512 inline __m512 repeated_table(const float* table) noexcept {
    alignas(64) float t[16];
    for (int i = 0; i < 16; ++i) t[i] = table[i & ((1 << B) - 1)];
    return _mm512_load_ps(t);
}

template <int B>
struct SplitCodebook {
    static_assert(B == 2 || B == 4);
    static constexpr std::size_t S = 8 / B;
    __m512 t;
    OPTIQ_TARGET_AVX512 static SplitCodebook make(const VectorCoding& c) noexcept { return {repeated_table<B>(c.table)}; }
    OPTIQ_TARGET_AVX512 void block(const std::uint8_t* rec, const float*, std::size_t b, __m512* y) const noexcept {
        const __m512i x = widen16(rec + 16 * b);
        y[0] = _mm512_permutexvar_ps(x, t);
        OPTIQ_UNROLL
        for (std::size_t s = 1; s < S; ++s)
            y[s] = _mm512_permutexvar_ps(_mm512_srli_epi32(x, static_cast<unsigned>(B * s)), t);
    }
};

/// 3-bit codebook codes 128 at a time (S = 8): the block's 48 bytes in two loads, vpermd
/// gives each 128-bit lane its 12 bytes, vpshufb each dword 3 bytes = 8 codes; register s is then
/// (x >> 3s) looked up in the table repeated twice (vpermps reads 4 bits, the code has 3).
struct SplitCodebook3 {
    static constexpr std::size_t S = 8;
    __m512 t;
    __m512i lanes, bytes;
    OPTIQ_TARGET_AVX512 static SplitCodebook3 make(const VectorCoding& c) noexcept {
        alignas(64) std::uint8_t sel[64];
        for (unsigned i = 0; i < 64; ++i) {
            const unsigned j = (i % 16) / 4, k = i % 4;
            sel[i] = static_cast<std::uint8_t>(k < 3 ? 3 * j + k : 0x80u);
        }
        return {repeated_table<3>(c.table),
                _mm512_set_epi32(0, 11, 10, 9, 0, 8, 7, 6, 0, 5, 4, 3, 0, 2, 1, 0),
                _mm512_load_si512(sel)};
    }
    OPTIQ_TARGET_AVX512 void block(const std::uint8_t* rec, const float*, std::size_t b, __m512* y) const noexcept {
        const std::uint8_t* p = rec + 48 * b;
        const __m512i raw = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32))), 1);
        const __m512i x = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(lanes, raw), bytes);
        y[0] = _mm512_permutexvar_ps(x, t);
        OPTIQ_UNROLL
        for (std::size_t s = 1; s < S; ++s)
            y[s] = _mm512_permutexvar_ps(_mm512_srli_epi32(x, static_cast<unsigned>(3 * s)), t);
    }
};

/// Split affine (and, with unit scale and zero bias, integer) codes; a block lies in one group.
template <int B, bool Scaled>
struct SplitAffine {
    static_assert(B == 2 || B == 4);
    static constexpr std::size_t S = 8 / B;
    std::size_t group_blocks, side_offset;
    OPTIQ_TARGET_AVX512 static SplitAffine make(const VectorCoding& c) noexcept {
        return {Scaled ? c.group / (16 * S) : 1, c.side_offset};
    }
    OPTIQ_TARGET_AVX512 void block(const std::uint8_t* rec, const float* side, std::size_t b,
                                   __m512* y) const noexcept {
        const __m512i x = widen16(rec + 16 * b);
        const __m512i mask = _mm512_set1_epi32((1 << B) - 1);
        OPTIQ_UNROLL
        for (std::size_t s = 0; s < S; ++s) {
            const __m512i v = s + 1 == S ? _mm512_srli_epi32(x, static_cast<unsigned>(B * s))
                                         : _mm512_and_si512(_mm512_srli_epi32(x, static_cast<unsigned>(B * s)), mask);
            y[s] = _mm512_cvtepi32_ps(v);
        }
        if constexpr (Scaled) {
            const float* gs = side + side_offset + 2 * (b / group_blocks);
            const __m512 sc = _mm512_set1_ps(gs[0]), bi = _mm512_set1_ps(gs[1]);
            OPTIQ_UNROLL
            for (std::size_t s = 0; s < S; ++s) y[s] = _mm512_fmadd_ps(y[s], sc, bi);
        }
    }
};
template <int B>
using SplitScaled = SplitAffine<B, true>;
template <int B>
using SplitInteger = SplitAffine<B, false>;

/// The largest d the split kernels take (their permuted queries and accumulators live on the stack).
inline constexpr std::size_t max_split_dim = 512;

/// Whether c's vectors can be decoded by a split decoder (S registers per block of 16·S coordinates).
[[nodiscard]] inline std::size_t split_of(const VectorCoding& c) noexcept {
    if (c.bits == 3) return c.coding == Coding::codebook && c.dim % 128 == 0 && c.dim <= max_split_dim ? 8 : 1;
    if (c.bits != 2 && c.bits != 4) return 1;
    const std::size_t s = 8 / static_cast<std::size_t>(c.bits), block = 16 * s;
    if (c.dim % block != 0 || c.dim > max_split_dim) return 1;
    if (c.coding == Coding::affine && c.group % block != 0) return 1;
    return c.coding == Coding::codebook || c.coding == Coding::affine || c.coding == Coding::integer ? s : 1;
}

/// y[0, C) = chunks [c0, c0 + C) of the record (split decoders: C and c0 multiples of S).
template <std::size_t C, class Dec>
OPTIQ_TARGET_AVX512 inline void decode_chunks(const Dec& dec, const std::uint8_t* rec, const float* side,
                                              std::size_t c0, __m512* y) noexcept {
    if constexpr (Dec::S == 1) {
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; ++u) y[u] = dec(rec, side, c0 + u);
    } else {
        static_assert(C % Dec::S == 0);
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; u += Dec::S) dec.block(rec, side, (c0 + u) / Dec::S, y + u);
    }
}

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
    if (split_of(c) > 1) {
        const bool four = c.bits == 4;
        switch (c.coding) {
            case Coding::codebook:
                if (c.bits == 3) op(SplitCodebook3::make(c));
                else four ? op(SplitCodebook<4>::make(c)) : op(SplitCodebook<2>::make(c));
                return;
            case Coding::affine: four ? op(SplitScaled<4>::make(c)) : op(SplitScaled<2>::make(c)); return;
            default: four ? op(SplitInteger<4>::make(c)) : op(SplitInteger<2>::make(c)); return;
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
    constexpr std::size_t S = Dec::S;
    const Records& r = *a.r;
    // Split decoders: the queries in the decoder's coordinate order (once per call).
    [[maybe_unused]] alignas(64) float qs[S > 1 ? N * max_split_dim : 1];
    const float* q[N];
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k) {
        if constexpr (S > 1) {
            permute_split(a.q[k], qs + k * max_split_dim, 16 * a.chunks, S, 16, false);
            q[k] = qs + k * max_split_dim;
        } else {
            q[k] = a.q[k];
        }
    }
    for (std::size_t j = 0; j < r.count; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (std::size_t c = 0; c < a.chunks; c += S) {
            __m512 y[S];
            decode_chunks<S>(dec, rec, side, c, y);
            OPTIQ_UNROLL
            for (std::size_t u = 0; u < S; ++u)
                OPTIQ_UNROLL
                for (std::size_t k = 0; k < N; ++k)
                    acc[k] = _mm512_fmadd_ps(_mm512_loadu_ps(q[k] + 16 * (c + u)), y[u], acc[k]);
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
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k)
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; ++u) acc[k][u] = _mm512_loadu_ps(a.acc + k * a.as + 16 * (c0 + u));
    for (std::size_t j = j0; j < j1; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        __m512 y[C];
        decode_chunks<C>(dec, rec, side, c0, y);
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) {
            const __m512 w = _mm512_set1_ps(wt[k][j - j0]);
            OPTIQ_UNROLL
            for (std::size_t u = 0; u < C; ++u) acc[k][u] = _mm512_fmadd_ps(w, y[u], acc[k][u]);
        }
    }
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k)
        OPTIQ_UNROLL
        for (std::size_t u = 0; u < C; ++u) _mm512_storeu_ps(a.acc + k * a.as + 16 * (c0 + u), acc[k][u]);
}

template <std::size_t N, class Dec>
OPTIQ_TARGET_AVX512 void axpy_n(const Dec& dec, const AxpyArgs& a_in) noexcept {
    // Two chunks per pass for four states, four for one or two: at most 8 accumulators live
    // (split decoders: at least one block, S chunks, per pass: at most 16).
    constexpr std::size_t S = Dec::S;
    if constexpr (S == 8 && N > 2) {
        // A block of 8 registers for each of N > 2 states would not fit in the 32: two passes.
        AxpyArgs hi = a_in;
        hi.w += 2 * a_in.ws;
        hi.acc += 2 * a_in.as;
        axpy_n<2>(dec, a_in);
        axpy_n<N - 2>(dec, hi);
        return;
    }
    constexpr std::size_t C = (N <= 2 ? 4 : 2) > S ? (N <= 2 ? 4 : 2) : S;
    // Split decoders: the accumulators in the decoder's coordinate order for the call.
    [[maybe_unused]] alignas(64) float acc_split[S > 1 ? N * max_split_dim : 1];
    AxpyArgs a = a_in;
    if constexpr (S > 1) {
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k)
            permute_split(a_in.acc + k * a_in.as, acc_split + k * max_split_dim, 16 * a.chunks, S, 16, false);
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
            permute_split(acc_split + k * max_split_dim, a_in.acc + k * a_in.as, 16 * a.chunks, S, 16, true);
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
    if (int8_coding(c) && arch::has_avx512_vnni()) {
        dot_run_int8(c, r, ts, q, n, out, os, add);
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
    if (int8_coding(c) && arch::has_avx512_vnni()) {
        axpy_run_int8(c, r, ts, w, ws, n, acc, as);
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
    // Times 1/Z (within an ulp of dividing, as the kernel tests hold): a division per 16 probabilities
    // cost as much as the exponentials.
    const __m512 rz = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(z));
    for (std::size_t j = 0; j < full; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), rz));
    if (tail != 0)
        _mm512_mask_storeu_ps(row + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + full), rz));
}

}  // namespace optiq::backend::kv

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // OPTIQ_SIMD_X86

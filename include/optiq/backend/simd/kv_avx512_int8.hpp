#pragma once
// AVX-512 VNNI kernels of the int8 rule (kv_int8.hpp) for 4-bit codebook records; dot_run and
// axpy_run of kv_avx512.hpp call them when a coding asks for int8 and the CPU has VNNI.
//
// A record's 128 codes per 64 bytes: the low nibbles are the even coordinates, the high nibbles
// the odd ones, so a mask (and a shift) and one vpshufb (the 16 int8 centroids in every 128-bit
// lane) give 64 coordinates as bytes, a "plane". Both kernels rearrange the raw bytes of four
// tokens first and look the nibbles up afterwards (half the shuffles of rearranging planes).
//   keys    vpdpbusd multiplies unsigned by signed bytes: the centroids go in as c8 + 128 and
//           128 · Σ q8 is subtracted once per query. Four tokens at a time, their code bytes are
//           transposed by 128-bit blocks (eight vshufi64x2 per 64 bytes) before the lookup, so
//           128-bit lane i of every accumulator belongs to token i: a token costs 2 vpdpbusd per
//           query and 128 coordinates, and 4 tokens x 4 queries reduce in six unpacks and three adds.
//   values  4 tokens' bytes are interleaved (vpunpck{l,h}bw, then wd), so each dword lane holds one
//           byte position of 4 tokens, i.e. one coordinate of each plane after the lookup, and
//           vpdpbusd adds w8 · c8 of all four at once (the query's 4 weights broadcast); dword lane
//           4L + i of register u holds plane byte 16L + 4u + i. Int32 sums are turned to floats
//           once per tile of 64 tokens.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_int8.hpp"
#include "optiq/backend/simd/kv_types.hpp"

#if defined(OPTIQ_SIMD_X86)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace optiq::backend::kv::avx512_int8_detail {

/// The 64-byte chunk of codes at p (Half: 32 bytes, d % 128 = 64, zero-extended).
template <bool Half>
OPTIQ_TARGET_AVX512_VNNI inline __m512i raw_chunk(const std::uint8_t* p) noexcept {
    if constexpr (Half) return _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    else return _mm512_loadu_si512(p);
}

/// Each byte's low (even coordinate) or high (odd coordinate) nibble through lut.
OPTIQ_TARGET_AVX512_VNNI inline __m512i low_codes(__m512i x, __m512i lut) noexcept {
    return _mm512_shuffle_epi8(lut, _mm512_and_si512(x, _mm512_set1_epi8(0x0f)));
}
OPTIQ_TARGET_AVX512_VNNI inline __m512i high_codes(__m512i x, __m512i lut) noexcept {
    return _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(x, 4), _mm512_set1_epi8(0x0f)));
}

/// Stands in for the records past a run's end in a group of 4 (weight 0).
alignas(64) inline constexpr std::uint8_t zero_record[max_int8_dim / 2] = {};

/// ts(j0 + i) for i < n (n ≤ 16), 0 past n.
OPTIQ_TARGET_AVX512_VNNI inline __m512 token_scales(const TokenScale& ts, std::size_t j0, std::size_t n) noexcept {
    const auto m = static_cast<__mmask16>((1u << n) - 1u);
    if (ts.a != nullptr && ts.b == nullptr && ts.stride == 1)
        return _mm512_mul_ps(_mm512_maskz_loadu_ps(m, ts.a + j0), _mm512_set1_ps(ts.factor));
    alignas(64) float f[16] = {};
    for (std::size_t i = 0; i < n; ++i) f[i] = ts.at(j0 + i);
    return _mm512_load_ps(f);
}

template <std::size_t N>
OPTIQ_TARGET_AVX512_VNNI void dot(const VectorCoding& c, const Records& r, const TokenScale& ts,
                                  const float* const* q, float* out, std::size_t os, bool add) noexcept {
    const Int8Table t = int8_table(c.table);
    alignas(16) std::uint8_t u8[16];
    for (int i = 0; i < 16; ++i) u8[i] = static_cast<std::uint8_t>(t.c8[i] + 128);
    const __m512i lut = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(u8)));
    const std::size_t chunks = (c.dim + 127) / 128;
    const bool half = c.dim % 128 != 0;
    // Each query at 8 bits, as broadcasts: qb[k][(2 ch + plane) 4 + b] holds bytes 16b .. 16b + 15
    // of that plane of query k in all four 128-bit lanes.
    alignas(64) std::int8_t qb[N][2 * max_int8_dim / 16][64];
    float qt[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::int32_t corr[4] = {0, 0, 0, 0};
    for (std::size_t k = 0; k < N; ++k) {
        std::int8_t q8[max_int8_dim];
        qt[k] = quantize_s8(q[k], c.dim, q8) * t.step;
        std::int8_t planes[max_int8_dim];  // [chunk][plane][64]
        std::memset(planes, 0, 128 * chunks);
        std::int32_t sum = 0;
        for (std::size_t i = 0; i < c.dim; ++i) {
            planes[128 * (i / 128) + 64 * (i % 2) + (i % 128) / 2] = q8[i];
            sum += q8[i];
        }
        corr[k] = 128 * sum;
        for (std::size_t b = 0; b < 8 * chunks; ++b)
            for (std::size_t l = 0; l < 4; ++l) std::memcpy(qb[k][b] + 16 * l, planes + 16 * b, 16);
    }
    for (std::size_t j0 = 0; j0 < r.count; j0 += 16) {
        const std::size_t n = r.count - j0 < 16 ? r.count - j0 : 16;
        // The norms are a stream of their own, one line per 16 tokens: fetched 8 blocks ahead.
        if (ts.a != nullptr) _mm_prefetch(reinterpret_cast<const char*>(ts.a + (j0 + 128) * ts.stride), _MM_HINT_T0);
        // Block of 16 tokens: dword 4i + k of dots is query k's integer dot with token i. Four
        // tokens at a time: their planes transposed by 128-bit blocks (register b holds block b
        // of each token, token i in lane i), so every accumulator lane belongs to one token and
        // the four queries' sums reduce together in a few unpacks.
        alignas(64) std::int32_t dots[64];
        for (std::size_t g = 0; 4 * g < n; ++g) {
            const std::uint8_t* rec[4];
            OPTIQ_UNROLL
            for (std::size_t i = 0; i < 4; ++i)
                rec[i] = 4 * g + i < n ? reinterpret_cast<const std::uint8_t*>(r.words + (j0 + 4 * g + i) * r.word_stride +
                                                                                c.word_offset)
                                       : zero_record;
            __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                              _mm512_setzero_si512()};
            // Records 64 tokens ahead (about 10% faster than the hardware prefetcher alone on AMD Zen 4).
            OPTIQ_UNROLL
            for (std::size_t i = 0; i < 4; ++i)
                _mm_prefetch(reinterpret_cast<const char*>(r.words + (j0 + 4 * g + i + 64) * r.word_stride), _MM_HINT_T0);
            for (std::size_t ch = 0; ch < chunks; ++ch) {
                const bool h = half && ch + 1 == chunks;
                __m512i x[4];
                OPTIQ_UNROLL
                for (std::size_t i = 0; i < 4; ++i)
                    x[i] = h ? raw_chunk<true>(rec[i] + 64 * ch) : raw_chunk<false>(rec[i] + 64 * ch);
                // The raw bytes transposed by 128-bit blocks (z[b] lane i = token i's bytes 16b..16b+15),
                // then looked up: 8 shuffles and 8 lookups per 4 tokens and 128 coordinates.
                const __m512i a = _mm512_shuffle_i64x2(x[0], x[1], 0x44), b = _mm512_shuffle_i64x2(x[0], x[1], 0xEE);
                const __m512i cc = _mm512_shuffle_i64x2(x[2], x[3], 0x44), d = _mm512_shuffle_i64x2(x[2], x[3], 0xEE);
                const __m512i z[4] = {_mm512_shuffle_i64x2(a, cc, 0x88), _mm512_shuffle_i64x2(a, cc, 0xDD),
                                      _mm512_shuffle_i64x2(b, d, 0x88), _mm512_shuffle_i64x2(b, d, 0xDD)};
                const std::size_t blocks = h ? 2 : 4;  // a half chunk is 32 bytes
                OPTIQ_UNROLL
                for (std::size_t bl = 0; bl < 4; ++bl) {
                    if (bl >= blocks) continue;
                    const __m512i lo = low_codes(z[bl], lut), hi = high_codes(z[bl], lut);
                    OPTIQ_UNROLL
                    for (std::size_t k = 0; k < N; ++k) {
                        acc[k] = _mm512_dpbusd_epi32(acc[k], lo, _mm512_load_si512(qb[k][(2 * ch) * 4 + bl]));
                        acc[k] = _mm512_dpbusd_epi32(acc[k], hi, _mm512_load_si512(qb[k][(2 * ch + 1) * 4 + bl]));
                    }
                }
            }
            const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[0], acc[1]), _mm512_unpackhi_epi32(acc[0], acc[1]));
            const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(acc[2], acc[3]), _mm512_unpackhi_epi32(acc[2], acc[3]));
            _mm512_store_si512(dots + 16 * g,
                               _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23)));
        }
        for (std::size_t g = (n + 3) / 4; g < 4; ++g) _mm512_store_si512(dots + 16 * g, _mm512_setzero_si512());
        const __m512 f = token_scales(ts, j0, n);
        const auto m = static_cast<__mmask16>((1u << n) - 1u);
        const __m512i d0 = _mm512_load_si512(dots), d1 = _mm512_load_si512(dots + 16),
                      d2 = _mm512_load_si512(dots + 32), d3 = _mm512_load_si512(dots + 48);
        for (std::size_t k = 0; k < N; ++k) {
            // Query k's 16 dots: dwords k, 4 + k, ... of the four registers.
            const __m512i idx = _mm512_add_epi32(_mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0),
                                                 _mm512_set1_epi32(static_cast<int>(k)));
            const __m512i lo = _mm512_permutex2var_epi32(d0, idx, d1), hi = _mm512_permutex2var_epi32(d2, idx, d3);
            const __m512i x = _mm512_sub_epi32(_mm512_inserti64x4(lo, _mm512_castsi512_si256(hi), 1),
                                               _mm512_set1_epi32(corr[k]));
            const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(x), _mm512_set1_ps(qt[k])), f);
            float* o = out + k * os + j0;
            _mm512_mask_storeu_ps(o, m, add ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), v) : v);
        }
    }
}

/// Half Hi2 of the byte positions of the chunk at `offset` over one tile: out[k][2v + pl] = the int32
/// sums over tokens [0, m) of w8[k][j] · c8 for plane pl (even / odd coordinates) and register
/// u = 2·Hi2 + v of the file comment's layout. The raw bytes of four tokens are interleaved first
/// (4 unpacks), then looked up (4 vpshufb): half the shuffles of interleaving decoded planes.
template <std::size_t N, bool Half, bool Hi2>
OPTIQ_TARGET_AVX512_VNNI inline void tile_pass(const std::uint8_t* const* rec, std::size_t m, std::size_t offset,
                                               const std::uint8_t (*w8)[int8_tile], __m512i lut,
                                               __m512i (*out)[4]) noexcept {
    // Local accumulators (out may alias the byte arrays as far as the compiler knows: it would
    // keep them in memory), copied out at the end.
    __m512i a[N][4];
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k) {
        OPTIQ_UNROLL
        for (int u = 0; u < 4; ++u) a[k][u] = _mm512_setzero_si512();
    }
    for (std::size_t j = 0; j < m; j += 4) {
        const __m512i x0 = raw_chunk<Half>(rec[j] + offset), x1 = raw_chunk<Half>(rec[j + 1] + offset);
        const __m512i x2 = raw_chunk<Half>(rec[j + 2] + offset), x3 = raw_chunk<Half>(rec[j + 3] + offset);
        const __m512i p01 = Hi2 ? _mm512_unpackhi_epi8(x0, x1) : _mm512_unpacklo_epi8(x0, x1);
        const __m512i p23 = Hi2 ? _mm512_unpackhi_epi8(x2, x3) : _mm512_unpacklo_epi8(x2, x3);
        const __m512i y0 = _mm512_unpacklo_epi16(p01, p23), y1 = _mm512_unpackhi_epi16(p01, p23);
        const __m512i e0 = low_codes(y0, lut), o0 = high_codes(y0, lut);
        const __m512i e1 = low_codes(y1, lut), o1 = high_codes(y1, lut);
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) {
            std::int32_t quad;
            std::memcpy(&quad, w8[k] + j, 4);
            const __m512i wq = _mm512_set1_epi32(quad);
            a[k][0] = _mm512_dpbusd_epi32(a[k][0], wq, e0);
            a[k][1] = _mm512_dpbusd_epi32(a[k][1], wq, o0);
            a[k][2] = _mm512_dpbusd_epi32(a[k][2], wq, e1);
            a[k][3] = _mm512_dpbusd_epi32(a[k][3], wq, o1);
        }
    }
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k) {
        OPTIQ_UNROLL
        for (int u = 0; u < 4; ++u) out[k][u] = a[k][u];
    }
}

template <std::size_t N>
OPTIQ_TARGET_AVX512_VNNI void axpy(const VectorCoding& c, const Records& r, const TokenScale& ts, const float* w,
                                   std::size_t ws, float* acc, std::size_t as) noexcept {
    const Int8Table t = int8_table(c.table);
    alignas(16) std::int8_t s8[16];
    std::memcpy(s8, t.c8, 16);
    const __m512i lut = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(s8)));
    const std::size_t chunks = (c.dim + 127) / 128;
    const bool half = c.dim % 128 != 0;
    // Sums in the kernel's order: [chunk][plane][register u][lane], mapped back at the end.
    alignas(64) float sums[N][max_int8_dim];
    for (std::size_t k = 0; k < N; ++k) std::memset(sums[k], 0, sizeof(float) * 128 * chunks);
    for (std::size_t j0 = 0; j0 < r.count; j0 += int8_tile) {
        const std::size_t m = r.count - j0 < int8_tile ? r.count - j0 : int8_tile;
        alignas(64) std::uint8_t w8[N][int8_tile];
        float step[N];
        bool exact[N];
        alignas(64) float f[int8_tile];
        for (std::size_t i = 0; i < m; i += 16)
            _mm512_store_ps(f + i, token_scales(ts, j0 + i, m - i < 16 ? m - i : 16));
        for (std::size_t k = 0; k < N; ++k) {
            // quantize_u8 of w · ts, vectorised (the same products, rounding and saturation).
            alignas(64) float wt[int8_tile];
            __m512 mx = _mm512_setzero_ps();
            __mmask16 bad = 0;
            for (std::size_t i = 0; i < m; i += 16) {
                const auto mk = static_cast<__mmask16>(m - i < 16 ? (1u << (m - i)) - 1u : 0xFFFFu);
                const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, w + k * ws + j0 + i), _mm512_load_ps(f + i));
                _mm512_store_ps(wt + i, v);
                // not (v >= 0) catches negatives and NaN; v = +inf is caught by the max below
                bad |= static_cast<__mmask16>(mk & ~_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ));
                mx = _mm512_max_ps(mx, v);
            }
            const float wmax = _mm512_reduce_max_ps(mx);
            exact[k] = bad != 0 || !(wmax <= std::numeric_limits<float>::max());
            std::memset(w8[k], 0, int8_tile);
            if (exact[k]) {  // the reference's exact way for this tile and query
                step[k] = 0.0f;
                for (std::size_t j = 0; j < m; ++j) {
                    const std::uint32_t* rec = r.words + (j0 + j) * r.word_stride + c.word_offset;
                    for (std::size_t i = 0; i < c.dim; ++i) acc[k * as + i] += wt[j] * c.table[int8_detail::code4(rec, i)];
                }
                continue;
            }
            const __m512 inv = _mm512_set1_ps(wmax > 0.0f ? 255.0f / wmax : 0.0f);
            for (std::size_t i = 0; i < m; i += 16)
                _mm_storeu_si128(reinterpret_cast<__m128i*>(w8[k] + i),
                                 _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(wt + i), inv))));
            for (std::size_t i = m; i < int8_tile; ++i) w8[k][i] = 0;
            step[k] = wmax / 255.0f * t.step;
        }
        // The tile's records; past the run's end (up to a multiple of 4) a zero record, weight 0.
        const std::uint8_t* rec[int8_tile];
        for (std::size_t j = 0; j < int8_tile; ++j)
            rec[j] = j < m ? reinterpret_cast<const std::uint8_t*>(r.words + (j0 + j) * r.word_stride + c.word_offset)
                           : zero_record;
        if (ts.a != nullptr) _mm_prefetch(reinterpret_cast<const char*>(ts.a + (j0 + 2 * int8_tile) * ts.stride), _MM_HINT_T0);
        // The next tile's records (about 10% faster than the hardware prefetcher alone on AMD Zen 4).
        for (std::size_t j = 0; j < m; ++j)
            _mm_prefetch(reinterpret_cast<const char*>(r.words + (j0 + j + int8_tile) * r.word_stride), _MM_HINT_T0);
        for (std::size_t ch = 0; ch < chunks; ++ch) {
            const bool h = half && ch + 1 == chunks;
            for (int hi2 = 0; hi2 < 2; ++hi2) {
                __m512i a[N][4];
                const std::size_t offset = 64 * ch;
                if (h) hi2 != 0 ? tile_pass<N, true, true>(rec, m, offset, w8, lut, a)
                                : tile_pass<N, true, false>(rec, m, offset, w8, lut, a);
                else hi2 != 0 ? tile_pass<N, false, true>(rec, m, offset, w8, lut, a)
                              : tile_pass<N, false, false>(rec, m, offset, w8, lut, a);
                OPTIQ_UNROLL
                for (std::size_t k = 0; k < N; ++k) {
                    if (exact[k]) continue;
                    const __m512 s = _mm512_set1_ps(step[k]);
                    OPTIQ_UNROLL
                    for (std::size_t q2 = 0; q2 < 4; ++q2) {
                        // a[k][2v + pl]: plane pl, register u = 2·hi2 + v
                        const std::size_t pl = q2 % 2, u = 2 * static_cast<std::size_t>(hi2) + q2 / 2;
                        float* o = sums[k] + (2 * ch + pl) * 64 + 16 * u;
                        _mm512_store_ps(o, _mm512_add_ps(_mm512_load_ps(o), _mm512_mul_ps(_mm512_cvtepi32_ps(a[k][q2]), s)));
                    }
                }
            }
        }
    }
    for (std::size_t k = 0; k < N; ++k)
        for (std::size_t i = 0; i < c.dim; ++i) {
            // coordinate i: chunk i / 128, plane i % 2, plane byte p = (i % 128) / 2 = 16L + 4u + l
            const std::size_t ch = i / 128, pl = i % 2, p = (i % 128) / 2, L = p / 16, u = (p % 16) / 4, l = p % 4;
            acc[k * as + i] += sums[k][(2 * ch + pl) * 64 + 16 * u + 4 * L + l];
        }
}

}  // namespace optiq::backend::kv::avx512_int8_detail

namespace optiq::backend::kv {

/// The int8 rule on AVX-512 VNNI (the caller checked int8_coding(c), has_avx512_vnni() and n ≤ max_states).
OPTIQ_TARGET_AVX512_VNNI inline void dot_run_int8(const VectorCoding& c, const Records& r, const TokenScale& ts,
                                                  const float* const* q, std::size_t n, float* out, std::size_t os,
                                                  bool add) noexcept {
    switch (n) {
        case 1: avx512_int8_detail::dot<1>(c, r, ts, q, out, os, add); break;
        case 2: avx512_int8_detail::dot<2>(c, r, ts, q, out, os, add); break;
        case 3: avx512_int8_detail::dot<3>(c, r, ts, q, out, os, add); break;
        default: avx512_int8_detail::dot<4>(c, r, ts, q, out, os, add); break;
    }
}

OPTIQ_TARGET_AVX512_VNNI inline void axpy_run_int8(const VectorCoding& c, const Records& r, const TokenScale& ts,
                                                   const float* w, std::size_t ws, std::size_t n, float* acc,
                                                   std::size_t as) noexcept {
    switch (n) {
        case 1: avx512_int8_detail::axpy<1>(c, r, ts, w, ws, acc, as); break;
        case 2: avx512_int8_detail::axpy<2>(c, r, ts, w, ws, acc, as); break;
        case 3: avx512_int8_detail::axpy<3>(c, r, ts, w, ws, acc, as); break;
        default: avx512_int8_detail::axpy<4>(c, r, ts, w, ws, acc, as); break;
    }
}

}  // namespace optiq::backend::kv

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // OPTIQ_SIMD_X86

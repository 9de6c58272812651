#pragma once
// AArch64 Advanced SIMD (NEON) KV-attention kernels (arch::neon; kv_scalar.hpp is the reference
// they are tested against, in CI under qemu-aarch64). A record's vector is decoded 16 coordinates
// at a time into four float32x4 registers and used at once:
//   codes      16 codes of b bits are 2b bytes (at most 16), read exactly (kv_types.hpp
//              load_bytes: a record may end the buffer); one tbl puts the one or two bytes of
//              each code in a 16-bit lane, a per-lane shift and a mask finish, and a narrow
//              gives the 16 codes as bytes (4-bit codes: a mask and a shift of 8 bytes, zipped)
//   codebook   b ≤ 4: the table's floats split into 4 byte planes (plane k = byte k of every
//              entry), one tbl per plane looks 16 codes up, two rounds of zips rebuild the floats
//   affine     codes widened to u32, converted, one FMA with the group's {scale, bias}
//   f16        vcvt_f32_f16 (exact); bf16 a widening shift; signs a bit test and a select
// softmax_row stays the scalar reference (kv_scalar.hpp). Other codings and d not a multiple of
// 16 take the scalar loops. Portable C++ apart from <arm_neon.h>; little-endian AArch64 only.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_int8.hpp"
#include "optiq/backend/simd/kv_neon_int8.hpp"
#include "optiq/backend/simd/kv_scalar.hpp"
#include "optiq/backend/simd/kv_types.hpp"

#if defined(OPTIQ_SIMD_NEON)

namespace optiq::backend::kv {

/// Whether the NEON kernels take this coding (else they run the scalar loops).
[[nodiscard]] inline bool supported(arch::neon, const VectorCoding& c) noexcept {
    if (c.dim == 0 || c.dim % 16 != 0) return false;
    switch (c.coding) {
        case Coding::codebook: return c.bits >= 1 && c.bits <= 4 && c.table != nullptr;
        case Coding::affine: return c.bits >= 1 && c.bits <= 8 && c.group != 0 && c.group % 16 == 0;
        case Coding::integer: return c.bits >= 1 && c.bits <= 8;
        case Coding::f16:
        case Coding::bf16:
        case Coding::f32:
        case Coding::signs: return true;
    }
    return false;
}

namespace neon_detail {

/// tbl selectors (two bytes per 16-bit lane: the code's first byte and the next) and right
/// shifts (as negative left shifts) for codes 0-7 and 8-15 of 16 b-bit codes.
template <int B>
struct UnpackTables {
    std::uint8_t select[2][16];
    std::int16_t shift[2][8];
};
template <int B>
inline constexpr UnpackTables<B> unpack_tables = [] {
    UnpackTables<B> t{};
    for (int i = 0; i < 16; ++i) {
        const int bit = B * i, byte = bit / 8;
        t.select[i / 8][2 * (i % 8)] = static_cast<std::uint8_t>(byte);
        t.select[i / 8][2 * (i % 8) + 1] = static_cast<std::uint8_t>(byte + 1 < 2 * B ? byte + 1 : 0xFF);
        t.shift[i / 8][i % 8] = static_cast<std::int16_t>(-(bit % 8));
    }
    return t;
}();

/// Codes [16c, 16c + 16) of a b-bit stream, p = the chunk's first byte, as 16 bytes.
template <int B>
inline uint8x16_t unpack16(const std::uint8_t* p) noexcept {
    if constexpr (B == 8) {
        return vld1q_u8(p);
    } else if constexpr (B == 4) {
        const uint8x8_t x = vld1_u8(p);
        const uint8x8x2_t z = vzip_u8(vand_u8(x, vdup_n_u8(0x0F)), vshr_n_u8(x, 4));
        return vcombine_u8(z.val[0], z.val[1]);
    } else {
        uint8x16_t bytes;
        if constexpr (2 * B < 8) {
            bytes = vreinterpretq_u8_u64(vdupq_n_u64(load_bytes<2 * B>(p)));
        } else if constexpr (2 * B == 8) {
            std::uint64_t v;
            std::memcpy(&v, p, 8);
            bytes = vreinterpretq_u8_u64(vdupq_n_u64(v));
        } else {
            std::uint64_t lo;
            std::memcpy(&lo, p, 8);
            bytes = vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(lo), vcreate_u64(load_bytes<2 * B - 8>(p + 8))));
        }
        const auto& t = unpack_tables<B>;
        const uint16x8_t mask = vdupq_n_u16(static_cast<std::uint16_t>((1u << B) - 1u));
        const uint16x8_t a = vandq_u16(
            vshlq_u16(vreinterpretq_u16_u8(vqtbl1q_u8(bytes, vld1q_u8(t.select[0]))), vld1q_s16(t.shift[0])), mask);
        const uint16x8_t b = vandq_u16(
            vshlq_u16(vreinterpretq_u16_u8(vqtbl1q_u8(bytes, vld1q_u8(t.select[1]))), vld1q_s16(t.shift[1])), mask);
        return vcombine_u8(vmovn_u16(a), vmovn_u16(b));
    }
}

/// Four float32x4 registers: coordinates [16c, 16c + 16).
struct F4 {
    float32x4_t v[4];
};

/// Codes (bytes) widened to four float32x4.
inline F4 to_float(uint8x16_t codes) noexcept {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(codes)), hi = vmovl_u8(vget_high_u8(codes));
    return {{vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo))),
             vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi)))}};
}

// Decoders: d(rec, side, c) = coordinates [16c, 16c + 16) of the vector at rec (its first byte).
template <int B>
struct Codebook {
    uint8x16_t plane[4];  // plane k, entry e: byte k of table[e] (entries past 2^b unused)
    static Codebook make(const VectorCoding& c) noexcept {
        Codebook d;
        std::uint8_t p[4][16];
        for (int e = 0; e < 16; ++e) {
            std::uint32_t w;
            std::memcpy(&w, c.table + e, 4);
            for (int k = 0; k < 4; ++k) p[k][e] = static_cast<std::uint8_t>(w >> (8 * k));
        }
        for (int k = 0; k < 4; ++k) d.plane[k] = vld1q_u8(p[k]);
        return d;
    }
    F4 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const uint8x16_t idx = unpack16<B>(rec + c * 2 * B);
        const uint8x16_t b0 = vqtbl1q_u8(plane[0], idx), b1 = vqtbl1q_u8(plane[1], idx);
        const uint8x16_t b2 = vqtbl1q_u8(plane[2], idx), b3 = vqtbl1q_u8(plane[3], idx);
        // Bytes (b0 b1) and (b2 b3) of each entry paired into 16-bit halves, then the halves
        // paired into the 32-bit floats, in code order.
        const uint16x8_t l01 = vreinterpretq_u16_u8(vzip1q_u8(b0, b1)), h01 = vreinterpretq_u16_u8(vzip2q_u8(b0, b1));
        const uint16x8_t l23 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3)), h23 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
        return {{vreinterpretq_f32_u16(vzip1q_u16(l01, l23)), vreinterpretq_f32_u16(vzip2q_u16(l01, l23)),
                 vreinterpretq_f32_u16(vzip1q_u16(h01, h23)), vreinterpretq_f32_u16(vzip2q_u16(h01, h23))}};
    }
};

template <int B>
struct Affine {
    std::size_t group_chunks, side_offset;
    static Affine make(const VectorCoding& c) noexcept { return {c.group / 16, c.side_offset}; }
    F4 operator()(const std::uint8_t* rec, const float* side, std::size_t c) const noexcept {
        const float* gs = side + side_offset + 2 * (c / group_chunks);
        F4 y = to_float(unpack16<B>(rec + c * 2 * B));
        const float32x4_t s = vdupq_n_f32(gs[0]), b = vdupq_n_f32(gs[1]);
        for (auto& v : y.v) v = vfmaq_f32(b, v, s);
        return y;
    }
};

template <int B>
struct Integer {
    static Integer make(const VectorCoding&) noexcept { return {}; }
    F4 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        return to_float(unpack16<B>(rec + c * 2 * B));
    }
};

struct F16 {
    F4 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const auto* h = reinterpret_cast<const float16_t*>(rec + 32 * c);
        return {{vcvt_f32_f16(vld1_f16(h)), vcvt_f32_f16(vld1_f16(h + 4)), vcvt_f32_f16(vld1_f16(h + 8)),
                 vcvt_f32_f16(vld1_f16(h + 12))}};
    }
};
struct BF16 {
    F4 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const uint16x8_t a = vld1q_u16(reinterpret_cast<const std::uint16_t*>(rec + 32 * c));
        const uint16x8_t b = vld1q_u16(reinterpret_cast<const std::uint16_t*>(rec + 32 * c + 16));
        return {{vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(a), 16)),
                 vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(a), 16)),
                 vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(b), 16)),
                 vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(b), 16))}};
    }
};
struct F32 {
    F4 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        const auto* f = reinterpret_cast<const float*>(rec + 64 * c);
        return {{vld1q_f32(f), vld1q_f32(f + 4), vld1q_f32(f + 8), vld1q_f32(f + 12)}};
    }
};
struct Signs {
    F4 operator()(const std::uint8_t* rec, const float*, std::size_t c) const noexcept {
        std::uint16_t bits;
        std::memcpy(&bits, rec + 2 * c, 2);
        static constexpr std::uint32_t lane_bit[4] = {1, 2, 4, 8};
        const uint32x4_t lb = vld1q_u32(lane_bit);
        const float32x4_t plus = vdupq_n_f32(1.0f), minus = vdupq_n_f32(-1.0f);
        F4 y;
        for (unsigned g = 0; g < 4; ++g) {
            const uint32x4_t set = vtstq_u32(vdupq_n_u32((bits >> (4 * g)) & 0xFu), lb);
            y.v[g] = vbslq_f32(set, plus, minus);
        }
        return y;
    }
};

template <template <int> class D, int MaxB, class Op>
void with_bits(const VectorCoding& c, const Op& op) {
    switch (c.bits) {
        case 1: op(D<1>::make(c)); break;
        case 2: op(D<2>::make(c)); break;
        case 3: op(D<3>::make(c)); break;
        case 4: op(D<4>::make(c)); break;
        default:
            if constexpr (MaxB > 4) {
                switch (c.bits) {
                    case 5: op(D<5>::make(c)); break;
                    case 6: op(D<6>::make(c)); break;
                    case 7: op(D<7>::make(c)); break;
                    default: op(D<8>::make(c)); break;
                }
            }
            break;
    }
}
template <class Op>
void with_decoder(const VectorCoding& c, const Op& op) {
    switch (c.coding) {
        case Coding::codebook: with_bits<Codebook, 4>(c, op); break;
        case Coding::affine: with_bits<Affine, 8>(c, op); break;
        case Coding::integer: with_bits<Integer, 8>(c, op); break;
        case Coding::f16: op(F16{}); break;
        case Coding::bf16: op(BF16{}); break;
        case Coding::f32: op(F32{}); break;
        case Coding::signs: op(Signs{}); break;
    }
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
void dot_n(const Dec& dec, const DotArgs& a) noexcept {
    const Records& r = *a.r;
    for (std::size_t j = 0; j < r.count; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        float32x4_t acc[N][2];
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) acc[k][0] = acc[k][1] = vdupq_n_f32(0.0f);
        for (std::size_t c = 0; c < a.chunks; ++c) {
            const F4 y = dec(rec, side, c);
            OPTIQ_UNROLL
            for (std::size_t k = 0; k < N; ++k) {
                const float* q = a.q[k] + 16 * c;
                acc[k][0] = vfmaq_f32(acc[k][0], vld1q_f32(q), y.v[0]);
                acc[k][1] = vfmaq_f32(acc[k][1], vld1q_f32(q + 4), y.v[1]);
                acc[k][0] = vfmaq_f32(acc[k][0], vld1q_f32(q + 8), y.v[2]);
                acc[k][1] = vfmaq_f32(acc[k][1], vld1q_f32(q + 12), y.v[3]);
            }
        }
        const float f = a.ts->at(j);
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) {
            const float s = vaddvq_f32(vaddq_f32(acc[k][0], acc[k][1]));
            float* o = a.out + k * a.os + j;
            *o = a.add ? *o + f * s : f * s;
        }
    }
}

struct DotOp {
    const DotArgs* a;
    template <class Dec>
    void operator()(const Dec& dec) const noexcept {
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

/// Chunk c of every state over tokens [j0, j1), weights wt[k][j - j0]: 4N accumulators live.
template <std::size_t N, class Dec>
void axpy_pass(const Dec& dec, const AxpyArgs& a, std::size_t j0, std::size_t j1, std::size_t c,
               float (*wt)[axpy_tile]) noexcept {
    const Records& r = *a.r;
    float32x4_t acc[N][4];
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k)
        for (std::size_t u = 0; u < 4; ++u) acc[k][u] = vld1q_f32(a.acc + k * a.as + 16 * c + 4 * u);
    for (std::size_t j = j0; j < j1; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + a.word_offset);
        const float* side = r.side != nullptr ? r.side + j * r.side_stride : nullptr;
        const F4 y = dec(rec, side, c);
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) {
            const float32x4_t w = vdupq_n_f32(wt[k][j - j0]);
            for (std::size_t u = 0; u < 4; ++u) acc[k][u] = vfmaq_f32(acc[k][u], w, y.v[u]);
        }
    }
    OPTIQ_UNROLL
    for (std::size_t k = 0; k < N; ++k)
        for (std::size_t u = 0; u < 4; ++u) vst1q_f32(a.acc + k * a.as + 16 * c + 4 * u, acc[k][u]);
}

template <std::size_t N, class Dec>
void axpy_n(const Dec& dec, const AxpyArgs& a) noexcept {
    float wt[N][axpy_tile];
    for (std::size_t j0 = 0; j0 < a.r->count; j0 += axpy_tile) {
        const std::size_t j1 = j0 + axpy_tile < a.r->count ? j0 + axpy_tile : a.r->count;
        for (std::size_t j = j0; j < j1; ++j) {
            const float f = a.ts->at(j);
            OPTIQ_UNROLL
            for (std::size_t k = 0; k < N; ++k) wt[k][j - j0] = a.w[k * a.ws + j] * f;
        }
        for (std::size_t c = 0; c < a.chunks; ++c) axpy_pass<N>(dec, a, j0, j1, c, wt);
    }
}

struct AxpyOp {
    const AxpyArgs* a;
    template <class Dec>
    void operator()(const Dec& dec) const noexcept {
        switch (a->n) {
            case 1: axpy_n<1>(dec, *a); break;
            case 2: axpy_n<2>(dec, *a); break;
            case 3: axpy_n<3>(dec, *a); break;
            default: axpy_n<4>(dec, *a); break;
        }
    }
};

}  // namespace neon_detail

inline void dot_run(arch::neon, const VectorCoding& c, const Records& r, const TokenScale& ts, const float* const* q,
                    std::size_t n, float* out, std::size_t os, bool add) noexcept {
    if (!supported(arch::neon{}, c) || n == 0 || n > max_states) {
        dot_run(arch::scalar{}, c, r, ts, q, n, out, os, add);
        return;
    }
#if defined(OPTIQ_NEON_INT8_KEYS)
    if (int8_coding(c)) {
        dot_run_int8(arch::neon{}, c, r, ts, q, n, out, os, add);
        return;
    }
#endif
    const neon_detail::DotArgs a{&r, c.word_offset, c.dim / 16, &ts, q, n, out, os, add};
    neon_detail::with_decoder(c, neon_detail::DotOp{&a});
}

inline void axpy_run(arch::neon, const VectorCoding& c, const Records& r, const TokenScale& ts, const float* w,
                     std::size_t ws, std::size_t n, float* acc, std::size_t as) noexcept {
    if (!supported(arch::neon{}, c) || n == 0 || n > max_states) {
        axpy_run(arch::scalar{}, c, r, ts, w, ws, n, acc, as);
        return;
    }
    const neon_detail::AxpyArgs a{&r, c.word_offset, c.dim / 16, &ts, w, ws, n, acc, as};
    neon_detail::with_decoder(c, neon_detail::AxpyOp{&a});
}

}  // namespace optiq::backend::kv

#endif  // OPTIQ_SIMD_NEON

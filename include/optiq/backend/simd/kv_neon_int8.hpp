#pragma once
// NEON kernel of the int8 rule (kv_int8.hpp) for key scores, with the Armv8.2 dot-product
// extension (FEAT_DotProd: sdot, 16 multiply-adds of signed bytes per instruction): every Apple
// Silicon core (Apple clang's default target has it), and Linux builds with
// -march=armv8.2-a+dotprod or a later -march/-mcpu. Without it (__ARM_FEATURE_DOTPROD undefined) the
// flag is ignored. Values keep the exact kernels: sdot multiplies signed by signed bytes and the
// rule's weights are unsigned 8-bit.
//
// Per 16 bytes of a record (32 coordinates): a mask and a shift give the even and odd coordinates'
// codes, tbl looks up their int8 centroids, and one sdot per query and parity adds 16 products
// into four int32 lanes; the lanes are summed once per token (addv).
#include <cstddef>
#include <cstdint>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_int8.hpp"
#include "optiq/backend/simd/kv_types.hpp"

#if defined(OPTIQ_SIMD_NEON) && defined(__ARM_FEATURE_DOTPROD)
#define OPTIQ_NEON_INT8_KEYS 1

namespace optiq::backend::kv {

namespace neon_int8_detail {

template <std::size_t N>
inline void dot(const VectorCoding& c, const Records& r, const TokenScale& ts, const float* const* q, float* out,
                std::size_t os, bool add) noexcept {
    const Int8Table t = int8_table(c.table);
    const int8x16_t lut = vld1q_s8(t.c8);
    const uint8x16_t mask = vdupq_n_u8(0x0f);
    const std::size_t blocks = c.dim / 32;  // 16 bytes, 32 coordinates each
    // Each query at 8 bits, even and odd coordinates apart (the order of a record's nibbles).
    alignas(16) std::int8_t qe[N][max_int8_dim / 2], qo[N][max_int8_dim / 2];
    float qt[N];
    for (std::size_t k = 0; k < N; ++k) {
        std::int8_t q8[max_int8_dim];
        qt[k] = quantize_s8(q[k], c.dim, q8) * t.step;
        for (std::size_t i = 0; i < c.dim / 2; ++i) {
            qe[k][i] = q8[2 * i];
            qo[k][i] = q8[2 * i + 1];
        }
    }
    for (std::size_t j = 0; j < r.count; ++j) {
        const auto* rec = reinterpret_cast<const std::uint8_t*>(r.words + j * r.word_stride + c.word_offset);
        int32x4_t acc[N];
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) acc[k] = vdupq_n_s32(0);
        for (std::size_t b = 0; b < blocks; ++b) {
            const uint8x16_t x = vld1q_u8(rec + 16 * b);
            const int8x16_t even = vqtbl1q_s8(lut, vandq_u8(x, mask)), odd = vqtbl1q_s8(lut, vshrq_n_u8(x, 4));
            OPTIQ_UNROLL
            for (std::size_t k = 0; k < N; ++k) {
                acc[k] = vdotq_s32(acc[k], even, vld1q_s8(qe[k] + 16 * b));
                acc[k] = vdotq_s32(acc[k], odd, vld1q_s8(qo[k] + 16 * b));
            }
        }
        const float f = ts.at(j);
        OPTIQ_UNROLL
        for (std::size_t k = 0; k < N; ++k) {
            const float v = static_cast<float>(vaddvq_s32(acc[k])) * qt[k] * f;
            float* o = out + k * os + j;
            *o = add ? *o + v : v;
        }
    }
}

}  // namespace neon_int8_detail

/// The int8 rule's key scores with sdot (the caller checked int8_coding(c) and n ≤ max_states).
inline void dot_run_int8(arch::neon, const VectorCoding& c, const Records& r, const TokenScale& ts,
                         const float* const* q, std::size_t n, float* out, std::size_t os, bool add) noexcept {
    switch (n) {
        case 1: neon_int8_detail::dot<1>(c, r, ts, q, out, os, add); break;
        case 2: neon_int8_detail::dot<2>(c, r, ts, q, out, os, add); break;
        case 3: neon_int8_detail::dot<3>(c, r, ts, q, out, os, add); break;
        default: neon_int8_detail::dot<4>(c, r, ts, q, out, os, add); break;
    }
}

}  // namespace optiq::backend::kv

#endif  // OPTIQ_SIMD_NEON && __ARM_FEATURE_DOTPROD

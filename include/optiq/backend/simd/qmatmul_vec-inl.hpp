// NO include guard: included once per target by qmatmul.hpp (the Highway foreach_target way),
// inside namespace optiq::backend::qmatmul::<target> and after that target's attributes were
// pushed. OPTIQ_QM_ISA says which instruction set this copy uses:
//   0  portable C++ (8 emulated lanes: the ground truth the vector copies equal bit for bit)
//   1  AVX2 + FMA                    (x86-64)
//   2  AVX2 + AVX-512 VNNI/VL/BW     (x86-64; the same 256-bit registers, vpdpbusd for the dots)
//   3  NEON (+ sdot when the compiler targets FEAT_DotProd)
//
// struct V is the small vector-traits type every quantized-matmul kernel (qmatmul_kernels-inl.hpp)
// is written over: 32 bytes of weight codes or int8 activations (u8), eight int32 lanes (i32) and
// eight float lanes (f32). Every operation has one meaning on every target, lane for lane:
//   dot(w, x)          lane k = Σ_{i=4k..4k+3} w_i·x_i, w unsigned bytes <= 128, x signed bytes
//   dot_ss(w, x)       the same with w signed (|w| <= 128)
//   dot_scaled(w,x,s)  lane k = s_{k/4}·Σ_{i=4k..4k+3} w_i·x_i with one int16 scale per 16 bytes
//   hsum(f)            ((f0+f4)+(f2+f6)) + ((f1+f5)+(f3+f7))
//   bcast4<J>(w)       bytes 4J..4J+3 of w repeated in all eight 4-byte lanes
//   loadf / storef / mul / addf   eight floats
// Integers are exact; cvt rounds to nearest even and fma is fused everywhere, so a kernel's
// result is the same bits on every target (tests/backend/qmatmul_test.cpp holds them equal).

struct V {
#if OPTIQ_QM_ISA == 1 || OPTIQ_QM_ISA == 2
    using u8 = __m256i;
    using i16 = __m256i;
    using i32 = __m256i;
    using f32 = __m256;

    static u8 load32(const void* p) noexcept { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
    static void store32(void* p, u8 v) noexcept { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
    /// 16 bytes -> 32 codes: their low nibbles, then their high nibbles (ggml's Q4_0 order).
    static u8 nibbles16(const void* p) noexcept {
        const __m128i v = _mm_loadu_si128(static_cast<const __m128i*>(p));
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
    }
    /// 8 bytes -> 32 two-bit codes: bits 0-1 of every byte, then bits 2-3, 4-5, 6-7.
    static u8 crumbs8(const void* p) noexcept {
        long long b;
        std::memcpy(&b, p, 8);
        const __m256i v = _mm256_set1_epi64x(b);
        __m256i r = _mm256_blend_epi32(v, _mm256_srli_epi16(v, 2), 0x0C);
        r = _mm256_blend_epi32(r, _mm256_srli_epi16(v, 4), 0x30);
        r = _mm256_blend_epi32(r, _mm256_srli_epi16(v, 6), 0xC0);
        return _mm256_and_si256(r, _mm256_set1_epi8(3));
    }
    static u8 xor_(u8 a, u8 b) noexcept { return _mm256_xor_si256(a, b); }
    static u8 and_(u8 a, u8 b) noexcept { return _mm256_and_si256(a, b); }
    static u8 or_(u8 a, u8 b) noexcept { return _mm256_or_si256(a, b); }
    static float half(std::uint16_t h) noexcept { return _cvtsh_ss(h); }
    static u8 splat(std::uint8_t b) noexcept { return _mm256_set1_epi8(static_cast<char>(b)); }
    /// (v >> S) & m in every byte.
    template <int S>
    static u8 shr_mask(u8 v, std::uint8_t m) noexcept {
        return _mm256_and_si256(_mm256_srli_epi16(v, S), splat(m));
    }
    /// v << S in every byte whose value is below 2^(8-S) (no bit leaves its byte).
    template <int S>
    static u8 shl_small(u8 v) noexcept {
        return _mm256_slli_epi16(v, S);
    }
    /// Byte i = `value` where bit i of `bits` is set, else 0.
    static u8 bits_to_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
        const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                             2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), sel);
        const __m256i m = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL);  // byte k: every bit but k % 8
        const __m256i set = _mm256_cmpeq_epi8(_mm256_or_si256(v, m), _mm256_set1_epi64x(-1));
        return _mm256_and_si256(set, splat(value));
    }

    static i32 izero() noexcept { return _mm256_setzero_si256(); }
    static i32 add(i32 a, i32 b) noexcept { return _mm256_add_epi32(a, b); }
#if OPTIQ_QM_ISA == 2
    static i32 dot(u8 w, u8 x) noexcept { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x); }
    static i32 dot_acc(i32 acc, u8 w, u8 x) noexcept { return _mm256_dpbusd_epi32(acc, w, x); }
#else
    static i32 dot(u8 w, u8 x) noexcept { return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)); }
    static i32 dot_acc(i32 acc, u8 w, u8 x) noexcept { return _mm256_add_epi32(acc, dot(w, x)); }
#endif
    static i32 dot_ss(u8 w, u8 x) noexcept { return dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)); }
    /// One int16 scale for bytes 0..15 and one for 16..31.
    static i16 scales(int lo, int hi) noexcept {
        return _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(hi)), _mm_set1_epi16(static_cast<short>(lo)));
    }
    static i32 dot_scaled(u8 w, u8 x, i16 s) noexcept { return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), s); }

    static f32 fzero() noexcept { return _mm256_setzero_ps(); }
    static f32 set1(float v) noexcept { return _mm256_set1_ps(v); }
    static f32 cvt(i32 v) noexcept { return _mm256_cvtepi32_ps(v); }
    static f32 fma(f32 a, f32 b, f32 c) noexcept { return _mm256_fmadd_ps(a, b, c); }
    static float hsum(f32 v) noexcept {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
    }

    template <int J>
    static u8 bcast4(u8 w) noexcept {
        return _mm256_permutevar8x32_epi32(w, _mm256_set1_epi32(J));
    }
    static f32 loadf(const float* p) noexcept { return _mm256_loadu_ps(p); }
    static void storef(float* p, f32 v) noexcept { _mm256_storeu_ps(p, v); }
    static f32 mul(f32 a, f32 b) noexcept { return _mm256_mul_ps(a, b); }
    static f32 addf(f32 a, f32 b) noexcept { return _mm256_add_ps(a, b); }

    /// amax of n floats (n % 8 == 0).
    static float absmax(const float* x, std::size_t n) noexcept {
        const __m256 sign = _mm256_set1_ps(-0.0f);
        __m256 m = _mm256_setzero_ps();
        for (std::size_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        return _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps(s, s, 1)));
    }
    /// q_i = round-half-even(x_i · id) for 32 floats (|x_i · id| <= 127); returns Σ q_i.
    static int quantize32(const float* x, float id, std::int8_t* q) noexcept {
        const __m256 m = _mm256_set1_ps(id);
        __m256i v[4];
        for (int k = 0; k < 4; ++k)
            v[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), m),
                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m256i s = _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
        // packs interleave 128-bit lanes: [0a 1a 0b 1b] words -> bytes ordered 0..7 per lane pair; fix with a permute.
        const __m256i w01 = _mm256_packs_epi32(v[0], v[1]), w23 = _mm256_packs_epi32(v[2], v[3]);
        const __m256i b = _mm256_packs_epi16(w01, w23);
        const __m256i ordered = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        return _mm_cvtsi128_si32(t);
    }

#elif OPTIQ_QM_ISA == 3
    struct u8 {
        uint8x16_t lo, hi;
    };
    using i16 = int16x8_t;  // two scales: lanes 0..3 for bytes 0..15, 4..7 for 16..31
    struct i32 {
        int32x4_t lo, hi;
    };
    struct f32 {
        float32x4_t lo, hi;
    };

    static u8 load32(const void* p) noexcept {
        const auto* b = static_cast<const std::uint8_t*>(p);
        return {vld1q_u8(b), vld1q_u8(b + 16)};
    }
    static void store32(void* p, u8 v) noexcept {
        auto* b = static_cast<std::uint8_t*>(p);
        vst1q_u8(b, v.lo);
        vst1q_u8(b + 16, v.hi);
    }
    static u8 nibbles16(const void* p) noexcept {
        const uint8x16_t v = vld1q_u8(static_cast<const std::uint8_t*>(p));
        return {vandq_u8(v, vdupq_n_u8(0x0F)), vshrq_n_u8(v, 4)};
    }
    static u8 crumbs8(const void* p) noexcept {
        const uint8x8_t v = vld1_u8(static_cast<const std::uint8_t*>(p));
        const uint8x16_t m = vdupq_n_u8(3);
        return {vandq_u8(vcombine_u8(v, vshr_n_u8(v, 2)), m), vandq_u8(vcombine_u8(vshr_n_u8(v, 4), vshr_n_u8(v, 6)), m)};
    }
    static u8 xor_(u8 a, u8 b) noexcept { return {veorq_u8(a.lo, b.lo), veorq_u8(a.hi, b.hi)}; }
    static float half(std::uint16_t h) noexcept { return f16_bits_to_float(h); }
    static u8 and_(u8 a, u8 b) noexcept { return {vandq_u8(a.lo, b.lo), vandq_u8(a.hi, b.hi)}; }
    static u8 or_(u8 a, u8 b) noexcept { return {vorrq_u8(a.lo, b.lo), vorrq_u8(a.hi, b.hi)}; }
    static u8 splat(std::uint8_t b) noexcept { return {vdupq_n_u8(b), vdupq_n_u8(b)}; }
    template <int S>
    static u8 shr_mask(u8 v, std::uint8_t m) noexcept {
        const uint8x16_t mm = vdupq_n_u8(m);
        if constexpr (S == 0) return {vandq_u8(v.lo, mm), vandq_u8(v.hi, mm)};
        else return {vandq_u8(vshrq_n_u8(v.lo, S), mm), vandq_u8(vshrq_n_u8(v.hi, S), mm)};
    }
    template <int S>
    static u8 shl_small(u8 v) noexcept {
        return {vshlq_n_u8(v.lo, S), vshlq_n_u8(v.hi, S)};
    }
    static u8 bits_to_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
        static const std::uint8_t pos[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
        const uint8x16_t p = vld1q_u8(pos), val = vdupq_n_u8(value);
        const uint8x16_t b01 = vcombine_u8(vdup_n_u8(static_cast<std::uint8_t>(bits)),
                                           vdup_n_u8(static_cast<std::uint8_t>(bits >> 8)));
        const uint8x16_t b23 = vcombine_u8(vdup_n_u8(static_cast<std::uint8_t>(bits >> 16)),
                                           vdup_n_u8(static_cast<std::uint8_t>(bits >> 24)));
        return {vandq_u8(vtstq_u8(b01, p), val), vandq_u8(vtstq_u8(b23, p), val)};
    }

    static i32 izero() noexcept { return {vdupq_n_s32(0), vdupq_n_s32(0)}; }
    static i32 add(i32 a, i32 b) noexcept { return {vaddq_s32(a.lo, b.lo), vaddq_s32(a.hi, b.hi)}; }
    /// Four int32 lanes of Σ over each 4 bytes of w·x (16 signed bytes each).
    static int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t x) noexcept {
#if defined(__ARM_FEATURE_DOTPROD)
        return vdotq_s32(acc, w, x);
#else
        const int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
        const int16x8_t hi = vmull_high_s8(w, x);
        return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
    }
    // Unsigned codes <= 128 are reinterpreted as signed bytes; 128 itself only appears as a
    // magnitude in dot_ss, which is computed signed here directly.
    static i32 dot(u8 w, u8 x) noexcept { return dot_acc(izero(), w, x); }
    static i32 dot_acc(i32 acc, u8 w, u8 x) noexcept {
        return {dot16(acc.lo, vreinterpretq_s8_u8(w.lo), vreinterpretq_s8_u8(x.lo)),
                dot16(acc.hi, vreinterpretq_s8_u8(w.hi), vreinterpretq_s8_u8(x.hi))};
    }
    static i32 dot_ss(u8 w, u8 x) noexcept { return dot(w, x); }
    static i16 scales(int lo, int hi) noexcept {
        return vcombine_s16(vdup_n_s16(static_cast<std::int16_t>(lo)), vdup_n_s16(static_cast<std::int16_t>(hi)));
    }
    static i32 dot_scaled(u8 w, u8 x, i16 s) noexcept {
        const i32 d = dot(w, x);
        return {vmulq_s32(d.lo, vdupq_n_s32(vgetq_lane_s16(s, 0))), vmulq_s32(d.hi, vdupq_n_s32(vgetq_lane_s16(s, 4)))};
    }

    static f32 fzero() noexcept { return {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }
    static f32 set1(float v) noexcept { return {vdupq_n_f32(v), vdupq_n_f32(v)}; }
    static f32 cvt(i32 v) noexcept { return {vcvtq_f32_s32(v.lo), vcvtq_f32_s32(v.hi)}; }
    static f32 fma(f32 a, f32 b, f32 c) noexcept { return {vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)}; }
    static float hsum(f32 v) noexcept {
        const float32x4_t s = vaddq_f32(v.lo, v.hi);
        const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
        return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
    }
    template <int J>
    static u8 bcast4(u8 w) noexcept {
        const uint32x4_t v = J < 4 ? vreinterpretq_u32_u8(w.lo) : vreinterpretq_u32_u8(w.hi);
        const uint8x16_t b = vreinterpretq_u8_u32(vdupq_laneq_u32(v, J % 4));
        return {b, b};
    }
    static f32 loadf(const float* p) noexcept { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
    static void storef(float* p, f32 v) noexcept {
        vst1q_f32(p, v.lo);
        vst1q_f32(p + 4, v.hi);
    }
    static f32 mul(f32 a, f32 b) noexcept { return {vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)}; }
    static f32 addf(f32 a, f32 b) noexcept { return {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }
    static float absmax(const float* x, std::size_t n) noexcept {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (std::size_t i = 0; i < n; i += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + i)));
        return vmaxvq_f32(m);
    }
    static int quantize32(const float* x, float id, std::int8_t* q) noexcept {
        int32x4_t s = vdupq_n_s32(0);
        for (int k = 0; k < 32; k += 8) {
            // vcvtnq: round to nearest, ties to even (as _mm256_round_ps / std::nearbyint).
            const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + k), id));
            const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + k + 4), id));
            s = vaddq_s32(s, vaddq_s32(a, b));
            const int16x8_t h = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
            vst1_s8(q + k, vmovn_s16(h));
        }
        return vaddvq_s32(s);
    }

#else  // OPTIQ_QM_ISA == 0: portable, eight emulated lanes
    struct u8 {
        std::uint8_t b[32];
    };
    struct i16 {
        std::int32_t lo, hi;
    };
    struct i32 {
        std::int32_t v[8];
    };
    struct f32 {
        float v[8];
    };

    static u8 load32(const void* p) noexcept {
        u8 r;
        std::memcpy(r.b, p, 32);
        return r;
    }
    static void store32(void* p, u8 v) noexcept { std::memcpy(p, v.b, 32); }
    static u8 nibbles16(const void* p) noexcept {
        const auto* s = static_cast<const std::uint8_t*>(p);
        u8 r;
        for (int i = 0; i < 16; ++i) {
            r.b[i] = s[i] & 0x0F;
            r.b[i + 16] = static_cast<std::uint8_t>(s[i] >> 4);
        }
        return r;
    }
    static u8 crumbs8(const void* p) noexcept {
        const auto* s = static_cast<const std::uint8_t*>(p);
        u8 r;
        for (int j = 0; j < 4; ++j)
            for (int k = 0; k < 8; ++k) r.b[8 * j + k] = static_cast<std::uint8_t>((s[k] >> (2 * j)) & 3);
        return r;
    }
    static u8 xor_(u8 a, u8 b) noexcept {
        for (int i = 0; i < 32; ++i) a.b[i] ^= b.b[i];
        return a;
    }
    static float half(std::uint16_t h) noexcept { return f16_bits_to_float(h); }
    static u8 and_(u8 a, u8 b) noexcept {
        for (int i = 0; i < 32; ++i) a.b[i] &= b.b[i];
        return a;
    }
    static u8 or_(u8 a, u8 b) noexcept {
        for (int i = 0; i < 32; ++i) a.b[i] |= b.b[i];
        return a;
    }
    static u8 splat(std::uint8_t b) noexcept {
        u8 r;
        std::memset(r.b, b, 32);
        return r;
    }
    template <int S>
    static u8 shr_mask(u8 v, std::uint8_t m) noexcept {
        for (int i = 0; i < 32; ++i) v.b[i] = static_cast<std::uint8_t>((v.b[i] >> S) & m);
        return v;
    }
    template <int S>
    static u8 shl_small(u8 v) noexcept {
        for (int i = 0; i < 32; ++i) v.b[i] = static_cast<std::uint8_t>(v.b[i] << S);
        return v;
    }
    static u8 bits_to_bytes(std::uint32_t bits, std::uint8_t value) noexcept {
        u8 r;
        for (int i = 0; i < 32; ++i) r.b[i] = ((bits >> i) & 1u) ? value : 0;
        return r;
    }

    static i32 izero() noexcept { return {}; }
    static i32 add(i32 a, i32 b) noexcept {
        for (int k = 0; k < 8; ++k) a.v[k] += b.v[k];
        return a;
    }
    static i32 dot_acc(i32 acc, u8 w, u8 x) noexcept {
        for (int k = 0; k < 8; ++k)
            for (int j = 4 * k; j < 4 * k + 4; ++j) acc.v[k] += static_cast<int>(w.b[j]) * static_cast<std::int8_t>(x.b[j]);
        return acc;
    }
    static i32 dot(u8 w, u8 x) noexcept { return dot_acc(izero(), w, x); }
    static i32 dot_ss(u8 w, u8 x) noexcept {
        i32 r{};
        for (int k = 0; k < 8; ++k)
            for (int j = 4 * k; j < 4 * k + 4; ++j)
                r.v[k] += static_cast<std::int8_t>(w.b[j]) * static_cast<std::int8_t>(x.b[j]);
        return r;
    }
    static i16 scales(int lo, int hi) noexcept { return {lo, hi}; }
    static i32 dot_scaled(u8 w, u8 x, i16 s) noexcept {
        i32 d = dot(w, x);
        for (int k = 0; k < 8; ++k) d.v[k] *= k < 4 ? s.lo : s.hi;
        return d;
    }

    static f32 fzero() noexcept { return {}; }
    static f32 set1(float v) noexcept {
        f32 r;
        for (float& e : r.v) e = v;
        return r;
    }
    static f32 cvt(i32 v) noexcept {
        f32 r;
        for (int k = 0; k < 8; ++k) r.v[k] = static_cast<float>(v.v[k]);
        return r;
    }
    static f32 fma(f32 a, f32 b, f32 c) noexcept {
        for (int k = 0; k < 8; ++k) c.v[k] = std::fma(a.v[k], b.v[k], c.v[k]);
        return c;
    }
    static float hsum(f32 v) noexcept {
        const float s0 = v.v[0] + v.v[4], s1 = v.v[1] + v.v[5], s2 = v.v[2] + v.v[6], s3 = v.v[3] + v.v[7];
        return (s0 + s2) + (s1 + s3);
    }
    template <int J>
    static u8 bcast4(u8 w) noexcept {
        u8 r;
        for (int k = 0; k < 8; ++k) std::memcpy(r.b + 4 * k, w.b + 4 * J, 4);
        return r;
    }
    static f32 loadf(const float* p) noexcept {
        f32 r;
        std::memcpy(r.v, p, 32);
        return r;
    }
    static void storef(float* p, f32 v) noexcept { std::memcpy(p, v.v, 32); }
    static f32 mul(f32 a, f32 b) noexcept {
        for (int k = 0; k < 8; ++k) a.v[k] *= b.v[k];
        return a;
    }
    static f32 addf(f32 a, f32 b) noexcept {
        for (int k = 0; k < 8; ++k) a.v[k] += b.v[k];
        return a;
    }
    static float absmax(const float* x, std::size_t n) noexcept {
        float m = 0.0f;
        for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
        return m;
    }
    static int quantize32(const float* x, float id, std::int8_t* q) noexcept {
        int s = 0;
        for (int i = 0; i < 32; ++i) {
            const auto v = static_cast<int>(std::nearbyint(x[i] * id));
            q[i] = static_cast<std::int8_t>(v);
            s += v;
        }
        return s;
    }
#endif
};

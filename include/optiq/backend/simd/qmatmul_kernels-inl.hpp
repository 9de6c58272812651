// NO include guard: included once per target by qmatmul.hpp, after qmatmul_vec-inl.hpp (struct V),
// inside namespace optiq::backend::qmatmul::<target>. Everything here is written once, over V.
//
// Every format is one struct K: a Row (where row r's blocks are), the number of block units per
// row, and block<T>(row, b, acts, acc, off), which adds block unit b's contribution for T tokens to
// eight float lanes per token (acc) and to one scalar per token (off: the weights' offsets or
// mins times the block sums of the 8-bit activation). A format's weights are decoded once per
// block into 32-byte vectors of unsigned codes and meet each of the T tokens' activations there,
// so a prefill decodes each weight block once per T tokens.
//
// The formats, in the form w = d·u + m per sub-block (u the unsigned stored code):
//   Q4_0 d·(u−8)  Q4_1 d·u+m  Q5_0 d·(u−16)  Q5_1 d·u+m  Q8_0 d·q (q signed)
//   Q2_K d·sc·u − dmin·mn (16-column sub-blocks)   Q3_K d·s·(u−4) (16, s = 6-bit − 32)
//   Q4_K / Q5_K d·sc·u − dmin·mn (32-column sub-blocks, 6-bit sc and mn)   Q6_K d·s·(u−32) (16, s int8)
//   MLX affine scale·u + bias per group (8-bit: scale·(u−128) + (bias + 128·scale))
// (ggml-common.h for the block layouts; io/ggml_quants.hpp has the reference dequantizers).

namespace kdetail {

inline std::uint16_t rd16(const std::byte* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline std::uint32_t rd32(const std::byte* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline std::uint8_t rd8(const std::byte* p) noexcept { return std::to_integer<std::uint8_t>(*p); }

/// The 6-bit scales and mins of Q4_K / Q5_K (ggml's get_scale_min_k4).
inline void k4_scale_min(const std::byte* s, int* sc, int* mn) noexcept {
    for (int j = 0; j < 4; ++j) {
        sc[j] = rd8(s + j) & 0x3F;
        mn[j] = rd8(s + 4 + j) & 0x3F;
        sc[j + 4] = (rd8(s + 8 + j) & 0x0F) | ((rd8(s + j) >> 2) & 0x30);
        mn[j + 4] = (rd8(s + 8 + j) >> 4) | ((rd8(s + 4 + j) >> 2) & 0x30);
    }
}

}  // namespace kdetail

// ---- 32-column block formats (q8_32 activations) -------------------------------------------

/// Adds d_w·d_x·dot to acc and off_w·s_x to off for each token: the common tail of the 32-column types.
template <int T>
inline void block32_tail(const V::i32* p, float d, float offw, const Act32* a, std::size_t k, V::f32* acc,
                         float* off) noexcept {
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) {
        acc[t] = V::fma(V::cvt(p[t]), V::set1(d * a[t].d[k]), acc[t]);
        off[t] += offw * a[t].s[k];
    }
}

template <QFormat F>
struct KBlock32 {
    using Act = Act32;
    using Row = const std::byte*;
    static constexpr std::size_t bytes = format_info(F).bytes;
    static Row row(const QWeights& w, std::size_t r) noexcept { return w.data + r * w.row_bytes; }
    static std::size_t units(const QWeights& w) noexcept { return w.in / 32; }

    template <int T>
    static void block(Row row, const QWeights&, std::size_t k, const Act* a, V::f32* acc, float* off) noexcept {
        const std::byte* b = row + k * bytes;
        const float d = V::half(kdetail::rd16(b));
        V::i32 p[T];
        if constexpr (F == QFormat::q8_0) {
            const V::u8 w = V::load32(b + 2);
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) p[t] = V::dot_ss(w, V::load32(a[t].q + 32 * k));
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = V::fma(V::cvt(p[t]), V::set1(d * a[t].d[k]), acc[t]);
            return;
        } else {
            V::u8 u;
            float offw;
            if constexpr (F == QFormat::q4_0) {
                u = V::nibbles16(b + 2);
                offw = -8.0f * d;
            } else if constexpr (F == QFormat::q4_1) {
                u = V::nibbles16(b + 4);
                offw = V::half(kdetail::rd16(b + 2));
            } else if constexpr (F == QFormat::q5_0) {
                u = V::or_(V::nibbles16(b + 6), V::bits_to_bytes(kdetail::rd32(b + 2), 0x10));
                offw = -16.0f * d;
            } else {
                static_assert(F == QFormat::q5_1);
                u = V::or_(V::nibbles16(b + 8), V::bits_to_bytes(kdetail::rd32(b + 4), 0x10));
                offw = V::half(kdetail::rd16(b + 2));
            }
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) p[t] = V::dot(u, V::load32(a[t].q + 32 * k));
            block32_tail<T>(p, d, offw, a, k, acc, off);
        }
    }
};

// ---- K-quants: super-blocks of 256 (q8_256 activations) ---------------------------------------

/// acc += cvt(isum)·d·d_x; off += (mfac·d_x)·msum, per token.
template <int T>
inline void block256_tail(const V::i32* isum, const int* msum, float d, float mfac, const Act256* a, std::size_t k,
                          V::f32* acc, float* off) noexcept {
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) {
        const float dx = a[t].d[k];
        acc[t] = V::fma(V::cvt(isum[t]), V::set1(d * dx), acc[t]);
        off[t] += (mfac * dx) * static_cast<float>(msum[t]);
    }
}

/// isum[t] += s(lo,hi)-scaled dot of 32 codes with the token's activation at column c.
template <int T>
inline void dot32_scaled(V::u8 u, V::i16 s, const Act256* a, std::size_t c, V::i32* isum) noexcept {
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) isum[t] = V::add(isum[t], V::dot_scaled(u, V::load32(a[t].q + c), s));
}

/// Σ_j scale_j · bsum_j over the 16 sums of 16 columns (or 8 pairs, for 32-column sub-blocks).
template <int T, int Sub>
inline void min_sums(const int* mins, const Act256* a, std::size_t k, int* msum) noexcept {
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) {
        const std::int16_t* bs = a[t].bsum + 16 * k;
        int s = 0;
        if constexpr (Sub == 16) {
            for (int j = 0; j < 16; ++j) s += mins[j] * bs[j];
        } else {
            for (int j = 0; j < 8; ++j) s += mins[j] * (bs[2 * j] + bs[2 * j + 1]);
        }
        msum[t] = s;
    }
}

template <QFormat F>
struct KBlock256 {
    using Act = Act256;
    using Row = const std::byte*;
    static constexpr std::size_t bytes = format_info(F).bytes;
    static Row row(const QWeights& w, std::size_t r) noexcept { return w.data + r * w.row_bytes; }
    static std::size_t units(const QWeights& w) noexcept { return w.in / 256; }

    template <int T>
    static void block(Row row, const QWeights&, std::size_t k, const Act* a, V::f32* acc, float* off) noexcept {
        const std::byte* b = row + k * bytes;
        const std::size_t c0 = 256 * k;
        V::i32 isum[T];
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) isum[t] = V::izero();
        int msum[T];
        if constexpr (F == QFormat::q4_k || F == QFormat::q5_k) {
            const float d = V::half(kdetail::rd16(b)), dmin = V::half(kdetail::rd16(b + 2));
            int sc[8], mn[8];
            kdetail::k4_scale_min(b + 4, sc, mn);
            const std::byte* qs = b + (F == QFormat::q4_k ? 16 : 48);
            [[maybe_unused]] V::u8 hv{};
            if constexpr (F == QFormat::q5_k) hv = V::load32(b + 16);
            const auto pair = [&]<int J>() {
                const V::u8 v = V::load32(qs + 32 * J);
                V::u8 lo = V::template shr_mask<0>(v, 0x0F), hi = V::template shr_mask<4>(v, 0x0F);
                if constexpr (F == QFormat::q5_k) {
                    lo = V::or_(lo, V::template shl_small<4>(V::template shr_mask<2 * J>(hv, 1)));
                    hi = V::or_(hi, V::template shl_small<4>(V::template shr_mask<2 * J + 1>(hv, 1)));
                }
                dot32_scaled<T>(lo, V::scales(sc[2 * J], sc[2 * J]), a, c0 + 64 * J, isum);
                dot32_scaled<T>(hi, V::scales(sc[2 * J + 1], sc[2 * J + 1]), a, c0 + 64 * J + 32, isum);
            };
            pair.template operator()<0>();
            pair.template operator()<1>();
            pair.template operator()<2>();
            pair.template operator()<3>();
            min_sums<T, 32>(mn, a, k, msum);
            block256_tail<T>(isum, msum, d, -dmin, a, k, acc, off);
        } else if constexpr (F == QFormat::q6_k) {
            const std::byte* ql = b;
            const std::byte* qh = b + 128;
            int s[16];
            for (int j = 0; j < 16; ++j) s[j] = static_cast<std::int8_t>(kdetail::rd8(b + 192 + j));
            const float d = V::half(kdetail::rd16(b + 208));
            const auto half = [&]<int H>() {
                const V::u8 l0 = V::load32(ql + 64 * H), l1 = V::load32(ql + 64 * H + 32), h = V::load32(qh + 32 * H);
                const V::u8 u0 = V::or_(V::template shr_mask<0>(l0, 0x0F), V::template shl_small<4>(V::template shr_mask<0>(h, 3)));
                const V::u8 u1 = V::or_(V::template shr_mask<0>(l1, 0x0F), V::template shl_small<4>(V::template shr_mask<2>(h, 3)));
                const V::u8 u2 = V::or_(V::template shr_mask<4>(l0, 0x0F), V::template shl_small<4>(V::template shr_mask<4>(h, 3)));
                const V::u8 u3 = V::or_(V::template shr_mask<4>(l1, 0x0F), V::template shl_small<4>(V::template shr_mask<6>(h, 3)));
                const int* sh = s + 8 * H;
                const std::size_t c = c0 + 128 * H;
                dot32_scaled<T>(u0, V::scales(sh[0], sh[1]), a, c, isum);
                dot32_scaled<T>(u1, V::scales(sh[2], sh[3]), a, c + 32, isum);
                dot32_scaled<T>(u2, V::scales(sh[4], sh[5]), a, c + 64, isum);
                dot32_scaled<T>(u3, V::scales(sh[6], sh[7]), a, c + 96, isum);
            };
            half.template operator()<0>();
            half.template operator()<1>();
            min_sums<T, 16>(s, a, k, msum);
            block256_tail<T>(isum, msum, d, -32.0f * d, a, k, acc, off);
        } else if constexpr (F == QFormat::q3_k) {
            const std::byte* sc = b + 96;
            int s[16];
            for (int j = 0; j < 16; ++j) {
                const int lo = j < 8 ? (kdetail::rd8(sc + j) & 0xF) : (kdetail::rd8(sc + j - 8) >> 4);
                const int hi = (kdetail::rd8(sc + 8 + j % 4) >> (2 * (j / 4))) & 3;
                s[j] = (lo | (hi << 4)) - 32;
            }
            const float d = V::half(kdetail::rd16(b + 108));
            const V::u8 hm = V::load32(b);
            const auto half = [&]<int H>() {
                const V::u8 q = V::load32(b + 32 + 32 * H);
                const int* sh = s + 8 * H;
                const std::size_t c = c0 + 128 * H;
                const auto quarter = [&]<int M>() {
                    const V::u8 u = V::or_(V::template shr_mask<2 * M>(q, 3),
                                           V::template shl_small<2>(V::template shr_mask<4 * H + M>(hm, 1)));
                    dot32_scaled<T>(u, V::scales(sh[2 * M], sh[2 * M + 1]), a, c + 32 * M, isum);
                };
                quarter.template operator()<0>();
                quarter.template operator()<1>();
                quarter.template operator()<2>();
                quarter.template operator()<3>();
            };
            half.template operator()<0>();
            half.template operator()<1>();
            min_sums<T, 16>(s, a, k, msum);
            block256_tail<T>(isum, msum, d, -4.0f * d, a, k, acc, off);
        } else {
            static_assert(F == QFormat::q2_k);
            int s[16], mn[16];
            for (int j = 0; j < 16; ++j) {
                s[j] = kdetail::rd8(b + j) & 0xF;
                mn[j] = kdetail::rd8(b + j) >> 4;
            }
            const float d = V::half(kdetail::rd16(b + 80)), dmin = V::half(kdetail::rd16(b + 82));
            const auto half = [&]<int H>() {
                const V::u8 q = V::load32(b + 16 + 32 * H);
                const int* sh = s + 8 * H;
                const std::size_t c = c0 + 128 * H;
                dot32_scaled<T>(V::template shr_mask<0>(q, 3), V::scales(sh[0], sh[1]), a, c, isum);
                dot32_scaled<T>(V::template shr_mask<2>(q, 3), V::scales(sh[2], sh[3]), a, c + 32, isum);
                dot32_scaled<T>(V::template shr_mask<4>(q, 3), V::scales(sh[4], sh[5]), a, c + 64, isum);
                dot32_scaled<T>(V::template shr_mask<6>(q, 3), V::scales(sh[6], sh[7]), a, c + 96, isum);
            };
            half.template operator()<0>();
            half.template operator()<1>();
            min_sums<T, 16>(mn, a, k, msum);
            block256_tail<T>(isum, msum, d, -dmin, a, k, acc, off);
        }
    }
};

// ---- MLX affine 2 / 4 / 8-bit: one unit = one group (32, 64 or 128 columns) -------------------

template <QFormat F>
struct KMlx {
    using Act = Act32;
    struct Row {
        const std::byte* codes;
        const float* scales;
        const float* biases;
    };
    static constexpr std::size_t bytes32 = format_info(F).bytes;  // bytes of 32 codes
    static Row row(const QWeights& w, std::size_t r) noexcept {
        const std::size_t gpr = w.in / w.group;
        return {w.data + r * w.row_bytes, w.scales + r * gpr, w.biases + r * gpr};
    }
    static std::size_t units(const QWeights& w) noexcept { return w.in / w.group; }

    template <int T>
    static void block(const Row& row, const QWeights& w, std::size_t g, const Act* a, V::f32* acc, float* off) noexcept {
        const std::size_t subs = w.group / 32, k0 = g * subs;
        const float scale = row.scales[g];
        float bias = row.biases[g];
        if constexpr (F == QFormat::mlx8) bias += 128.0f * scale;
        for (std::size_t i = 0; i < subs; ++i) {
            const std::byte* p = row.codes + (k0 + i) * bytes32;
            V::i32 dp[T];
            if constexpr (F == QFormat::mlx8) {
                const V::u8 q = V::xor_(V::load32(p), V::splat(0x80));  // u − 128 as a signed byte
                OPTIQ_UNROLL
                for (int t = 0; t < T; ++t) dp[t] = V::dot_ss(q, V::load32(a[t].q + 32 * (k0 + i)));
            } else {
                const V::u8 u = F == QFormat::mlx4 ? V::nibbles16(p) : V::crumbs8(p);
                OPTIQ_UNROLL
                for (int t = 0; t < T; ++t) dp[t] = V::dot(u, V::load32(a[t].q + 32 * (k0 + i)));
            }
            OPTIQ_UNROLL
            for (int t = 0; t < T; ++t) acc[t] = V::fma(V::cvt(dp[t]), V::set1(scale * a[t].d[k0 + i]), acc[t]);
        }
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) {
            float s = 0.0f;
            for (std::size_t i = 0; i < subs; ++i) s += a[t].s[k0 + i];
            off[t] += bias * s;
        }
    }
};

// ---- activations ------------------------------------------------------------------------------

/// The column order of one 32-column block of `kind` (q8_32_nib / q8_32_crumb: the order in which
/// the format's decoder lays codes out in a vector).
inline void permute32(ActKind kind, const float* x, float* out) noexcept {
    if (kind == ActKind::q8_32_nib) {
        for (int j = 0; j < 16; ++j) {
            out[j] = x[2 * j];
            out[16 + j] = x[2 * j + 1];
        }
    } else {
        for (int j = 0; j < 4; ++j)
            for (int k = 0; k < 8; ++k) out[8 * j + k] = x[4 * k + j];
    }
}

/// Rows [t0, t1) of x [n][in] rounded to 8 bits into buf (already sized by ActBuffer::shape).
inline void quantize_rows(const float* x, std::size_t t0, std::size_t t1, ActBuffer& buf) noexcept {
    const std::size_t in = buf.in;
    for (std::size_t t = t0; t < t1; ++t) {
        const float* xr = x + t * in;
        std::int8_t* q = buf.q.data() + t * in;
        if (buf.kind == ActKind::q8_256) {
            float* d = buf.d.data() + t * (in / 256);
            std::int16_t* bs = buf.bsum.data() + t * (in / 16);
            for (std::size_t b = 0; b < in / 256; ++b) {
                const float amax = V::absmax(xr + 256 * b, 256);
                const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
                d[b] = amax / 127.0f;
                for (std::size_t c = 0; c < 256; c += 32) (void)V::quantize32(xr + 256 * b + c, id, q + 256 * b + c);
                for (std::size_t j = 0; j < 16; ++j) {
                    int s = 0;
                    for (std::size_t i = 0; i < 16; ++i) s += q[256 * b + 16 * j + i];
                    bs[16 * b + j] = static_cast<std::int16_t>(s);
                }
            }
        } else {
            float* d = buf.d.data() + t * (in / 32);
            float* s = buf.s.data() + t * (in / 32);
            alignas(32) float tmp[32];
            for (std::size_t b = 0; b < in / 32; ++b) {
                const float* src = xr + 32 * b;
                if (buf.kind != ActKind::q8_32) {
                    permute32(buf.kind, src, tmp);
                    src = tmp;
                }
                const float amax = V::absmax(src, 32);
                const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
                const float dd = amax / 127.0f;
                const int sum = V::quantize32(src, id, q + 32 * b);
                d[b] = dd;
                s[b] = dd * static_cast<float>(sum);
            }
        }
    }
}

// ---- token-vector kernels (prefill: many tokens, one token per 4-byte lane) ----------------------
//
// The row-major kernels above spend most of a prefill on per-block float work (one conversion and
// two multiply-adds per block, row and token). Here a weight row's 32 codes are decoded once and
// each 4-code piece is broadcast to eight lanes that hold eight tokens' activations (TokPanel), so
// one integer dot covers 4 columns of 8 tokens and the float work is done once per block for eight
// tokens. Every format is expressed as w = s·u + m per 16 or 32 columns (s, m exact in f32: an f16
// times a small integer), the activations are q8_32 (d per 32 columns) for every format, and codes
// are at most 6 bits (8-bit formats keep the row-major kernels: AVX2's maddubs would saturate).

/// Decodes one unit (32 or 256 columns) of row r into code vectors (natural order within the
/// activation kind's block) and per-16 (g16) or per-32 column scale s and offset m.
template <QFormat F>
struct TokDecode;

template <QFormat F>
    requires(F == QFormat::q4_0 || F == QFormat::q4_1 || F == QFormat::q5_0 || F == QFormat::q5_1)
struct TokDecode<F> {
    static constexpr std::size_t cols = 32;
    static constexpr bool g16 = false;
    static void decode(const QWeights& w, std::size_t r, std::size_t unit, V::u8* u, float* s, float* m) noexcept {
        const std::byte* b = w.data + r * w.row_bytes + unit * format_info(F).bytes;
        const float d = V::half(kdetail::rd16(b));
        s[0] = d;
        if constexpr (F == QFormat::q4_0) {
            u[0] = V::nibbles16(b + 2);
            m[0] = -8.0f * d;
        } else if constexpr (F == QFormat::q4_1) {
            u[0] = V::nibbles16(b + 4);
            m[0] = V::half(kdetail::rd16(b + 2));
        } else if constexpr (F == QFormat::q5_0) {
            u[0] = V::or_(V::nibbles16(b + 6), V::bits_to_bytes(kdetail::rd32(b + 2), 0x10));
            m[0] = -16.0f * d;
        } else {
            u[0] = V::or_(V::nibbles16(b + 8), V::bits_to_bytes(kdetail::rd32(b + 4), 0x10));
            m[0] = V::half(kdetail::rd16(b + 2));
        }
    }
};

template <QFormat F>
    requires(F == QFormat::mlx2 || F == QFormat::mlx4)
struct TokDecode<F> {
    static constexpr std::size_t cols = 32;
    static constexpr bool g16 = false;
    static void decode(const QWeights& w, std::size_t r, std::size_t unit, V::u8* u, float* s, float* m) noexcept {
        const std::byte* p = w.data + r * w.row_bytes + unit * format_info(F).bytes;
        u[0] = F == QFormat::mlx4 ? V::nibbles16(p) : V::crumbs8(p);
        const std::size_t gi = r * (w.in / w.group) + unit * 32 / w.group;
        s[0] = w.scales[gi];
        m[0] = w.biases[gi];
    }
};

template <QFormat F>
    requires(F == QFormat::q4_k || F == QFormat::q5_k)
struct TokDecode<F> {
    static constexpr std::size_t cols = 256;
    static constexpr bool g16 = false;
    static void decode(const QWeights& w, std::size_t r, std::size_t unit, V::u8* u, float* s, float* m) noexcept {
        const std::byte* b = w.data + r * w.row_bytes + unit * format_info(F).bytes;
        const float d = V::half(kdetail::rd16(b)), dmin = V::half(kdetail::rd16(b + 2));
        int sc[8], mn[8];
        kdetail::k4_scale_min(b + 4, sc, mn);
        for (int j = 0; j < 8; ++j) {
            s[j] = d * static_cast<float>(sc[j]);
            m[j] = -(dmin * static_cast<float>(mn[j]));
        }
        const std::byte* qs = b + (F == QFormat::q4_k ? 16 : 48);
        [[maybe_unused]] V::u8 hv{};
        if constexpr (F == QFormat::q5_k) hv = V::load32(b + 16);
        const auto pair = [&]<int J>() {
            const V::u8 v = V::load32(qs + 32 * J);
            V::u8 lo = V::template shr_mask<0>(v, 0x0F), hi = V::template shr_mask<4>(v, 0x0F);
            if constexpr (F == QFormat::q5_k) {
                lo = V::or_(lo, V::template shl_small<4>(V::template shr_mask<2 * J>(hv, 1)));
                hi = V::or_(hi, V::template shl_small<4>(V::template shr_mask<2 * J + 1>(hv, 1)));
            }
            u[2 * J] = lo;
            u[2 * J + 1] = hi;
        };
        pair.template operator()<0>();
        pair.template operator()<1>();
        pair.template operator()<2>();
        pair.template operator()<3>();
    }
};

template <QFormat F>
    requires(F == QFormat::q2_k || F == QFormat::q3_k || F == QFormat::q6_k)
struct TokDecode<F> {
    static constexpr std::size_t cols = 256;
    static constexpr bool g16 = true;
    static void decode(const QWeights& w, std::size_t r, std::size_t unit, V::u8* u, float* s, float* m) noexcept {
        const std::byte* b = w.data + r * w.row_bytes + unit * format_info(F).bytes;
        if constexpr (F == QFormat::q6_k) {
            const float d = V::half(kdetail::rd16(b + 208));
            for (int j = 0; j < 16; ++j) {
                s[j] = d * static_cast<float>(static_cast<std::int8_t>(kdetail::rd8(b + 192 + j)));
                m[j] = -32.0f * s[j];
            }
            const std::byte* ql = b;
            const std::byte* qh = b + 128;
            const auto half = [&]<int H>() {
                const V::u8 l0 = V::load32(ql + 64 * H), l1 = V::load32(ql + 64 * H + 32), h = V::load32(qh + 32 * H);
                u[4 * H + 0] = V::or_(V::template shr_mask<0>(l0, 0x0F), V::template shl_small<4>(V::template shr_mask<0>(h, 3)));
                u[4 * H + 1] = V::or_(V::template shr_mask<0>(l1, 0x0F), V::template shl_small<4>(V::template shr_mask<2>(h, 3)));
                u[4 * H + 2] = V::or_(V::template shr_mask<4>(l0, 0x0F), V::template shl_small<4>(V::template shr_mask<4>(h, 3)));
                u[4 * H + 3] = V::or_(V::template shr_mask<4>(l1, 0x0F), V::template shl_small<4>(V::template shr_mask<6>(h, 3)));
            };
            half.template operator()<0>();
            half.template operator()<1>();
        } else if constexpr (F == QFormat::q3_k) {
            const std::byte* sc = b + 96;
            const float d = V::half(kdetail::rd16(b + 108));
            for (int j = 0; j < 16; ++j) {
                const int lo = j < 8 ? (kdetail::rd8(sc + j) & 0xF) : (kdetail::rd8(sc + j - 8) >> 4);
                const int hi = (kdetail::rd8(sc + 8 + j % 4) >> (2 * (j / 4))) & 3;
                s[j] = d * static_cast<float>((lo | (hi << 4)) - 32);
                m[j] = -4.0f * s[j];
            }
            const V::u8 hm = V::load32(b);
            const auto half = [&]<int H>() {
                const V::u8 q = V::load32(b + 32 + 32 * H);
                const auto quarter = [&]<int M>() {
                    u[4 * H + M] = V::or_(V::template shr_mask<2 * M>(q, 3),
                                          V::template shl_small<2>(V::template shr_mask<4 * H + M>(hm, 1)));
                };
                quarter.template operator()<0>();
                quarter.template operator()<1>();
                quarter.template operator()<2>();
                quarter.template operator()<3>();
            };
            half.template operator()<0>();
            half.template operator()<1>();
        } else {
            const float d = V::half(kdetail::rd16(b + 80)), dmin = V::half(kdetail::rd16(b + 82));
            for (int j = 0; j < 16; ++j) {
                s[j] = d * static_cast<float>(kdetail::rd8(b + j) & 0xF);
                m[j] = -(dmin * static_cast<float>(kdetail::rd8(b + j) >> 4));
            }
            const auto half = [&]<int H>() {
                const V::u8 q = V::load32(b + 16 + 32 * H);
                u[4 * H + 0] = V::template shr_mask<0>(q, 3);
                u[4 * H + 1] = V::template shr_mask<2>(q, 3);
                u[4 * H + 2] = V::template shr_mask<4>(q, 3);
                u[4 * H + 3] = V::template shr_mask<6>(q, 3);
            };
            half.template operator()<0>();
            half.template operator()<1>();
        }
    }
};

/// acc[r][g] += Σ over 4-byte pieces J0..J1-1 of bcast4<J>(u[r]) · panel piece J of group g.
template <int R, int G, int J0, int J1>
inline void tok_dots(const V::u8* u, const std::int8_t* const* xq, V::i32 (*acc)[G]) noexcept {
    const auto step = [&]<int J>() {
        V::u8 x[G];
        OPTIQ_UNROLL
        for (int g = 0; g < G; ++g) x[g] = V::load32(xq[g] + 32 * J);
        OPTIQ_UNROLL
        for (int r = 0; r < R; ++r) {
            const V::u8 w = V::template bcast4<J>(u[r]);
            OPTIQ_UNROLL
            for (int g = 0; g < G; ++g) acc[r][g] = V::dot_acc(acc[r][g], w, x[g]);
        }
    };
    [&]<int... J>(std::integer_sequence<int, J...>) { (step.template operator()<J0 + J>(), ...); }(
        std::make_integer_sequence<int, J1 - J0>{});
}

/// Rows r0..r0+R-1 of job for token groups g0..g0+G-1 of the panel.
template <QFormat F, int R, int G>
inline void tok_block(const QJob& job, const TokPanel& P, std::size_t r0, std::size_t g0) noexcept {
    using D = TokDecode<F>;
    constexpr std::size_t vecs = D::cols / 32, nsm = D::g16 ? D::cols / 16 : D::cols / 32;
    const std::size_t in = P.in, units = in / D::cols;
    V::f32 f[R][G], o[R][G];
    OPTIQ_UNROLL
    for (int r = 0; r < R; ++r)
        OPTIQ_UNROLL
        for (int g = 0; g < G; ++g) f[r][g] = o[r][g] = V::fzero();
    for (std::size_t unit = 0; unit < units; ++unit) {
        V::u8 u[R][vecs];
        float s[R][nsm], m[R][nsm];
        OPTIQ_UNROLL
        for (int r = 0; r < R; ++r) D::decode(job.w, r0 + static_cast<std::size_t>(r), unit, u[r], s[r], m[r]);
        for (std::size_t v = 0; v < vecs; ++v) {
            const std::size_t c32 = unit * vecs + v;  // 32-column block index
            const std::int8_t* xq[G];
            V::f32 dx[G];
            OPTIQ_UNROLL
            for (int g = 0; g < G; ++g) {
                const std::size_t gg = g0 + static_cast<std::size_t>(g);
                xq[g] = P.q.data() + (gg * (in / 4) + 8 * c32) * 32;
                dx[g] = V::loadf(P.d.data() + (gg * (in / 32) + c32) * 8);
            }
            V::u8 uv[R];
            OPTIQ_UNROLL
            for (int r = 0; r < R; ++r) uv[r] = u[r][v];
            if constexpr (D::g16) {
                const auto half = [&]<int H>() {
                    V::i32 acc[R][G];
                    OPTIQ_UNROLL
                    for (int r = 0; r < R; ++r)
                        OPTIQ_UNROLL
                        for (int g = 0; g < G; ++g) acc[r][g] = V::izero();
                    tok_dots<R, G, 4 * H, 4 * H + 4>(uv, xq, acc);
                    OPTIQ_UNROLL
                    for (int g = 0; g < G; ++g) {
                        const std::size_t gg = g0 + static_cast<std::size_t>(g);
                        const V::f32 sx = V::loadf(P.s16.data() + (gg * (in / 16) + 2 * c32 + H) * 8);
                        OPTIQ_UNROLL
                        for (int r = 0; r < R; ++r) {
                            f[r][g] = V::fma(V::cvt(acc[r][g]), V::mul(V::set1(s[r][2 * v + H]), dx[g]), f[r][g]);
                            o[r][g] = V::fma(V::set1(m[r][2 * v + H]), sx, o[r][g]);
                        }
                    }
                };
                half.template operator()<0>();
                half.template operator()<1>();
            } else {
                V::i32 acc[R][G];
                OPTIQ_UNROLL
                for (int r = 0; r < R; ++r)
                    OPTIQ_UNROLL
                    for (int g = 0; g < G; ++g) acc[r][g] = V::izero();
                tok_dots<R, G, 0, 8>(uv, xq, acc);
                OPTIQ_UNROLL
                for (int g = 0; g < G; ++g) {
                    const std::size_t gg = g0 + static_cast<std::size_t>(g);
                    const V::f32 sx = V::loadf(P.s.data() + (gg * (in / 32) + c32) * 8);
                    OPTIQ_UNROLL
                    for (int r = 0; r < R; ++r) {
                        f[r][g] = V::fma(V::cvt(acc[r][g]), V::mul(V::set1(s[r][v]), dx[g]), f[r][g]);
                        o[r][g] = V::fma(V::set1(m[r][v]), sx, o[r][g]);
                    }
                }
            }
        }
    }
    OPTIQ_UNROLL
    for (int r = 0; r < R; ++r) {
        const std::size_t row = r0 + static_cast<std::size_t>(r);
        const float bias = job.bias ? job.bias[row] : 0.0f;
        OPTIQ_UNROLL
        for (int g = 0; g < G; ++g) {
            alignas(32) float lanes[8];
            V::storef(lanes, V::addf(f[r][g], o[r][g]));
            const std::size_t t0 = 8 * (g0 + static_cast<std::size_t>(g));
            const std::size_t nt = std::min<std::size_t>(8, P.n - t0);
            for (std::size_t l = 0; l < nt; ++l) job.y[(t0 + l) * job.ldy + row] = lanes[l] + bias;
        }
    }
}

/// Rows per pass (each row's codes decoded once per eight tokens, each panel load shared by R rows)
/// and token groups per pass. Measured on Zen 4 (Qwen2.5-0.5B Q4_K_M prefill, 2 threads): R=8 G=1
/// 278 tok/s, R=4 G=1 262, R=2 G=2 193, R=1 G=4 210. AVX2 has 16 vector registers: R=4 there.
#if OPTIQ_QM_ISA == 1
inline constexpr int kTokRows = 4;
#else
inline constexpr int kTokRows = 8;
#endif
inline constexpr int kTokGroups = 1;

template <QFormat F>
inline void tok_rows_f(const QJob& job, const TokPanel& P, std::size_t r0, std::size_t r1) noexcept {
    constexpr int R = kTokRows, G = kTokGroups;
    for (std::size_t g = 0; g < P.groups;) {
        if (P.groups - g >= G) {
            std::size_t r = r0;
            for (; r + R <= r1; r += R) tok_block<F, R, G>(job, P, r, g);
            for (; r < r1; ++r) tok_block<F, 1, G>(job, P, r, g);
            g += G;
        } else {
            std::size_t r = r0;
            for (; r + R <= r1; r += R) tok_block<F, R, 1>(job, P, r, g);
            for (; r < r1; ++r) tok_block<F, 1, 1>(job, P, r, g);
            g += 1;
        }
    }
}

/// Rows [r0, r1) of job for every token of the panel (format: tok_format(job.w.format)).
inline void tok_rows(const QJob& job, const TokPanel& P, std::size_t r0, std::size_t r1) noexcept {
    switch (job.w.format) {
        case QFormat::q4_0: return tok_rows_f<QFormat::q4_0>(job, P, r0, r1);
        case QFormat::q4_1: return tok_rows_f<QFormat::q4_1>(job, P, r0, r1);
        case QFormat::q5_0: return tok_rows_f<QFormat::q5_0>(job, P, r0, r1);
        case QFormat::q5_1: return tok_rows_f<QFormat::q5_1>(job, P, r0, r1);
        case QFormat::q2_k: return tok_rows_f<QFormat::q2_k>(job, P, r0, r1);
        case QFormat::q3_k: return tok_rows_f<QFormat::q3_k>(job, P, r0, r1);
        case QFormat::q4_k: return tok_rows_f<QFormat::q4_k>(job, P, r0, r1);
        case QFormat::q5_k: return tok_rows_f<QFormat::q5_k>(job, P, r0, r1);
        case QFormat::q6_k: return tok_rows_f<QFormat::q6_k>(job, P, r0, r1);
        case QFormat::mlx2: return tok_rows_f<QFormat::mlx2>(job, P, r0, r1);
        case QFormat::mlx4: return tok_rows_f<QFormat::mlx4>(job, P, r0, r1);
        default: return;  // 8-bit formats: not in the token path (tok_eligible)
    }
}

// ---- row drivers ------------------------------------------------------------------------------

template <class K, int T>
inline void rows_t(const QJob& job, const ActBuffer& acts, std::size_t r0, std::size_t r1, std::size_t t0) noexcept {
    typename K::Act a[T];
    OPTIQ_UNROLL
    for (int t = 0; t < T; ++t) {
        if constexpr (std::is_same_v<typename K::Act, Act256>) a[t] = acts.act256(t0 + static_cast<std::size_t>(t));
        else a[t] = acts.act32(t0 + static_cast<std::size_t>(t));
    }
    const std::size_t units = K::units(job.w);
    for (std::size_t r = r0; r < r1; ++r) {
        const auto row = K::row(job.w, r);
        V::f32 acc[T];
        float off[T];
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) {
            acc[t] = V::fzero();
            off[t] = 0.0f;
        }
        for (std::size_t u = 0; u < units; ++u) K::template block<T>(row, job.w, u, a, acc, off);
        const float bias = job.bias ? job.bias[r] : 0.0f;
        OPTIQ_UNROLL
        for (int t = 0; t < T; ++t) job.y[(t0 + static_cast<std::size_t>(t)) * job.ldy + r] = (V::hsum(acc[t]) + off[t]) + bias;
    }
}

/// Tokens per pass: each weight block is decoded once per this many tokens.
inline constexpr std::size_t kTokensPerPass = 4;

template <class K>
inline void rows_k(const QJob& job, const ActBuffer& acts, std::size_t r0, std::size_t r1, std::size_t t0,
                   std::size_t nt) noexcept {
    for (; nt >= 4; nt -= 4, t0 += 4) rows_t<K, 4>(job, acts, r0, r1, t0);
    switch (nt) {
        case 3: rows_t<K, 3>(job, acts, r0, r1, t0); break;
        case 2: rows_t<K, 2>(job, acts, r0, r1, t0); break;
        case 1: rows_t<K, 1>(job, acts, r0, r1, t0); break;
        default: break;
    }
}

/// Rows [r0, r1) of job for tokens [t0, t0 + nt) (acts of job's ActKind).
inline void rows(const QJob& job, const ActBuffer& acts, std::size_t r0, std::size_t r1, std::size_t t0,
                 std::size_t nt) noexcept {
    switch (job.w.format) {
        case QFormat::q4_0: return rows_k<KBlock32<QFormat::q4_0>>(job, acts, r0, r1, t0, nt);
        case QFormat::q4_1: return rows_k<KBlock32<QFormat::q4_1>>(job, acts, r0, r1, t0, nt);
        case QFormat::q5_0: return rows_k<KBlock32<QFormat::q5_0>>(job, acts, r0, r1, t0, nt);
        case QFormat::q5_1: return rows_k<KBlock32<QFormat::q5_1>>(job, acts, r0, r1, t0, nt);
        case QFormat::q8_0: return rows_k<KBlock32<QFormat::q8_0>>(job, acts, r0, r1, t0, nt);
        case QFormat::q2_k: return rows_k<KBlock256<QFormat::q2_k>>(job, acts, r0, r1, t0, nt);
        case QFormat::q3_k: return rows_k<KBlock256<QFormat::q3_k>>(job, acts, r0, r1, t0, nt);
        case QFormat::q4_k: return rows_k<KBlock256<QFormat::q4_k>>(job, acts, r0, r1, t0, nt);
        case QFormat::q5_k: return rows_k<KBlock256<QFormat::q5_k>>(job, acts, r0, r1, t0, nt);
        case QFormat::q6_k: return rows_k<KBlock256<QFormat::q6_k>>(job, acts, r0, r1, t0, nt);
        case QFormat::mlx2: return rows_k<KMlx<QFormat::mlx2>>(job, acts, r0, r1, t0, nt);
        case QFormat::mlx4: return rows_k<KMlx<QFormat::mlx4>>(job, acts, r0, r1, t0, nt);
        case QFormat::mlx8: return rows_k<KMlx<QFormat::mlx8>>(job, acts, r0, r1, t0, nt);
    }
}

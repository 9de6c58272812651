#pragma once
// Operands of the integer-activation matmul (qmatmul.hpp): y[t][r] = W[r] · x̃[t] (+ b[r]) where
// W stays in its stored block format and x̃ is x rounded to 8 bits per block, once per call:
//   q8_32    blocks of 32: d = max|x|/127, q = round(x/d) (ties to even), and s = d·Σq
//            (ggml's Q8_0 with Q8_1's sum; the activation of the 32-element block formats)
//   q8_256   blocks of 256 with one d and Σq per 16 (ggml's Q8_K; the K-quants' activation)
// The result is the exact product of the stored weights with x̃ up to float rounding, so the
// accuracy cost is that of the 8-bit activation alone (docs/results.md measures it).
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace optiq::backend::qmatmul {

/// A weight layout the integer kernels read in place. GGUF block types keep ggml's bytes
/// (ggml-common.h); mlx_* are mx.quantize rows (LSB-first codes in uint32 words, one f32 scale
/// and bias per group of 32, 64 or 128).
enum class QFormat : std::uint8_t { q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, mlx2, mlx4, mlx8 };

/// How a format wants its activations.
enum class ActKind : std::uint8_t {
    q8_32,        ///< blocks of 32 in column order
    q8_32_nib,    ///< blocks of 32, each reordered to columns 0,2,..,30,1,3,..,31 (MLX 4-bit nibbles)
    q8_32_crumb,  ///< blocks of 32, columns 0,4,..,28,1,5,..,29,2,..,3,..,31 (MLX 2-bit pairs)
    q8_256,       ///< blocks of 256 (K-quants)
};
inline constexpr std::size_t kActKinds = 4;

struct FormatInfo {
    std::string_view name;
    std::size_t block;  ///< columns per block (a row is whole blocks)
    std::size_t bytes;  ///< bytes per block (ggml types; mlx: bits·32/8 per 32 columns)
    ActKind act;
};

[[nodiscard]] constexpr FormatInfo format_info(QFormat f) noexcept {
    switch (f) {
        case QFormat::q4_0: return {"Q4_0", 32, 18, ActKind::q8_32};
        case QFormat::q4_1: return {"Q4_1", 32, 20, ActKind::q8_32};
        case QFormat::q5_0: return {"Q5_0", 32, 22, ActKind::q8_32};
        case QFormat::q5_1: return {"Q5_1", 32, 24, ActKind::q8_32};
        case QFormat::q8_0: return {"Q8_0", 32, 34, ActKind::q8_32};
        case QFormat::q2_k: return {"Q2_K", 256, 84, ActKind::q8_256};
        case QFormat::q3_k: return {"Q3_K", 256, 110, ActKind::q8_256};
        case QFormat::q4_k: return {"Q4_K", 256, 144, ActKind::q8_256};
        case QFormat::q5_k: return {"Q5_K", 256, 176, ActKind::q8_256};
        case QFormat::q6_k: return {"Q6_K", 256, 210, ActKind::q8_256};
        case QFormat::mlx2: return {"mlx_affine:2", 32, 8, ActKind::q8_32_crumb};
        case QFormat::mlx4: return {"mlx_affine:4", 32, 16, ActKind::q8_32_nib};
        case QFormat::mlx8: return {"mlx_affine:8", 32, 32, ActKind::q8_32};
    }
    return {"?", 1, 1, ActKind::q8_32};
}

/// The integer-kernel format of a ggml type id (ggml.h numbering), nullopt for types without one.
[[nodiscard]] constexpr std::optional<QFormat> format_of_ggml(std::uint32_t type) noexcept {
    switch (type) {
        case 2: return QFormat::q4_0;
        case 3: return QFormat::q4_1;
        case 6: return QFormat::q5_0;
        case 7: return QFormat::q5_1;
        case 8: return QFormat::q8_0;
        case 10: return QFormat::q2_k;
        case 11: return QFormat::q3_k;
        case 12: return QFormat::q4_k;
        case 13: return QFormat::q5_k;
        case 14: return QFormat::q6_k;
        default: return std::nullopt;
    }
}

/// The MLX affine format of `bits` (2, 4, 8) with group `group` (a multiple of 32), nullopt otherwise
/// (3, 5 and 6-bit codes straddle bytes: those keep the f32-activation kernels).
[[nodiscard]] constexpr std::optional<QFormat> format_of_mlx(int bits, std::size_t group) noexcept {
    if (group == 0 || group % 32 != 0) return std::nullopt;
    switch (bits) {
        case 2: return QFormat::mlx2;
        case 4: return QFormat::mlx4;
        case 8: return QFormat::mlx8;
        default: return std::nullopt;
    }
}

/// One weight matrix [out, in] in format `format`. Plain views over memory the caller owns.
struct QWeights {
    QFormat format = QFormat::q4_0;
    const std::byte* data = nullptr;  ///< row r starts at data + r·row_bytes
    std::size_t row_bytes = 0;
    std::size_t in = 0;
    const float* scales = nullptr;  ///< mlx: [out][in / group]
    const float* biases = nullptr;
    std::size_t group = 0;
};

/// One matmul of a fused call: y[t·ldy + r] = W[r] · x̃[t] + bias[r] for r < out.
struct QJob {
    QWeights w;
    std::size_t out = 0;
    float* y = nullptr;
    std::size_t ldy = 0;
    const float* bias = nullptr;
};

/// One token's q8_32 activation: q[in], d and s = d·Σq per block of 32.
struct Act32 {
    const std::int8_t* q;
    const float* d;
    const float* s;
};
/// One token's q8_256 activation: q[in], d per block of 256, Σq per 16.
struct Act256 {
    const std::int8_t* q;
    const float* d;
    const std::int16_t* bsum;
};

/// The 8-bit activations of n tokens of `in` columns, of one ActKind (qmatmul::quantize fills it).
struct ActBuffer {
    ActKind kind = ActKind::q8_32;
    std::size_t n = 0, in = 0;
    std::vector<std::int8_t> q;       ///< [n][in]
    std::vector<float> d, s;          ///< q8_32: [n][in/32] each; q8_256: d [n][in/256]
    std::vector<std::int16_t> bsum;   ///< q8_256: [n][in/16]

    /// Sizes the buffers (keeps their capacity: a decode loop reuses one buffer).
    void shape(ActKind k, std::size_t tokens, std::size_t cols) {
        kind = k;
        n = tokens;
        in = cols;
        q.resize(n * in);
        if (k == ActKind::q8_256) {
            d.resize(n * (in / 256));
            s.clear();
            bsum.resize(n * (in / 16));
        } else {
            d.resize(n * (in / 32));
            s.resize(n * (in / 32));
            bsum.clear();
        }
    }
    [[nodiscard]] Act32 act32(std::size_t t) const noexcept {
        return {q.data() + t * in, d.data() + t * (in / 32), s.data() + t * (in / 32)};
    }
    [[nodiscard]] Act256 act256(std::size_t t) const noexcept {
        return {q.data() + t * in, d.data() + t * (in / 256), bsum.data() + t * (in / 16)};
    }
};

/// The 8-bit activations of n tokens laid out for the token-vector (prefill) kernels: tokens in
/// groups of eight, one token per 4-byte lane. Group g, 4-column step c: q[((g·in/4) + c)·32 + 4·lane
/// + i] = column 4c + i of token 8g + lane (zero past the last token). Per group and lane: d and
/// s = d·Σq per 32 columns, s16 = d·Σq per 16 columns.
struct TokPanel {
    std::size_t n = 0, in = 0, groups = 0;
    std::vector<std::int8_t> q;   ///< [groups][in/4][8][4]
    std::vector<float> d, s;      ///< [groups][in/32][8]
    std::vector<float> s16;       ///< [groups][in/16][8]

    /// From the q8_32-family buffer `a` (any column order: the panel keeps the buffer's).
    void build(const ActBuffer& a) {
        n = a.n;
        in = a.in;
        groups = (n + 7) / 8;
        q.assign(groups * in * 8, 0);
        d.assign(groups * (in / 32) * 8, 0.0f);
        s.assign(groups * (in / 32) * 8, 0.0f);
        s16.assign(groups * (in / 16) * 8, 0.0f);
        for (std::size_t t = 0; t < n; ++t) {
            const std::size_t g = t / 8, lane = t % 8;
            const std::int8_t* src = a.q.data() + t * in;
            std::int8_t* dst = q.data() + g * in * 8 + 4 * lane;
            for (std::size_t c = 0; c < in / 4; ++c) std::memcpy(dst + 32 * c, src + 4 * c, 4);
            for (std::size_t b = 0; b < in / 32; ++b) {
                const float db = a.d[t * (in / 32) + b];
                d[(g * (in / 32) + b) * 8 + lane] = db;
                s[(g * (in / 32) + b) * 8 + lane] = a.s[t * (in / 32) + b];
                for (std::size_t h = 0; h < 2; ++h) {
                    int sum = 0;
                    for (std::size_t i = 0; i < 16; ++i) sum += src[32 * b + 16 * h + i];
                    s16[(g * (in / 16) + 2 * b + h) * 8 + lane] = db * static_cast<float>(sum);
                }
            }
        }
    }
};

}  // namespace optiq::backend::qmatmul

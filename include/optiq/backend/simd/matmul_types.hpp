#pragma once
// Operands of the weight-format matmul kernels (backend/simd/matmul*.hpp): y[t][r] = x[t] · W[r] + b[r]
// for W [out, in] kept in its stored format. Plain views over memory the caller owns (a
// model::Linear); the kernels read them, never copy or validate them (Linear checked the shapes).
#include <cstddef>
#include <cstdint>

namespace optiq::backend::matmul {

/// Row-major f32 weights.
struct F32Weights {
    const float* w = nullptr;
    std::size_t in = 0;
};

/// Row-major 16-bit weights: IEEE binary16 patterns, or bfloat16 when bf16.
struct HalfWeights {
    const std::uint16_t* w = nullptr;
    std::size_t in = 0;
    bool bf16 = false;
};

/// mx.quantize output for a 2-D matrix: each row is an LSB-first stream of `bits`-bit codes in
/// little-endian uint32 words (in·bits/32 words a row), and group k of row r has scale
/// scales[r·groups + k] and bias biases[r·groups + k]; w = scale·q + bias.
struct AffineWeights {
    const std::uint32_t* words = nullptr;
    std::size_t n_words = 0;  ///< all rows: kernels that read a few bytes ahead stay inside this
    const float* scales = nullptr;
    const float* biases = nullptr;
    std::size_t in = 0;
    std::size_t group = 0;
    int bits = 0;

    [[nodiscard]] std::size_t groups() const noexcept { return in / group; }
    [[nodiscard]] std::size_t row_bytes() const noexcept { return in * static_cast<std::size_t>(bits) / 8; }
};

/// Rows of ggml blocks (GGUF Q4_0 .. Q6_K) used in place: row r is row_bytes bytes at
/// data + r·row_bytes. The exact (f32-activation) kernels dequantize a row with ggml's reference
/// rule (io/ggml_quants.hpp) and multiply it as f32, so they equal an f32 copy of the matrix bit
/// for bit; qmatmul.hpp has the integer-activation kernels.
struct BlockWeights {
    std::uint32_t type = 0;  ///< ggml type id
    const std::byte* data = nullptr;
    std::size_t row_bytes = 0;
    std::size_t in = 0;
};

/// The activations x [n][in] as a kernel reads them. For affine weights x may be permuted within
/// each chunk of codes into the order the kernel unpacks them (matmul.hpp prepares it), and xsum
/// holds Σ x over each group of each token [n][groups] (MLX: bias·Σx per group).
struct Input {
    const float* x = nullptr;
    std::size_t n = 0;
    std::size_t in = 0;
    const float* xsum = nullptr;
};

/// y[t·ld + r] for the rows and tokens a kernel call covers; bias may be null.
struct Output {
    float* y = nullptr;
    std::size_t ld = 0;
    const float* bias = nullptr;
};

}  // namespace optiq::backend::matmul

#pragma once
// MLX affine keys and values (reference-spec D; mlx-lm's QuantizedKVCache): each group of g
// coordinates of a head vector gets an f16 {scale, bias} by MLX's zero-exact rule, codes packed
// as MLX's bit stream. No rotation: scores are Σ_g Σ_i q_i (scale_g code_i + bias_g) and values
// accumulate directly in the model's space.
#include <cstddef>
#include <string>

#include "optiq/codebook/affine.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/quantizer_codec.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::kv {

using MlxAffineCodec = QuantizerCodec<MlxAffine>;
static_assert(KVRunCodec<MlxAffineCodec>);

/// "affine:b:gG" for d-vectors; bits 1..8 (MLX itself: 2, 3, 4, 5, 6, 8), g must divide d.
[[nodiscard]] inline MlxAffineCodec mlx_affine_codec(std::size_t dim, int bits, std::size_t group_size = 64,
                                                     const char* which = "codec") {
    detail::check_policy_bits("affine", which, bits, 1, 8);
    if (group_size == 0 || dim % group_size != 0)
        optiq::detail::fail<config_error>("kv policy affine: ", which, " group_size = ", group_size,
                                          " does not divide the head dimension ", dim);
    return MlxAffineCodec(make_mlx_affine(dim, bits, group_size, SideType::f16),
                          "affine:" + std::to_string(bits) + ":g" + std::to_string(group_size));
}

using MlxAffinePolicy = Policy<MlxAffineCodec, MlxAffineCodec>;

[[nodiscard]] inline MlxAffinePolicy mlx_affine_policy(std::size_t dim, int k_bits, int v_bits,
                                                       std::size_t group_size = 64, std::size_t recent = 0) {
    return MlxAffinePolicy(mlx_affine_codec(dim, k_bits, group_size, "key"),
                           mlx_affine_codec(dim, v_bits, group_size, "value"), recent);
}

}  // namespace optiq::kv

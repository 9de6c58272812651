#pragma once
// Policy<KeyCodec, ValueCodec>: the KVPolicy every named policy is an instance of — a codec for
// keys, one for values (chosen separately: TurboQuant keys with f16 values is a valid policy),
// and the recent-token window that stays in full precision (KIVI's residual, arXiv 2402.02750
// Sec. 3.3): the newest `recent` tokens of each sequence are kept as f32 and quantized only
// when they leave the window. A block key codec (KIVI keys) needs a window of at least one block:
// tokens wait there until a whole block can be quantized.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "optiq/core/error.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/kv/concepts.hpp"

namespace optiq::kv {

template <KVKeyCodec KeyCodec, KVCodec ValueCodec>
class Policy {
public:
    using key_codec = KeyCodec;
    using value_codec = ValueCodec;

    Policy(KeyCodec keys, ValueCodec values, std::size_t recent = 0)
        : keys_(std::move(keys)), values_(std::move(values)), recent_(recent) {
        if (keys_.dim() != values_.dim())
            optiq::detail::fail<shape_error>("kv::Policy: key codec has dimension ", keys_.dim(), ", value codec ",
                                             values_.dim());
        const std::size_t block = key_block_tokens(keys_);
        if (block > 1 && recent_ < block)
            optiq::detail::fail<config_error>("kv::Policy: keys ", keys_.name(), " are quantized in blocks of ", block,
                                              " tokens, so the recent window must hold at least ", block,
                                              " tokens (got ", recent_, ")");
    }

    [[nodiscard]] const KeyCodec& keys() const noexcept { return keys_; }
    [[nodiscard]] const ValueCodec& values() const noexcept { return values_; }
    [[nodiscard]] std::size_t recent() const noexcept { return recent_; }
    [[nodiscard]] std::size_t dim() const noexcept { return keys_.dim(); }
    /// "k=tq_mse:4,v=tq_mse:3,recent=128".
    [[nodiscard]] std::string name() const {
        std::string s = "k=" + keys_.name() + ",v=" + values_.name();
        if (recent_ != 0) s += ",recent=" + std::to_string(recent_);
        return s;
    }

private:
    KeyCodec keys_;
    ValueCodec values_;
    std::size_t recent_;
};

namespace detail {

/// Seeds of a layer's key and value rotations/sketches, derived from the layer seed.
[[nodiscard]] inline std::uint64_t key_seed(std::uint64_t layer_seed) noexcept { return Rng::derive(layer_seed, 0); }
[[nodiscard]] inline std::uint64_t value_seed(std::uint64_t layer_seed) noexcept { return Rng::derive(layer_seed, 1); }

/// A policy constructor's bit check, naming the method and whether keys or values are at fault.
inline void check_policy_bits(const char* method, const char* which, int bits, int lo, int hi) {
    if (bits < lo || bits > hi)
        optiq::detail::fail<config_error>("kv policy ", method, ": ", which, " bits = ", bits, " is not supported (",
                                          lo, "..", hi, ")");
}

}  // namespace detail
}  // namespace optiq::kv

#pragma once
// One vector through a core method's batch interface: encode into a record, decode a record.
// The codecs of methods that have no per-vector encode into caller storage (TurboQuant-Prod,
// RVQ, QJL, PolarQuant, KIVI) use these, so their records are the core's encoding by
// construction; the price is one small allocation per appended vector.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "optiq/core/error.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq::kv::detail {

template <class Q>
void encode_one(const Q& q, std::span<const float> x, std::span<std::uint32_t> words, std::span<float> side) {
    const EncodedBatch b = q.encode(x);
    if (b.words.size() != words.size() || b.side.size() != side.size() || !b.shared.empty())
        optiq::detail::fail<shape_error>(
            "kv codec: ", q.name(), " encoded a vector into ", b.words.size(), " words, ", b.side.size(), " side and ",
            b.shared.size(), " shared values; the record has ", words.size(), " words and ", side.size(), " side");
    std::copy(b.words.begin(), b.words.end(), words.begin());
    std::copy(b.side.begin(), b.side.end(), side.begin());
}

template <class Q>
void decode_one(const Q& q, std::span<const std::uint32_t> words, std::span<const float> side, SideType side_type,
                std::span<float> out) {
    EncodedBatch b;
    b.count = 1;
    b.dim = out.size();
    b.words_per_vector = words.size();
    b.side_per_vector = side.size();
    b.side_type = side_type;
    b.words.assign(words.begin(), words.end());
    b.side.assign(side.begin(), side.end());
    q.decode(b, out);
}

/// Four running sums of d table reads, lut[i * k + codes[i]].
[[nodiscard]] inline float lut_sum(const float* lut, const std::uint8_t* codes, std::size_t d, std::size_t k) noexcept {
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::size_t i = 0;
    for (; i + 4 <= d; i += 4)
        for (std::size_t u = 0; u < 4; ++u) a[u] += lut[(i + u) * k + codes[i + u]];
    for (; i < d; ++i) a[0] += lut[i * k + codes[i]];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

}  // namespace optiq::kv::detail

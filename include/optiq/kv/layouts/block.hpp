#pragma once
// A block of record storage for `tokens` positions and every head, laid out head-major:
// [head][token][word], so one head's codes for consecutive tokens are contiguous (attention
// scores a head's keys by walking one array). Shared by the contiguous, paged and ring layouts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "optiq/kv/concepts.hpp"

namespace optiq::kv::detail {

class RecordBlock {
public:
    RecordBlock() = default;
    RecordBlock(const RecordFormat& f, std::size_t tokens)
        : tokens_(tokens),
          kw_(f.heads * tokens * f.key_words),
          ks_(f.heads * tokens * f.key_side),
          vw_(f.heads * tokens * f.value_words),
          vs_(f.heads * tokens * f.value_side) {}

    [[nodiscard]] std::size_t tokens() const noexcept { return tokens_; }

    [[nodiscard]] RecordRef record(const RecordFormat& f, std::size_t head, std::size_t t) noexcept {
        const std::size_t i = head * tokens_ + t;
        return {kw_.data() + i * f.key_words, ks_.data() + i * f.key_side, vw_.data() + i * f.value_words,
                vs_.data() + i * f.value_side};
    }

    /// Records [t, t + count) of one head as a run starting at position pos.
    [[nodiscard]] Run run(const RecordFormat& f, std::size_t head, std::size_t t, std::size_t count,
                          std::size_t pos) const noexcept {
        const std::size_t i = head * tokens_ + t;
        return {pos,
                count,
                kw_.data() + i * f.key_words,
                ks_.data() + i * f.key_side,
                vw_.data() + i * f.value_words,
                vs_.data() + i * f.value_side};
    }

    /// Copies the first `count` tokens of every head from another block (growing a layout).
    void copy_prefix(const RecordFormat& f, const RecordBlock& from, std::size_t count) {
        for (std::size_t h = 0; h < f.heads; ++h) {
            copy_head(kw_, from.kw_, f.key_words, h, from.tokens_, count);
            copy_head(ks_, from.ks_, f.key_side, h, from.tokens_, count);
            copy_head(vw_, from.vw_, f.value_words, h, from.tokens_, count);
            copy_head(vs_, from.vs_, f.value_side, h, from.tokens_, count);
        }
    }

private:
    template <class T>
    void copy_head(std::vector<T>& to, const std::vector<T>& from, std::size_t per, std::size_t h,
                   std::size_t from_tokens, std::size_t count) {
        const auto src = from.begin() + static_cast<std::ptrdiff_t>(h * from_tokens * per);
        std::copy(src, src + static_cast<std::ptrdiff_t>(count * per),
                  to.begin() + static_cast<std::ptrdiff_t>(h * tokens_ * per));
    }

    std::size_t tokens_ = 0;
    std::vector<std::uint32_t> kw_;
    std::vector<float> ks_;
    std::vector<std::uint32_t> vw_;
    std::vector<float> vs_;
};

}  // namespace optiq::kv::detail

#pragma once
// ContiguousLayout: each sequence owns one growable block, head-major ([head][token][word]), so a
// head's records are a single run. Capacity doubles when full (amortised O(1) appends; no
// allocation between doublings); truncate/clear keep the capacity for reuse.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/layouts/block.hpp"

namespace optiq::kv {

struct ContiguousOptions {
    std::size_t reserve_tokens = 0;  ///< initial capacity per sequence
};

class ContiguousLayout {
public:
    using options = ContiguousOptions;

    ContiguousLayout(const RecordFormat& format, std::size_t batch, const options& opts = {})
        : format_(format), opts_(opts), seqs_(batch) {
        if (batch == 0) optiq::detail::fail<shape_error>("kv::ContiguousLayout: batch of 0 sequences");
        for (auto& s : seqs_)
            if (opts.reserve_tokens != 0) s.block = detail::RecordBlock(format_, opts.reserve_tokens);
    }

    [[nodiscard]] std::size_t batch() const noexcept { return seqs_.size(); }
    [[nodiscard]] const RecordFormat& format() const noexcept { return format_; }
    [[nodiscard]] std::size_t held(std::size_t seq) const noexcept { return seqs_[seq].count; }
    [[nodiscard]] std::size_t first(std::size_t /*seq*/) const noexcept { return 0; }
    [[nodiscard]] std::size_t sliding_window() const noexcept { return 0; }
    [[nodiscard]] std::size_t capacity(std::size_t seq) const noexcept { return seqs_[seq].block.tokens(); }

    std::size_t push(std::size_t seq) {
        auto& s = seqs_[seq];
        if (s.count == s.block.tokens()) {
            detail::RecordBlock bigger(format_, std::max<std::size_t>(16, 2 * s.block.tokens()));
            bigger.copy_prefix(format_, s.block, s.count);
            s.block = std::move(bigger);
        }
        return s.count++;
    }

    [[nodiscard]] RecordRef record(std::size_t seq, std::size_t head, std::size_t pos) noexcept {
        return seqs_[seq].block.record(format_, head, pos);
    }

    template <class F>
    void for_each_run(std::size_t seq, std::size_t head, std::size_t from, std::size_t to, F&& f) const {
        const auto& s = seqs_[seq];
        to = std::min(to, s.count);
        if (from < to) f(s.block.run(format_, head, from, to - from, from));
    }

    void truncate(std::size_t seq, std::size_t n) noexcept { seqs_[seq].count = std::min(seqs_[seq].count, n); }
    void clear(std::size_t seq) noexcept { seqs_[seq].count = 0; }

    /// Bytes of the records held (not of the spare capacity).
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        std::size_t n = 0;
        for (const auto& s : seqs_) n += s.count;
        return n * format_.token_bytes();
    }

private:
    struct Seq {
        std::size_t count = 0;
        detail::RecordBlock block;
    };
    RecordFormat format_;
    options opts_;
    std::vector<Seq> seqs_;
};

static_assert(KVLayout<ContiguousLayout>);

}  // namespace optiq::kv

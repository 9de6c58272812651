#pragma once
// RingLayout: sliding-window attention (Mistral / Gemma local layers). A query at position p
// attends to positions (p - window, p]. Each sequence keeps the last
//   capacity = window + max_chunk - 1 - recent   (at least 1)
// quantized records in a fixed ring (head-major like a contiguous block); pushing into a full
// ring evicts the oldest position. The max_chunk - 1 extra slots let a prefill chunk of up to
// max_chunk queries see its whole window (its earliest query needs the oldest tokens); the
// `recent` newest tokens live in the cache's full-precision window, not here. At most two runs
// per head (before and after the wrap point).
#include <algorithm>
#include <cstddef>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/layouts/block.hpp"

namespace optiq::kv {

struct RingOptions {
    std::size_t window = 4096;  ///< attention span: a query sees the last `window` positions
    std::size_t max_chunk = 1;  ///< longest prefill chunk attended exactly
};

class RingLayout {
public:
    using options = RingOptions;

    RingLayout(const RecordFormat& format, std::size_t batch, const options& opts = {})
        : format_(format), opts_(opts), seqs_(batch) {
        if (batch == 0) optiq::detail::fail<shape_error>("kv::RingLayout: batch of 0 sequences");
        if (opts.window == 0) optiq::detail::fail<config_error>("kv::RingLayout: window is 0");
        if (opts.max_chunk == 0) optiq::detail::fail<config_error>("kv::RingLayout: max_chunk is 0");
        const std::size_t span = opts.window + opts.max_chunk - 1;
        capacity_ = span > format.recent ? span - format.recent : 1;
        for (auto& s : seqs_) s.block = detail::RecordBlock(format_, capacity_);
    }

    [[nodiscard]] std::size_t batch() const noexcept { return seqs_.size(); }
    [[nodiscard]] const RecordFormat& format() const noexcept { return format_; }
    [[nodiscard]] std::size_t held(std::size_t seq) const noexcept { return seqs_[seq].held; }
    [[nodiscard]] std::size_t first(std::size_t seq) const noexcept { return seqs_[seq].first; }
    [[nodiscard]] std::size_t sliding_window() const noexcept { return opts_.window; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

    std::size_t push(std::size_t seq) {
        auto& s = seqs_[seq];
        if (s.held == capacity_) {
            ++s.first;
            --s.held;
        }
        return s.first + s.held++;
    }

    [[nodiscard]] RecordRef record(std::size_t seq, std::size_t head, std::size_t pos) noexcept {
        return seqs_[seq].block.record(format_, head, pos % capacity_);
    }

    template <class F>
    void for_each_run(std::size_t seq, std::size_t head, std::size_t from, std::size_t to, F&& f) const {
        const auto& s = seqs_[seq];
        from = std::max(from, s.first);
        to = std::min(to, s.first + s.held);
        while (from < to) {
            const std::size_t slot = from % capacity_, n = std::min(capacity_ - slot, to - from);
            f(s.block.run(format_, head, slot, n, from));
            from += n;
        }
    }

    /// Keeps positions < n. Evicted positions cannot come back: n below first(seq) throws.
    void truncate(std::size_t seq, std::size_t n) {
        auto& s = seqs_[seq];
        if (n < s.first)
            optiq::detail::fail<shape_error>("kv::RingLayout: cannot truncate to ", n, " tokens, positions below ",
                                             s.first, " were already evicted");
        s.held = std::min(s.held, n - s.first);
    }
    void clear(std::size_t seq) noexcept {
        seqs_[seq].first = 0;
        seqs_[seq].held = 0;
    }

    /// Bytes of the records held.
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        std::size_t n = 0;
        for (const auto& s : seqs_) n += s.held;
        return n * format_.token_bytes();
    }

private:
    struct Seq {
        std::size_t first = 0;
        std::size_t held = 0;
        detail::RecordBlock block;
    };
    RecordFormat format_;
    options opts_;
    std::size_t capacity_ = 0;
    std::vector<Seq> seqs_;
};

static_assert(KVLayout<RingLayout>);

}  // namespace optiq::kv

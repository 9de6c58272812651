#pragma once
// PagedLayout: fixed-size pages of `page_tokens` positions (each page head-major like a
// contiguous block) drawn from one pool shared by all sequences, and a page table per sequence
// (vLLM's PagedAttention layout, Kwon et al. 2023). Sequences grow a page at a time, so many
// concurrent sequences of unknown length waste at most one partial page each; pages freed by
// truncate/clear go back to the pool for any sequence.
//
// Threads: the pool is guarded by a mutex; page tables hold page addresses (never pool indices),
// so a sequence reading its pages never touches the pool while another sequence grows.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/layouts/block.hpp"

namespace optiq::kv {

struct PagedOptions {
    std::size_t page_tokens = 64;
    std::size_t max_pages = 0;  ///< pool limit (0: unlimited); exceeding it throws
};

class PagedLayout {
public:
    using options = PagedOptions;

    PagedLayout(const RecordFormat& format, std::size_t batch, const options& opts = {})
        : format_(format), opts_(opts), seqs_(batch), pool_(std::make_unique<Pool>()) {
        if (batch == 0) optiq::detail::fail<shape_error>("kv::PagedLayout: batch of 0 sequences");
        if (opts.page_tokens == 0) optiq::detail::fail<config_error>("kv::PagedLayout: page_tokens is 0");
    }

    [[nodiscard]] std::size_t batch() const noexcept { return seqs_.size(); }
    [[nodiscard]] const RecordFormat& format() const noexcept { return format_; }
    [[nodiscard]] std::size_t held(std::size_t seq) const noexcept { return seqs_[seq].count; }
    [[nodiscard]] std::size_t first(std::size_t /*seq*/) const noexcept { return 0; }
    [[nodiscard]] std::size_t sliding_window() const noexcept { return 0; }
    [[nodiscard]] std::size_t page_tokens() const noexcept { return opts_.page_tokens; }
    /// Pages of one sequence's table.
    [[nodiscard]] std::size_t pages(std::size_t seq) const noexcept { return seqs_[seq].table.size(); }
    /// Pages allocated by the pool so far (in use or free).
    [[nodiscard]] std::size_t pool_pages() const {
        const std::lock_guard<std::mutex> lock(pool_->mutex);
        return pool_->all.size();
    }

    std::size_t push(std::size_t seq) {
        auto& s = seqs_[seq];
        if (s.count == s.table.size() * opts_.page_tokens) s.table.push_back(acquire());
        return s.count++;
    }

    [[nodiscard]] RecordRef record(std::size_t seq, std::size_t head, std::size_t pos) noexcept {
        return seqs_[seq].table[pos / opts_.page_tokens]->record(format_, head, pos % opts_.page_tokens);
    }

    template <class F>
    void for_each_run(std::size_t seq, std::size_t head, std::size_t from, std::size_t to, F&& f) const {
        const auto& s = seqs_[seq];
        const std::size_t p = opts_.page_tokens;
        to = std::min(to, s.count);
        while (from < to) {
            const std::size_t page = from / p, t = from % p, n = std::min(p - t, to - from);
            f(s.table[page]->run(format_, head, t, n, from));
            from += n;
        }
    }

    void truncate(std::size_t seq, std::size_t n) {
        auto& s = seqs_[seq];
        s.count = std::min(s.count, n);
        const std::size_t keep = (s.count + opts_.page_tokens - 1) / opts_.page_tokens;
        if (keep == s.table.size()) return;
        const std::lock_guard<std::mutex> lock(pool_->mutex);
        for (std::size_t i = keep; i < s.table.size(); ++i) pool_->free.push_back(s.table[i]);
        s.table.resize(keep);
    }
    void clear(std::size_t seq) { truncate(seq, 0); }

    /// Bytes of the pages in use by the sequences (whole pages: the unit of allocation).
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        std::size_t pages = 0;
        for (const auto& s : seqs_) pages += s.table.size();
        return pages * opts_.page_tokens * format_.token_bytes();
    }

private:
    struct Pool {
        mutable std::mutex mutex;
        std::vector<std::unique_ptr<detail::RecordBlock>> all;
        std::vector<detail::RecordBlock*> free;
    };
    struct Seq {
        std::size_t count = 0;
        std::vector<detail::RecordBlock*> table;
    };

    detail::RecordBlock* acquire() {
        const std::lock_guard<std::mutex> lock(pool_->mutex);
        if (!pool_->free.empty()) {
            auto* page = pool_->free.back();
            pool_->free.pop_back();
            return page;
        }
        if (opts_.max_pages != 0 && pool_->all.size() >= opts_.max_pages)
            optiq::detail::fail<shape_error>("kv::PagedLayout: page pool exhausted (max_pages = ", opts_.max_pages,
                                             ", ", opts_.page_tokens, " tokens each)");
        pool_->all.push_back(std::make_unique<detail::RecordBlock>(format_, opts_.page_tokens));
        return pool_->all.back().get();
    }

    RecordFormat format_;
    options opts_;
    std::vector<Seq> seqs_;
    std::unique_ptr<Pool> pool_;
};

static_assert(KVLayout<PagedLayout>);

}  // namespace optiq::kv

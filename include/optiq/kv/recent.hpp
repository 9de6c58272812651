#pragma once
// RecentWindow: the newest tokens of one sequence kept in f32 (KIVI's full-precision residual),
// a ring of `capacity` slots per head so a token enters and leaves in O(heads * dim) without
// shifting. It holds positions [first(), first() + count()); the oldest leaves when a new token
// arrives at a full window, to be quantized into the layout.
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

namespace optiq::kv {

class RecentWindow {
public:
    RecentWindow() = default;
    RecentWindow(std::size_t heads, std::size_t dim, std::size_t capacity)
        : heads_(heads), dim_(dim), cap_(capacity), keys_(heads * capacity * dim), values_(heads * capacity * dim) {}

    [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }
    [[nodiscard]] std::size_t first() const noexcept { return first_; }
    [[nodiscard]] std::size_t count() const noexcept { return count_; }
    [[nodiscard]] bool full() const noexcept { return count_ == cap_; }

    [[nodiscard]] const float* key(std::size_t head, std::size_t pos) const noexcept {
        return keys_.data() + offset(head, pos);
    }
    [[nodiscard]] const float* value(std::size_t head, std::size_t pos) const noexcept {
        return values_.data() + offset(head, pos);
    }

    /// Appends position first() + count(); token holds heads x dim floats for keys and values.
    void push(std::span<const float> k, std::span<const float> v) noexcept {
        const std::size_t pos = first_ + count_++;
        for (std::size_t h = 0; h < heads_; ++h) {
            std::copy_n(k.data() + h * dim_, dim_, keys_.data() + offset(h, pos));
            std::copy_n(v.data() + h * dim_, dim_, values_.data() + offset(h, pos));
        }
    }
    void pop_front() noexcept {
        ++first_;
        --count_;
    }
    /// Keeps positions < n (positions below first() are not the window's business).
    void truncate(std::size_t n) noexcept {
        if (n <= first_) {
            first_ = n;
            count_ = 0;
        } else {
            count_ = std::min(count_, n - first_);
        }
    }
    void clear() noexcept {
        first_ = 0;
        count_ = 0;
    }

    /// f(pos, count, keys, values) for the runs of one head's tokens in [from, to).
    template <class F>
    void for_each_run(std::size_t head, std::size_t from, std::size_t to, F&& f) const {
        from = std::max(from, first_);
        to = std::min(to, first_ + count_);
        while (from < to) {
            const std::size_t slot = from % cap_, n = std::min(cap_ - slot, to - from);
            f(from, n, keys_.data() + (head * cap_ + slot) * dim_, values_.data() + (head * cap_ + slot) * dim_);
            from += n;
        }
    }

    [[nodiscard]] std::size_t memory_bytes() const noexcept { return 2 * count_ * heads_ * dim_ * sizeof(float); }

private:
    [[nodiscard]] std::size_t offset(std::size_t head, std::size_t pos) const noexcept {
        return (head * cap_ + pos % cap_) * dim_;
    }

    std::size_t heads_ = 0, dim_ = 0, cap_ = 0;
    std::size_t first_ = 0, count_ = 0;
    std::vector<float> keys_, values_;
};

}  // namespace optiq::kv

#pragma once
// Pieces shared by the tokenizers: token ids and types, the whole-token matcher for special tokens,
// and the streaming decoder that holds back incomplete UTF-8 sequences across tokens.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <optional>
#include <utility>
#include <vector>

#include "optiq/tokenizer/unicode.hpp"

namespace optiq::tokenizer {

using TokenId = std::int32_t;

/// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : std::int32_t {
    undefined = 0,
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6,
};

/// A token matched whole in the input text before pre-tokenization (control and user-defined tokens).
struct SpecialToken {
    std::string content;
    TokenId id;
};

namespace detail {

/// Leftmost-longest matching of special tokens (what HF's added-token splitter does).
class SpecialMatcher {
public:
    SpecialMatcher() = default;
    explicit SpecialMatcher(std::vector<SpecialToken> tokens) : tokens_(std::move(tokens)) {
        std::erase_if(tokens_, [](const SpecialToken& t) { return t.content.empty(); });
        std::sort(tokens_.begin(), tokens_.end(), [](const SpecialToken& a, const SpecialToken& b) {
            return a.content[0] != b.content[0] ? static_cast<unsigned char>(a.content[0]) <
                                                      static_cast<unsigned char>(b.content[0])
                                                : a.content.size() > b.content.size();
        });
        first_.fill(-1);
        for (std::size_t i = tokens_.size(); i-- > 0;) first_[static_cast<unsigned char>(tokens_[i].content[0])] =
            static_cast<int>(i);
    }

    [[nodiscard]] bool empty() const noexcept { return tokens_.empty(); }
    [[nodiscard]] const std::vector<SpecialToken>& tokens() const noexcept { return tokens_; }

    /// Calls text(begin, end) for each stretch of ordinary text and special(id) for each match, in order.
    template <class OnText, class OnSpecial>
    void split(std::string_view s, OnText&& text, OnSpecial&& special) const {
        std::size_t start = 0;
        for (std::size_t i = 0; i < s.size();) {
            const int f = first_[static_cast<unsigned char>(s[i])];
            const SpecialToken* hit = nullptr;
            if (f >= 0) {
                for (std::size_t k = static_cast<std::size_t>(f);
                     k < tokens_.size() && tokens_[k].content[0] == s[i]; ++k)  // longest first
                    if (s.compare(i, tokens_[k].content.size(), tokens_[k].content) == 0) {
                        hit = &tokens_[k];
                        break;
                    }
            }
            if (!hit) {
                ++i;
                continue;
            }
            if (start < i) text(start, i);
            special(hit->id);
            i += hit->content.size();
            start = i;
        }
        if (start < s.size()) text(start, s.size());
    }

private:
    std::vector<SpecialToken> tokens_;
    std::array<int, 256> first_{};
};

/// Repeatedly merges the adjacent pair with the highest priority, leftmost among equal priorities,
/// until no pair merges: the loop both BPE flavours share (HF's BPE::merge_word and llama2.c's
/// encode() pick the same pair at every step). A heap of candidate pairs with lazy invalidation
/// makes it O(n log n) in the number of symbols. lookup(a, b) returns std::optional<std::pair<double,
/// TokenId>>: the pair's priority and the merged token, or nullopt when a and b do not merge.
template <class Lookup>
void merge_pairs(std::vector<TokenId>& ids, Lookup&& lookup) {
    if (ids.size() < 2) return;
    const auto n = static_cast<std::int64_t>(ids.size());
    std::vector<std::int64_t> prev(ids.size()), next(ids.size());
    for (std::int64_t i = 0; i < n; ++i) {
        prev[static_cast<std::size_t>(i)] = i - 1;
        next[static_cast<std::size_t>(i)] = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
        double priority;
        std::int64_t left, right;
        TokenId left_id, right_id, merged;
    };
    auto worse = [](const Cand& a, const Cand& b) {
        return a.priority != b.priority ? a.priority < b.priority : a.left > b.left;
    };
    std::vector<Cand> heap;
    auto consider = [&](std::int64_t l, std::int64_t r) {
        if (l < 0 || r < 0) return;
        const TokenId a = ids[static_cast<std::size_t>(l)], b = ids[static_cast<std::size_t>(r)];
        if (const auto m = lookup(a, b)) {
            heap.push_back({m->first, l, r, a, b, m->second});
            std::push_heap(heap.begin(), heap.end(), worse);
        }
    };
    for (std::int64_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
    std::vector<bool> gone(ids.size(), false);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), worse);
        const Cand c = heap.back();
        heap.pop_back();
        const auto l = static_cast<std::size_t>(c.left), r = static_cast<std::size_t>(c.right);
        // Stale when either side has merged since the pair was queued.
        if (gone[l] || gone[r] || next[l] != c.right || ids[l] != c.left_id || ids[r] != c.right_id) continue;
        ids[l] = c.merged;
        gone[r] = true;
        next[l] = next[r];
        if (next[l] >= 0) prev[static_cast<std::size_t>(next[l])] = c.left;
        consider(prev[l], c.left);
        consider(c.left, next[l]);
    }
    std::size_t w = 0;
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (!gone[i]) ids[w++] = ids[i];
    ids.resize(w);
}

}  // namespace detail

/// Incremental detokenizer for streaming generation: push() returns the text that is complete so far,
/// holding back the bytes of a UTF-8 sequence that later tokens may finish; ill-formed bytes come out
/// as U+FFFD (one per maximal subpart, as a lossy decode of the whole sequence would give).
/// Tok needs `std::string decode_piece(TokenId prev, TokenId id, bool skip_special) const`.
template <class Tok>
class StreamingDecoder {
public:
    explicit StreamingDecoder(const Tok& tok, bool skip_special = false) : tok_(&tok), skip_special_(skip_special) {}

    [[nodiscard]] std::string push(TokenId id) {
        pending_ += tok_->decode_piece(prev_, id, skip_special_);
        prev_ = id;
        return drain(false);
    }
    /// The held-back tail (an unfinished sequence becomes U+FFFD); the decoder is then empty.
    [[nodiscard]] std::string flush() { return drain(true); }
    /// Bytes held back, waiting for the rest of a UTF-8 sequence.
    [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }
    void reset() {
        pending_.clear();
        prev_ = -1;
    }

private:
    std::string drain(bool final) {
        std::string out;
        std::size_t i = 0;
        while (i < pending_.size()) {
            const auto st = detail::utf8_step(pending_, i);
            if (st.status == 1 && !final) break;  // may still be completed
            if (st.status == 0)
                out.append(pending_, i, st.len);
            else
                out += detail::kReplacementUtf8;
            i += st.len;
        }
        pending_.erase(0, i);
        return out;
    }

    const Tok* tok_;
    bool skip_special_;
    TokenId prev_ = -1;
    std::string pending_;
};

}  // namespace optiq::tokenizer

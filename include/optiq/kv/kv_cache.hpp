#pragma once
// KVCache<Policy, Layout>: one attention layer's key/value cache for a batch of sequences.
//
//   kv::KVCache cache(kv::turboquant_mse_policy(128, 4, 3, seed), {32, 8, 128}, batch);
//   cache.append(seq, k, v);        // k, v: [n_tokens][kv_heads][dim], one token or a chunk
//   cache.attend(seq, q, out);      // q, out: [n_q][q_heads][dim], the newest n_q positions
//   cache.attend(seq, q, out, &pool);  // the same, KV heads on a ThreadPool's threads
//
// Policy (a KVPolicy) chooses the key and value codecs and the full-precision recent window;
// Layout (a KVLayout) stores the quantized records: ContiguousLayout (default), PagedLayout,
// RingLayout (sliding window). attend() runs on the codes in the rotated space
// (attend_rotated); attend_reference() dequantizes first (attend_dequantized), the ground
// truth it is tested against.
//
// Threads: different sequences may be appended to and attended from different threads at the
// same time; calls on one sequence must not overlap, and memory_bytes()/clear() (all sequences)
// must not overlap appends; a ThreadPool passed to attend must not serve two calls at once. Each
// sequence owns its working memory (one workspace per pool thread), so after warm-up attend does
// not allocate except when a longer context needs a longer score row, and append allocates only
// when storage grows (contiguous doubling, a new page) — and, for the codecs that go through a
// core method's batch encode (TurboQuant-Prod, RVQ, QJL, PolarQuant, KIVI), one small batch per
// encoded vector. A chunk append that throws part-way keeps the tokens before the failing one.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/kv/attention.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/layouts/contiguous.hpp"
#include "optiq/kv/recent.hpp"

namespace optiq::kv {

template <KVPolicy P, KVLayout L = ContiguousLayout>
class KVCache {
public:
    using policy_type = P;
    using layout_type = L;

    KVCache(P policy, AttentionShape shape, std::size_t batch = 1, const typename L::options& layout_options = {})
        : policy_(std::move(policy)),
          shape_(check_shape(shape, policy_)),
          layout_(record_format(policy_, shape_), batch, layout_options) {
        block_ = key_block_tokens(policy_.keys());
        if (block_ > 1) {
            if (layout_.sliding_window() != 0)
                optiq::detail::fail<config_error>("kv::KVCache: keys ", policy_.keys().name(),
                                                  " are quantized in blocks of ", block_,
                                                  " tokens, which a sliding-window layout would split");
            if constexpr (requires { layout_.page_tokens(); })
                if (layout_.page_tokens() % block_ != 0)
                    optiq::detail::fail<config_error>("kv::KVCache: page_tokens ", layout_.page_tokens(),
                                                      " is not a multiple of the key block of ", block_, " tokens (",
                                                      policy_.keys().name(), ")");
        }
        seqs_.reserve(batch);
        for (std::size_t i = 0; i < batch; ++i) seqs_.emplace_back(policy_, shape_);
    }

    [[nodiscard]] const P& policy() const noexcept { return policy_; }
    [[nodiscard]] const AttentionShape& shape() const noexcept { return shape_; }
    [[nodiscard]] const L& layout() const noexcept { return layout_; }
    [[nodiscard]] std::size_t batch() const noexcept { return seqs_.size(); }

    /// Tokens appended to a sequence (the position the next token gets), evicted ones included.
    [[nodiscard]] std::size_t size(std::size_t seq = 0) const { return seq_at(seq, "size").size; }
    /// Tokens of a sequence still held (quantized plus recent window).
    [[nodiscard]] std::size_t held(std::size_t seq = 0) const {
        const auto& s = seq_at(seq, "held");
        return layout_.held(seq) + s.recent.count();
    }

    /// Appends n tokens: k and v hold [n][kv_heads][dim] floats each.
    void append(std::size_t seq, std::span<const float> k, std::span<const float> v) {
        auto& s = seq_at(seq, "append");
        const std::size_t token = shape_.kv_heads * shape_.dim;
        if (k.size() != v.size())
            optiq::detail::fail<shape_error>("kv::KVCache::append: keys hold ", k.size(), " floats, values ", v.size());
        if (k.empty() || k.size() % token != 0)
            optiq::detail::fail<shape_error>("kv::KVCache::append: ", k.size(),
                                             " floats is not a whole, non-zero number of tokens of ", shape_.kv_heads,
                                             " heads x ", shape_.dim);
        check_finite(k, "keys");
        check_finite(v, "values");
        const std::size_t n = k.size() / token;
        for (std::size_t t = 0; t < n; ++t) {
            const auto kt = k.subspan(t * token, token), vt = v.subspan(t * token, token);
            if (policy_.recent() == 0) {
                store(seq, s, kt, vt);
            } else {
                if (s.recent.full()) {
                    evict_oldest(seq, s);
                }
                s.recent.push(kt, vt);
            }
            ++s.size;
        }
    }
    void append(std::span<const float> k, std::span<const float> v) { append(0, k, v); }

    /// Attention of the newest n_q positions (q: [n_q][q_heads][dim]) into out (same shape). With a
    /// pool, the KV heads run on its threads (the pool must not serve another call meanwhile).
    void attend(std::size_t seq, std::span<const float> q, std::span<float> out, ThreadPool* pool = nullptr) {
        attend_on(backend::arch::best_arch(), seq, q, out, pool);
    }
    void attend(std::span<const float> q, std::span<float> out, ThreadPool* pool = nullptr) {
        attend(0, q, out, pool);
    }
    /// attend() with the kernels of a given architecture (arch::dispatch: one this CPU lacks falls
    /// back to the best it has); Arch::scalar is the record-by-record reference order.
    void attend_on(backend::arch::Arch arch, std::size_t seq, std::span<const float> q, std::span<float> out,
                   ThreadPool* pool = nullptr) {
        auto& s = seq_at(seq, "attend");
        const std::size_t threads = pool != nullptr ? pool->size() : 1;
        while (s.ws.size() < threads) s.ws.emplace_back(policy_);
        attend_rotated(policy_, view(seq, s), shape_, q, queries(q), out, std::span<AttentionWorkspace<P>>(s.ws),
                       pool, arch);
    }

    /// Dequantize-then-attend, the reference the codes path is tested against.
    void attend_reference(std::size_t seq, std::span<const float> q, std::span<float> out) {
        auto& s = seq_at(seq, "attend_reference");
        attend_dequantized(policy_, view(seq, s), shape_, q, queries(q), out, s.ws.front());
    }
    void attend_reference(std::span<const float> q, std::span<float> out) { attend_reference(0, q, out); }

    /// Keeps the first n tokens of a sequence (speculative-decoding rollback). Tokens that had
    /// already left the recent window stay quantized; with block keys (KIVI), the tokens of a
    /// block cut in two return to the recent window as their dequantized values.
    void truncate(std::size_t seq, std::size_t n) {
        auto& s = seq_at(seq, "truncate");
        if (n >= s.size) return;
        const std::size_t quantized_end = layout_.first(seq) + layout_.held(seq);
        if (block_ > 1 && n < quantized_end && n % block_ != 0) {
            reopen_block(seq, s, n);
        } else {
            layout_.truncate(seq, n);
            s.recent.truncate(n);
        }
        s.size = n;
    }
    void clear(std::size_t seq) {
        auto& s = seq_at(seq, "clear");
        layout_.clear(seq);
        s.recent.clear();
        s.size = 0;
    }
    void clear() {
        for (std::size_t i = 0; i < seqs_.size(); ++i) clear(i);
    }

    /// Bytes of the stored tokens: quantized records as held in memory (code words, side floats;
    /// the paged layout counts whole pages) plus the f32 recent window.
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        std::size_t n = layout_.memory_bytes();
        for (const auto& s : seqs_) n += s.recent.memory_bytes();
        return n;
    }

private:
    struct Seq {
        Seq(const P& p, const AttentionShape& sh) : recent(sh.kv_heads, sh.dim, p.recent()) { ws.emplace_back(p); }
        std::size_t size = 0;
        RecentWindow recent;
        std::vector<AttentionWorkspace<P>> ws;  ///< one per thread attending this sequence's heads
    };

    static const AttentionShape& check_shape(const AttentionShape& s, const P& p) {
        if (s.kv_heads == 0 || s.q_heads == 0)
            optiq::detail::fail<shape_error>("kv::KVCache: head counts must be positive (q_heads ", s.q_heads,
                                             ", kv_heads ", s.kv_heads, ")");
        if (s.q_heads % s.kv_heads != 0)
            optiq::detail::fail<shape_error>("kv::KVCache: q_heads ", s.q_heads, " is not a multiple of kv_heads ",
                                             s.kv_heads, " (GQA)");
        if (s.dim != p.keys().dim() || s.dim != p.values().dim())
            optiq::detail::fail<shape_error>("kv::KVCache: head dimension ", s.dim, " but the policy's codecs are for ",
                                             p.keys().dim(), " (keys) and ", p.values().dim(), " (values)");
        if (!std::isfinite(s.scale))
            optiq::detail::fail<config_error>("kv::KVCache: scale ", s.scale, " is not finite");
        return s;
    }

    static RecordFormat record_format(const P& p, const AttentionShape& s) {
        return {s.kv_heads,
                p.keys().words_per_token(),
                p.keys().side_per_token(),
                p.values().words_per_token(),
                p.values().side_per_token(),
                p.recent()};
    }

    static void check_finite(std::span<const float> x, const char* what) {
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!std::isfinite(x[i]))
                optiq::detail::fail<value_error>("kv::KVCache::append: non-finite ", what, " value ", x[i],
                                                 " at index ", i);
    }

    Seq& seq_at(std::size_t seq, const char* what) {
        if (seq >= seqs_.size())
            optiq::detail::fail<shape_error>("kv::KVCache::", what, ": sequence ", seq, " out of range (batch of ",
                                             seqs_.size(), ")");
        return seqs_[seq];
    }
    const Seq& seq_at(std::size_t seq, const char* what) const { return const_cast<KVCache*>(this)->seq_at(seq, what); }

    [[nodiscard]] std::size_t queries(std::span<const float> q) const {
        const std::size_t per = shape_.q_heads * shape_.dim;
        if (q.empty() || q.size() % per != 0)
            optiq::detail::fail<shape_error>("kv::KVCache::attend: ", q.size(),
                                             " query floats is not a whole, non-zero number of tokens of ",
                                             shape_.q_heads, " heads x ", shape_.dim);
        return q.size() / per;
    }

    [[nodiscard]] SequenceView<L> view(std::size_t seq, const Seq& s) const {
        return SequenceView<L>{layout_, seq, s.recent, s.size};
    }

    /// Encodes one token (all heads) into a new layout record.
    void store(std::size_t seq, Seq& s, std::span<const float> k, std::span<const float> v) {
        const std::size_t pos = layout_.push(seq);
        for (std::size_t h = 0; h < shape_.kv_heads; ++h)
            encode_head(seq, s, h, pos, k.data() + h * shape_.dim, v.data() + h * shape_.dim);
    }

    /// Moves the oldest window token (a whole key block, for block key codecs) into the layout.
    void evict_oldest(std::size_t seq, Seq& s) {
        const std::size_t old = s.recent.first(), d = shape_.dim;
        for (std::size_t i = 0; i < block_; ++i) {
            const std::size_t pos = layout_.push(seq);
            if (pos != old + i)
                optiq::detail::fail<error>("kv::KVCache: internal error, layout position ", pos, " != window position ",
                                           old + i);
        }
        const auto& f = layout_.format();
        for (std::size_t h = 0; h < shape_.kv_heads; ++h) {
            for (std::size_t i = 0; i < block_; ++i) {
                const RecordRef r = layout_.record(seq, h, old + i);
                policy_.values().encode({s.recent.value(h, old + i), d}, {r.value_words, f.value_words},
                                        {r.value_side, f.value_side}, s.ws.front().value_scratch);
                if constexpr (!block_keys)
                    policy_.keys().encode({s.recent.key(h, old + i), d}, {r.key_words, f.key_words},
                                          {r.key_side, f.key_side}, s.ws.front().key_scratch);
            }
            if constexpr (block_keys) {
                // The window is a ring: gather the block's keys (records of a head are consecutive).
                s.ws.front().block.resize(block_ * d);
                for (std::size_t i = 0; i < block_; ++i)
                    std::copy_n(s.recent.key(h, old + i), d, s.ws.front().block.data() + i * d);
                const RecordRef r = layout_.record(seq, h, old);
                policy_.keys().encode_block(s.ws.front().block, {r.key_words, block_ * f.key_words},
                                            {r.key_side, block_ * f.key_side}, s.ws.front().key_scratch);
            }
        }
        for (std::size_t i = 0; i < block_; ++i) s.recent.pop_front();
    }

    void encode_head(std::size_t seq, Seq& s, std::size_t h, std::size_t pos, const float* k, const float* v) {
        const auto& f = layout_.format();
        const RecordRef r = layout_.record(seq, h, pos);
        if constexpr (!block_keys)
            policy_.keys().encode({k, shape_.dim}, {r.key_words, f.key_words}, {r.key_side, f.key_side},
                                  s.ws.front().key_scratch);
        policy_.values().encode({v, shape_.dim}, {r.value_words, f.value_words}, {r.value_side, f.value_side},
                                s.ws.front().value_scratch);
    }

    /// Truncation inside a quantized key block: the kept tokens of the block go back to the
    /// window (dequantized), the block leaves the layout.
    void reopen_block(std::size_t seq, Seq& s, std::size_t n) {
        const std::size_t g0 = n / block_ * block_, d = shape_.dim, hk = shape_.kv_heads, m = n - g0;
        const auto& f = layout_.format();
        std::vector<float> keys(hk * block_ * d), k(hk * m * d), v(hk * m * d);
        for (std::size_t h = 0; h < hk; ++h) {
            const RecordRef r = layout_.record(seq, h, g0);
            if constexpr (block_keys)
                policy_.keys().decode_block({r.key_words, block_ * f.key_words}, {r.key_side, block_ * f.key_side},
                                            {keys.data() + h * block_ * d, block_ * d});
            for (std::size_t i = 0; i < m; ++i) {
                const RecordRef ri = layout_.record(seq, h, g0 + i);
                std::copy_n(keys.data() + (h * block_ + i) * d, d, k.data() + (i * hk + h) * d);
                policy_.values().decode({ri.value_words, f.value_words}, {ri.value_side, f.value_side},
                                        {v.data() + (i * hk + h) * d, d});
            }
        }
        layout_.truncate(seq, g0);
        s.recent.truncate(g0);
        for (std::size_t i = 0; i < m; ++i)
            s.recent.push({k.data() + i * hk * d, hk * d}, {v.data() + i * hk * d, hk * d});
    }

    static constexpr bool block_keys = KVBlockKeyCodec<typename P::key_codec>;

    P policy_;
    AttentionShape shape_;
    L layout_;
    std::size_t block_ = 1;  ///< tokens the key codec quantizes together
    std::vector<Seq> seqs_;
};

}  // namespace optiq::kv

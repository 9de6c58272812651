#pragma once
// Attention of a block of queries over one sequence of a KVCache, two ways (backend::reference):
//
//  attend_dequantized — the ground truth: every held key and value is dequantized by its
//    codec's decode() (the core quantizer's own decode), then plain attention runs.
//  attend_rotated — attention on the codes: each query is prepared once by the key codec
//    (rotated, expanded to a lookup table), each key is scored from its record, and values are
//    accumulated in the value codec's space (rotated for TurboQuant) and mapped back once per
//    query. No dequantized key or value is materialised. Equal to attend_dequantized up to float
//    rounding (tests/kv check it for every method).
//
// Both use the same masks and the same softmax, in this order (the "reference order"):
//   s_t = (Σ_i q_i k_t,i summed in i order) · scale            for each visible position t
//   m = max_t s_t;  e_t = exp(s_t − m);  Z = Σ_t e_t (t ascending);  p_t = e_t / Z
//   out_i = Σ_t p_t v_t,i   (t ascending, starting from 0)
// For the f32 codec attend_rotated performs exactly these operations, so an f32 cache equals the
// naive loop bit for bit.
//
// Shapes: queries are token-major [n_q][q_heads][dim]; query i sits at position
// n − n_q + i (n = tokens appended) and sees positions t ≤ its own (causal), and with a sliding
// window W only t > position − W. GQA: query head h reads KV head h / (q_heads / kv_heads).
// Queries are processed in blocks of query_block tokens so the score buffer stays
// O(query_block · rep · context) during long prefills.
//
// Speed (attend_rotated on a vector architecture): per KV head, the records every query of a block
// sees are scored and accumulated a run at a time by backend/simd/kv_attention.hpp (TurboQuant's
// codes looked up in its one codebook held in registers, f16 widened by F16C, MLX affine as
// scale·code + bias), the softmax is vectorised, and heads may run on a thread pool.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_attention.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/recent.hpp"

namespace optiq::kv {

/// Head counts, head dimension and score scale of one attention layer.
struct AttentionShape {
    std::size_t q_heads = 0;
    std::size_t kv_heads = 0;
    std::size_t dim = 0;
    float scale = 0.0f;  ///< 0: 1/sqrt(dim)

    [[nodiscard]] std::size_t group() const noexcept { return q_heads / kv_heads; }
    [[nodiscard]] float effective_scale() const noexcept {
        return scale != 0.0f ? scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)));
    }
};

/// Per-sequence working memory, reused across calls (grown, never shrunk).
template <KVPolicy P>
struct AttentionWorkspace {
    explicit AttentionWorkspace(const P& p)
        : key_scratch(p.keys().make_scratch()), value_scratch(p.values().make_scratch()) {}

    typename P::key_codec::scratch_type key_scratch;
    typename P::value_codec::scratch_type value_scratch;
    std::vector<typename P::key_codec::query_state> states;
    std::vector<float> scores;
    std::vector<float> accs;   ///< value accumulators in the codec's space
    std::vector<float> plain;  ///< recent-window values, when the codec's space is rotated
    std::vector<float> dense;  ///< reference path: dequantized keys then values
    std::vector<float> block;  ///< block key codecs: one block's scores or decoded keys
};

/// Where one sequence's tokens are: quantized records in a layout, the newest in a window.
template <KVLayout L>
struct SequenceView {
    const L& layout;
    std::size_t seq;
    const RecentWindow& recent;
    std::size_t size;  ///< tokens appended (the next token's position)
};

namespace detail {

inline constexpr std::size_t query_block = 32;

/// The positions a block of queries needs, checked against what the cache still holds.
struct QueryBlock {
    std::size_t base = 0;    ///< position of query 0 of the whole call
    std::size_t q0 = 0;      ///< first query of the block
    std::size_t q1 = 0;      ///< one past the last
    std::size_t t_lo = 0;    ///< lowest position any query of the block sees
    std::size_t span = 0;    ///< score columns: positions [t_lo, base + q1)
    std::size_t window = 0;  ///< sliding window (0: none)

    [[nodiscard]] std::size_t pos(std::size_t qi) const noexcept { return base + qi; }
    [[nodiscard]] std::size_t lo(std::size_t qi) const noexcept {
        return window != 0 && pos(qi) + 1 > window ? pos(qi) + 1 - window : 0;
    }
    /// Queries of the block that see position t: [a, b).
    void seeing(std::size_t t, std::size_t& a, std::size_t& b) const noexcept {
        a = std::max(q0, t > base ? t - base : 0);
        b = q1;
        if (window != 0) b = std::min(b, t + window > base ? t + window - base : 0);
        if (b < a) b = a;
    }
};

template <KVLayout L>
[[nodiscard]] QueryBlock make_block(const SequenceView<L>& sv, std::size_t n_q, std::size_t q0, std::size_t q1) {
    QueryBlock b;
    b.base = sv.size - n_q;
    b.q0 = q0;
    b.q1 = q1;
    b.window = sv.layout.sliding_window();
    b.t_lo = b.lo(q0);
    const std::size_t oldest = sv.layout.held(sv.seq) != 0 ? sv.layout.first(sv.seq) : sv.recent.first();
    if (b.t_lo < oldest && sv.layout.sliding_window() != 0)
        optiq::detail::fail<shape_error>(
            "kv::attend: query at position ", b.pos(q0), " needs position ", b.t_lo,
            ", which the ring layout already evicted (attend prefill chunks of at most max_chunk "
            "tokens)");
    b.t_lo = std::max(b.t_lo, sv.layout.first(sv.seq));
    b.span = b.pos(q1 - 1) + 1 - b.t_lo;
    return b;
}

/// In place over each query's visible row: scale, max, exp, normalise (the reference order).
inline void softmax_rows(float* scores, std::size_t span, const QueryBlock& b, std::size_t rep, float scale) {
    for (std::size_t qi = b.q0; qi < b.q1; ++qi) {
        const std::size_t from = b.lo(qi) > b.t_lo ? b.lo(qi) - b.t_lo : 0, to = b.pos(qi) + 1 - b.t_lo;
        for (std::size_t r = 0; r < rep; ++r) {
            float* row = scores + ((qi - b.q0) * rep + r) * span;
            float m = -std::numeric_limits<float>::infinity();
            for (std::size_t j = from; j < to; ++j) {
                row[j] *= scale;
                m = std::max(m, row[j]);
            }
            float z = 0.0f;
            for (std::size_t j = from; j < to; ++j) {
                row[j] = std::exp(row[j] - m);
                z += row[j];
            }
            for (std::size_t j = from; j < to; ++j) row[j] = row[j] / z;
        }
    }
}

/// Block key codecs: f(pos, words, side) for every whole block of B records overlapping
/// [from, to) (blocks start at multiples of B, and the layout holds whole blocks).
template <KVLayout L, class F>
void for_each_key_block(const L& layout, std::size_t seq, std::size_t head, std::size_t from, std::size_t to,
                        std::size_t B, std::size_t words, std::size_t side, F&& f) {
    if (from >= to) return;
    layout.for_each_run(seq, head, from / B * B, (to + B - 1) / B * B, [&](const Run& run) {
        for (std::size_t j = 0; j + B <= run.count; j += B)
            f(run.pos + j, std::span<const std::uint32_t>(run.key_words + j * words, B * words),
              std::span<const float>(run.key_side + j * side, B * side));
    });
}

inline float dot_in_order(const float* a, const float* b, std::size_t n) noexcept {
    float acc = 0.0f;
    for (std::size_t i = 0; i < n; ++i) acc += a[i] * b[i];
    return acc;
}

inline void check_attend(const AttentionShape& s, std::size_t size, std::span<const float> q, std::size_t n_q,
                         std::span<float> out) {
    if (n_q == 0) optiq::detail::fail<shape_error>("kv::attend: no queries");
    if (size == 0) optiq::detail::fail<value_error>("kv::attend: the cache is empty (append keys and values first)");
    if (n_q > size)
        optiq::detail::fail<shape_error>("kv::attend: ", n_q, " queries but only ", size,
                                         " tokens appended (queries are the newest positions)");
    if (q.size() != n_q * s.q_heads * s.dim || out.size() != q.size())
        optiq::detail::fail<shape_error>("kv::attend: queries hold ", q.size(), " floats and output ", out.size(),
                                         ", expected ", n_q, " x ", s.q_heads, " heads x ", s.dim);
}

}  // namespace detail

/// Dequantize-then-attend (the ground truth). q: [n_q][q_heads][dim]; out: same shape.
template <KVPolicy P, KVLayout L>
void attend_dequantized(const P& policy, const SequenceView<L>& sv, const AttentionShape& shape,
                        std::span<const float> q, std::size_t n_q, std::span<float> out, AttentionWorkspace<P>& ws) {
    detail::check_attend(shape, sv.size, q, n_q, out);
    const std::size_t d = shape.dim, rep = shape.group(), hq = shape.q_heads;
    const float scale = shape.effective_scale();
    for (std::size_t q0 = 0; q0 < n_q; q0 += detail::query_block) {
        const std::size_t q1 = std::min(n_q, q0 + detail::query_block);
        const auto b = detail::make_block(sv, n_q, q0, q1);
        const std::size_t span = b.span, nq_pos = sv.recent.count() != 0 ? sv.recent.first() : sv.size;
        ws.dense.resize(2 * span * d);
        float* keys = ws.dense.data();
        float* values = keys + span * d;
        ws.scores.resize((q1 - q0) * rep * span);
        for (std::size_t g = 0; g < shape.kv_heads; ++g) {
            const auto& kc = policy.keys();
            const auto& vc = policy.values();
            const std::size_t q_end = std::min(nq_pos, b.t_lo + span);
            if constexpr (KVBlockKeyCodec<typename P::key_codec>) {
                const std::size_t B = kc.block_tokens();
                ws.block.resize(B * d);
                detail::for_each_key_block(sv.layout, sv.seq, g, b.t_lo, q_end, B, kc.words_per_token(),
                                           kc.side_per_token(), [&](std::size_t pos, auto words, auto side) {
                                               kc.decode_block(words, side, ws.block);
                                               for (std::size_t j = 0; j < B; ++j)
                                                   if (pos + j >= b.t_lo && pos + j < q_end)
                                                       std::copy_n(ws.block.data() + j * d, d,
                                                                   keys + (pos + j - b.t_lo) * d);
                                           });
            }
            sv.layout.for_each_run(sv.seq, g, b.t_lo, q_end, [&](const Run& run) {
                for (std::size_t j = 0; j < run.count; ++j) {
                    const std::size_t t = run.pos + j - b.t_lo;
                    if constexpr (!KVBlockKeyCodec<typename P::key_codec>)
                        kc.decode({run.key_words + j * kc.words_per_token(), kc.words_per_token()},
                                  {run.key_side + j * kc.side_per_token(), kc.side_per_token()}, {keys + t * d, d});
                    vc.decode({run.value_words + j * vc.words_per_token(), vc.words_per_token()},
                              {run.value_side + j * vc.side_per_token(), vc.side_per_token()}, {values + t * d, d});
                }
            });
            sv.recent.for_each_run(g, b.t_lo, b.t_lo + span,
                                   [&](std::size_t pos, std::size_t count, const float* k, const float* v) {
                                       std::copy_n(k, count * d, keys + (pos - b.t_lo) * d);
                                       std::copy_n(v, count * d, values + (pos - b.t_lo) * d);
                                   });
            for (std::size_t qi = q0; qi < q1; ++qi) {
                const std::size_t from = b.lo(qi) > b.t_lo ? b.lo(qi) - b.t_lo : 0, to = b.pos(qi) + 1 - b.t_lo;
                for (std::size_t r = 0; r < rep; ++r) {
                    const float* qv = q.data() + (qi * hq + g * rep + r) * d;
                    float* row = ws.scores.data() + ((qi - q0) * rep + r) * span;
                    for (std::size_t j = from; j < to; ++j) row[j] = detail::dot_in_order(qv, keys + j * d, d);
                }
            }
            detail::softmax_rows(ws.scores.data(), span, b, rep, scale);
            for (std::size_t qi = q0; qi < q1; ++qi) {
                const std::size_t from = b.lo(qi) > b.t_lo ? b.lo(qi) - b.t_lo : 0, to = b.pos(qi) + 1 - b.t_lo;
                for (std::size_t r = 0; r < rep; ++r) {
                    const float* row = ws.scores.data() + ((qi - q0) * rep + r) * span;
                    float* o = out.data() + (qi * hq + g * rep + r) * d;
                    std::fill_n(o, d, 0.0f);
                    for (std::size_t j = from; j < to; ++j)
                        for (std::size_t i = 0; i < d; ++i) o[i] += row[j] * values[j * d + i];
                }
            }
        }
    }
}

namespace detail {

/// f32 keys and values attend in the reference order on every architecture (the exact ground
/// truth: an f32 cache equals the naive loop bit for bit).
template <class C>
[[nodiscard]] constexpr bool exact_codec() noexcept {
    if constexpr (requires { C::exact_attention; }) {
        return C::exact_attention;
    } else {
        return false;
    }
}

/// f(head, workspace) for every KV head; with a pool, heads run on its threads, each with its own
/// workspace (ws holds at least pool->size() of them).
template <class W, class F>
void for_each_head(std::size_t heads, ThreadPool* pool, std::span<W> ws, F&& f) {
    if (pool == nullptr || pool->size() <= 1 || heads <= 1) {
        for (std::size_t g = 0; g < heads; ++g) f(g, ws[0]);
        return;
    }
    pool->parallel_for(heads, [&](std::size_t begin, std::size_t end, std::size_t worker) {
        for (std::size_t g = begin; g < end; ++g) f(g, ws[worker]);
    });
}

/// The records [a, e) of a run, key or value side.
[[nodiscard]] inline backend::kv::Records key_records(const Run& run, std::size_t a, std::size_t e, std::size_t kw,
                                                      std::size_t ks) noexcept {
    return {run.key_words + a * kw, kw, run.key_side != nullptr ? run.key_side + a * ks : nullptr, ks, e - a};
}
[[nodiscard]] inline backend::kv::Records value_records(const Run& run, std::size_t a, std::size_t e, std::size_t vw,
                                                        std::size_t vs) noexcept {
    return {run.value_words + a * vw, vw, run.value_side != nullptr ? run.value_side + a * vs : nullptr, vs, e - a};
}

/// attend_rotated for one architecture tag. arch::scalar: every record through the codec's
/// score/accumulate, softmax in the reference order. Other tags: the positions every query of a
/// block sees go through the codec's whole-run kernels (KVRunCodec), the softmax through the
/// tag's vector kernel; the few positions only some queries see (the causal edge of a prefill
/// block, a sliding window's edge) still go record by record.
template <class Tag, KVPolicy P, KVLayout L>
void attend_codes(Tag tag, const P& policy, const SequenceView<L>& sv, const AttentionShape& shape,
                  std::span<const float> q, std::size_t n_q, std::span<float> out,
                  std::span<AttentionWorkspace<P>> workspaces, ThreadPool* pool) {
    using KC = typename P::key_codec;
    using VC = typename P::value_codec;
    constexpr bool fast = !std::is_same_v<Tag, backend::arch::scalar>;
    const auto& kc = policy.keys();
    const auto& vc = policy.values();
    const std::size_t d = shape.dim, rep = shape.group(), hq = shape.q_heads, acc_n = vc.accumulator_size();
    const std::size_t kw = kc.words_per_token(), ks = kc.side_per_token(), vw = vc.words_per_token(),
                      vs = vc.side_per_token();
    const float scale = shape.effective_scale();
    const std::size_t nq_pos = sv.recent.count() != 0 ? sv.recent.first() : sv.size;
    for (std::size_t q0 = 0; q0 < n_q; q0 += query_block) {
        const std::size_t q1 = std::min(n_q, q0 + query_block);
        const auto b = make_block(sv, n_q, q0, q1);
        const std::size_t span = b.span, nstates = (q1 - q0) * rep;
        // Positions [c_lo, c_hi) are seen by every query of the block.
        const std::size_t c_lo = std::max(b.t_lo, b.lo(q1 - 1)), c_hi = b.pos(q0) + 1;
        const std::size_t q_end = std::min(nq_pos, b.t_lo + span);
        for_each_head(shape.kv_heads, pool, workspaces, [&](std::size_t g, AttentionWorkspace<P>& ws) {
            ws.states.resize(nstates);
            ws.scores.resize(nstates * span);
            ws.accs.resize(nstates * acc_n);
            if constexpr (!VC::plain_value_space) ws.plain.resize(nstates * d);
            float* const scores = ws.scores.data();
            const auto qvec = [&](std::size_t k) {  // state k = (qi - q0) * rep + r
                return q.data() + ((q0 + k / rep) * hq + g * rep + k % rep) * d;
            };
            for (std::size_t k = 0; k < nstates; ++k) kc.prepare_query({qvec(k), d}, ws.states[k], ws.key_scratch);
            const std::span<const typename KC::query_state> states(ws.states.data(), nstates);
            // [a, e): the part of a run that every query sees (empty when there is none).
            const auto common = [&](const Run& run, std::size_t& a, std::size_t& e) {
                a = std::clamp(c_lo, run.pos, run.pos + run.count) - run.pos;
                e = std::clamp(c_hi, run.pos, run.pos + run.count) - run.pos;
                if (e < a) e = a;
            };

            // Scores: each key's record is read once for all queries that see it.
            if constexpr (KVBlockKeyCodec<KC>) {
                // A block's statistics are shared: score all queries against the whole block, keep
                // the positions of the score rows (entries a query cannot see are never read).
                const std::size_t B = kc.block_tokens();
                ws.block.resize(nstates * B);
                for_each_key_block(sv.layout, sv.seq, g, b.t_lo, q_end, B, kw, ks,
                                   [&](std::size_t pos, auto words, auto side) {
                                       if constexpr (fast && KVRunBlockKeyCodec<KC>) {
                                           kc.score_block(tag, states, words, side, ws.key_scratch, ws.block.data(), B);
                                       } else {
                                           kc.score_block(states, words, side, ws.key_scratch, ws.block.data(), B);
                                       }
                                       for (std::size_t j = 0; j < B; ++j) {
                                           if (pos + j < b.t_lo || pos + j >= q_end) continue;
                                           for (std::size_t k = 0; k < nstates; ++k)
                                               scores[k * span + pos + j - b.t_lo] = ws.block[k * B + j];
                                       }
                                   });
            } else {
                sv.layout.for_each_run(sv.seq, g, b.t_lo, q_end, [&](const Run& run) {
                    const auto one_by_one = [&](std::size_t j0, std::size_t j1) {
                        for (std::size_t j = j0; j < j1; ++j) {
                            std::size_t a = 0, e = 0;
                            b.seeing(run.pos + j, a, e);
                            if (a == e) continue;
                            kc.score(states.subspan((a - q0) * rep, (e - a) * rep), {run.key_words + j * kw, kw},
                                     {run.key_side + j * ks, ks}, ws.key_scratch,
                                     scores + (a - q0) * rep * span + (run.pos + j - b.t_lo), span);
                        }
                    };
                    if constexpr (fast && KVRunCodec<KC>) {
                        std::size_t a = 0, e = 0;
                        common(run, a, e);
                        one_by_one(0, a);
                        if (a < e)
                            kc.score_run(tag, states, key_records(run, a, e, kw, ks),
                                         scores + (run.pos + a - b.t_lo), span);
                        one_by_one(e, run.count);
                    } else {
                        one_by_one(0, run.count);
                    }
                });
            }
            sv.recent.for_each_run(
                g, b.t_lo, b.t_lo + span, [&](std::size_t pos, std::size_t count, const float* kp, const float*) {
                    for (std::size_t j = 0; j < count; ++j) {
                        std::size_t a = 0, e = 0;
                        b.seeing(pos + j, a, e);
                        for (std::size_t k = (a - q0) * rep; k < (e - q0) * rep; ++k)
                            scores[k * span + pos + j - b.t_lo] = dot_in_order(qvec(k), kp + j * d, d);
                    }
                });
            if constexpr (fast) {
                for (std::size_t qi = q0; qi < q1; ++qi) {
                    const std::size_t from = b.lo(qi) > b.t_lo ? b.lo(qi) - b.t_lo : 0, to = b.pos(qi) + 1 - b.t_lo;
                    for (std::size_t r = 0; r < rep; ++r)
                        backend::kv::softmax_row(tag, scores + ((qi - q0) * rep + r) * span + from, to - from, scale);
                }
            } else {
                softmax_rows(scores, span, b, rep, scale);
            }

            // Values, weighted by the probabilities, in the value codec's space.
            std::fill(ws.accs.begin(), ws.accs.end(), 0.0f);
            float* plain = ws.accs.data();
            std::size_t plain_stride = acc_n;
            if constexpr (!VC::plain_value_space) {
                std::fill(ws.plain.begin(), ws.plain.end(), 0.0f);
                plain = ws.plain.data();
                plain_stride = d;
            }
            sv.layout.for_each_run(sv.seq, g, b.t_lo, q_end, [&](const Run& run) {
                const auto one_by_one = [&](std::size_t j0, std::size_t j1) {
                    for (std::size_t j = j0; j < j1; ++j) {
                        std::size_t a = 0, e = 0;
                        b.seeing(run.pos + j, a, e);
                        if (a == e) continue;
                        vc.accumulate({run.value_words + j * vw, vw}, {run.value_side + j * vs, vs}, ws.value_scratch,
                                      scores + (a - q0) * rep * span + (run.pos + j - b.t_lo), span,
                                      ws.accs.data() + (a - q0) * rep * acc_n, (e - a) * rep);
                    }
                };
                if constexpr (fast && KVRunCodec<VC>) {
                    std::size_t a = 0, e = 0;
                    common(run, a, e);
                    one_by_one(0, a);
                    if (a < e)
                        vc.accumulate_run(tag, value_records(run, a, e, vw, vs), scores + (run.pos + a - b.t_lo), span,
                                          ws.accs.data(), nstates);
                    one_by_one(e, run.count);
                } else {
                    one_by_one(0, run.count);
                }
            });
            sv.recent.for_each_run(g, b.t_lo, b.t_lo + span,
                                   [&](std::size_t pos, std::size_t count, const float*, const float* vp) {
                                       for (std::size_t j = 0; j < count; ++j) {
                                           std::size_t a = 0, e = 0;
                                           b.seeing(pos + j, a, e);
                                           const float* v = vp + j * d;
                                           for (std::size_t k = (a - q0) * rep; k < (e - q0) * rep; ++k) {
                                               const float w = scores[k * span + pos + j - b.t_lo];
                                               float* acc = plain + k * plain_stride;
                                               for (std::size_t i = 0; i < d; ++i) acc[i] += w * v[i];
                                           }
                                       }
                                   });
            for (std::size_t k = 0; k < nstates; ++k) {
                float* o = out.data() + ((q0 + k / rep) * hq + g * rep + k % rep) * d;
                vc.finish({ws.accs.data() + k * acc_n, acc_n}, {o, d}, ws.value_scratch);
                if constexpr (!VC::plain_value_space)
                    for (std::size_t i = 0; i < d; ++i) o[i] += ws.plain[k * d + i];
            }
        });
    }
}

}  // namespace detail

/// Attention on the codes, in the codecs' spaces (arguments as attend_dequantized). `arch` picks
/// the kernels once for the call (backend/simd/arch.hpp; f32 caches always attend in the
/// reference order); with a pool, KV heads run on its threads, each with its own workspace from
/// `workspaces` (at least pool->size() of them; one without a pool). The pool must not be used by
/// another call at the same time (ThreadPool::parallel_for).
template <KVPolicy P, KVLayout L>
void attend_rotated(const P& policy, const SequenceView<L>& sv, const AttentionShape& shape, std::span<const float> q,
                    std::size_t n_q, std::span<float> out, std::span<AttentionWorkspace<P>> workspaces,
                    ThreadPool* pool = nullptr, backend::arch::Arch arch = backend::arch::best_arch()) {
    detail::check_attend(shape, sv.size, q, n_q, out);
    const std::size_t need = pool != nullptr ? pool->size() : 1;
    if (workspaces.size() < need)
        optiq::detail::fail<shape_error>("kv::attend_rotated: ", workspaces.size(), " workspaces for ", need,
                                         " threads");
    if constexpr (detail::exact_codec<typename P::key_codec>() && detail::exact_codec<typename P::value_codec>()) {
        detail::attend_codes(backend::arch::scalar{}, policy, sv, shape, q, n_q, out, workspaces, pool);
    } else {
        backend::arch::dispatch(
            [&](auto tag) { detail::attend_codes(tag, policy, sv, shape, q, n_q, out, workspaces, pool); }, arch);
    }
}

/// One workspace, no pool (the signature before threads).
template <KVPolicy P, KVLayout L>
void attend_rotated(const P& policy, const SequenceView<L>& sv, const AttentionShape& shape, std::span<const float> q,
                    std::size_t n_q, std::span<float> out, AttentionWorkspace<P>& ws) {
    attend_rotated(policy, sv, shape, q, n_q, out, std::span<AttentionWorkspace<P>>(&ws, 1));
}

}  // namespace optiq::kv

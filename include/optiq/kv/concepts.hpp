#pragma once
// The slots of KVCache<Policy, Layout> (design.md "KVCache"):
//  - KVCodec: how one token's key (or value) vector of one head is stored — a fixed number of
//    uint32 code words plus side floats — and how attention reads it back *without* dequantizing:
//    a query is prepared once (rotated, turned into a lookup table), each stored key is scored
//    from its codes, and values are accumulated in the codec's own space (the rotated space for
//    rotation-based methods), mapped back to the model's space once per query by finish().
//  - KVPolicy: a key codec, a value codec and the recent-token full-precision window.
//  - KVLayout: where the records of every token, head and sequence live (contiguous per head,
//    paged, ring), exposed to attention as runs of consecutive positions per head.
//  - KVRunCodec (optional): a codec that also scores and accumulates whole runs of records at
//    once through the architecture kernels of backend/simd/kv_attention.hpp; attention uses it for
//    the positions every query of a block sees, on any architecture tag but arch::scalar (whose
//    path stays the per-record one above, the ground truth the kernels are tested against).
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_types.hpp"

namespace optiq::kv {

/// Sizes of one token's record for one head: key words/side floats, then value words/side.
struct RecordFormat {
    std::size_t heads = 0;        ///< KV heads
    std::size_t key_words = 0;    ///< uint32 words per key vector
    std::size_t key_side = 0;     ///< side floats per key vector
    std::size_t value_words = 0;  ///< uint32 words per value vector
    std::size_t value_side = 0;   ///< side floats per value vector
    std::size_t recent = 0;       ///< newest tokens of a sequence kept outside the layout (full precision)

    /// In-memory bytes of one token across all heads.
    [[nodiscard]] std::size_t token_bytes() const noexcept {
        return heads * ((key_words + value_words) * sizeof(std::uint32_t) + (key_side + value_side) * sizeof(float));
    }
    friend bool operator==(const RecordFormat&, const RecordFormat&) = default;
};

/// Writable storage of one token's record for one head.
struct RecordRef {
    std::uint32_t* key_words = nullptr;
    float* key_side = nullptr;
    std::uint32_t* value_words = nullptr;
    float* value_side = nullptr;
};

/// `count` records of consecutive positions [pos, pos + count) of one head, each array holding
/// the records back to back (record i of the key words at key_words + i * key_words_per_token).
struct Run {
    std::size_t pos = 0;
    std::size_t count = 0;
    const std::uint32_t* key_words = nullptr;
    const float* key_side = nullptr;
    const std::uint32_t* value_words = nullptr;
    const float* value_side = nullptr;
};

/// One way of storing a vector of a head's cache. Scratch is per-thread working memory (made
/// once by make_scratch and reused, so nothing is allocated per token), query_state is what a
/// query is turned into before scoring (rotated query, lookup table).
template <class C>
concept KVCodec = std::copy_constructible<C> &&
    requires(const C& c, typename C::scratch_type& scratch, typename C::query_state& state,
             std::span<const typename C::query_state> states, std::span<const float> x, std::span<float> out,
             std::span<const std::uint32_t> words, std::span<std::uint32_t> words_out, std::span<const float> side,
             std::span<float> side_out, const float* weights, std::size_t stride, float* accs) {
    typename C::scratch_type;
    typename C::query_state;
    { C::plain_value_space } -> std::convertible_to<bool>;  // values accumulate in the model's space
    { c.dim() } -> std::convertible_to<std::size_t>;
    { c.bits() } -> std::convertible_to<int>;  // nominal bits per coordinate (0: full precision)
    { c.name() } -> std::convertible_to<std::string>;
    { c.words_per_token() } -> std::convertible_to<std::size_t>;
    { c.side_per_token() } -> std::convertible_to<std::size_t>;
    { c.accumulator_size() } -> std::convertible_to<std::size_t>;  // floats of one value accumulator
    { c.make_scratch() } -> std::same_as<typename C::scratch_type>;
    c.encode(x, words_out, side_out, scratch);  // one vector -> its record
    c.decode(words, side, out);                 // the record -> the dequantized vector (reference path)
    c.prepare_query(x, state, scratch);         // reuses state's storage
    // scores[k * stride] = <query_k, decoded vector> for every state k, from the record alone.
    c.score(states, words, side, scratch, out.data(), stride);
    // accs[k * accumulator_size() ...] += weights[k * stride] * (vector in the codec's space).
    c.accumulate(words, side, scratch, weights, stride, accs, std::size_t{});
    c.finish(std::span<const float>(out), out, scratch);  // accumulator -> model-space vector
};

/// A KVCodec with whole-run kernels, for every architecture tag T (checked with arch::scalar):
///   score_run(T, states, records, out, stride)  out[k * stride + j] = <query_k, vector of record j>
///   accumulate_run(T, records, weights, stride, accs, n)   accs[k * accumulator_size() ...] +=
///       weights[k * stride + j] * (vector of record j in the codec's space), for every record j
template <class C>
concept KVRunCodec = KVCodec<C> &&
    requires(const C& c, std::span<const typename C::query_state> states, const backend::kv::Records& r, float* out,
             const float* weights, std::size_t stride, float* accs, std::size_t n) {
    c.score_run(backend::arch::scalar{}, states, r, out, stride);
    c.accumulate_run(backend::arch::scalar{}, r, weights, stride, accs, n);
};

/// A key codec that quantizes blocks of block_tokens() consecutive tokens together (KIVI keys:
/// per-channel statistics over a group of tokens). A token's record holds its codes and a
/// 1/block slice of the block's side data, so a block is block_tokens() consecutive records and
/// its side data is contiguous. Blocks start at positions that are multiples of block_tokens().
template <class C>
concept KVBlockKeyCodec = std::copy_constructible<C> &&
    requires(const C& c, typename C::scratch_type& scratch, typename C::query_state& state,
             std::span<const typename C::query_state> states, std::span<const float> x, std::span<float> out,
             std::span<const std::uint32_t> words, std::span<std::uint32_t> words_out, std::span<const float> side,
             std::span<float> side_out, std::size_t stride) {
    typename C::scratch_type;
    typename C::query_state;
    { c.dim() } -> std::convertible_to<std::size_t>;
    { c.bits() } -> std::convertible_to<int>;
    { c.name() } -> std::convertible_to<std::string>;
    { c.block_tokens() } -> std::convertible_to<std::size_t>;
    { c.words_per_token() } -> std::convertible_to<std::size_t>;
    { c.side_per_token() } -> std::convertible_to<std::size_t>;
    { c.make_scratch() } -> std::same_as<typename C::scratch_type>;
    c.encode_block(x, words_out, side_out, scratch);  // block_tokens() vectors -> their records
    c.decode_block(words, side, out);                 // records of a block -> its vectors
    c.prepare_query(x, state, scratch);
    // scores[k * stride + j] = <query_k, token j of the block>.
    c.score_block(states, words, side, scratch, out.data(), stride);
};

/// A block key codec whose score_block also takes an architecture tag (first argument).
template <class C>
concept KVRunBlockKeyCodec = KVBlockKeyCodec<C> &&
    requires(const C& c, typename C::scratch_type& scratch, std::span<const typename C::query_state> states,
             std::span<const std::uint32_t> words, std::span<const float> side, float* out, std::size_t stride) {
    c.score_block(backend::arch::scalar{}, states, words, side, scratch, out, stride);
};

/// What a policy may use for keys: a per-token codec or a block codec.
template <class C>
concept KVKeyCodec = KVCodec<C> || KVBlockKeyCodec<C>;

/// Tokens a key codec quantizes together (1 for per-token codecs).
template <KVKeyCodec C>
[[nodiscard]] std::size_t key_block_tokens(const C& c) {
    if constexpr (KVBlockKeyCodec<C>) {
        return c.block_tokens();
    } else {
        return 1;
    }
}

/// The key codec, the value codec, and how many most recent tokens stay in full precision.
template <class P>
concept KVPolicy = std::copy_constructible<P> && requires(const P& p) {
    typename P::key_codec;
    typename P::value_codec;
    requires KVKeyCodec<typename P::key_codec>;
    requires KVCodec<typename P::value_codec>;
    { p.keys() } -> std::same_as<const typename P::key_codec&>;
    { p.values() } -> std::same_as<const typename P::value_codec&>;
    { p.recent() } -> std::convertible_to<std::size_t>;
    { p.name() } -> std::convertible_to<std::string>;
};

/// Storage of the quantized records of a batch of sequences. Positions are absolute token
/// indices; a layout holds positions [first(seq), first(seq) + held(seq)).
template <class L>
concept KVLayout = requires(L& l, const L& cl, std::size_t seq, std::size_t n, const RecordFormat& fmt,
                            const typename L::options& opts, void (*visit)(const Run&)) {
    typename L::options;
    requires std::constructible_from<L, const RecordFormat&, std::size_t, const typename L::options&>;
    { cl.batch() } -> std::convertible_to<std::size_t>;
    { cl.format() } -> std::same_as<const RecordFormat&>;
    { cl.held(seq) } -> std::convertible_to<std::size_t>;
    { cl.first(seq) } -> std::convertible_to<std::size_t>;
    { cl.sliding_window() } -> std::convertible_to<std::size_t>;  // 0: attend to every position
    { l.push(seq) } -> std::convertible_to<std::size_t>;          // appends one record, returns its position
    { l.record(seq, n, n) } -> std::same_as<RecordRef>;           // (seq, head, position), writable
    cl.for_each_run(seq, n, n, n, visit);                         // (seq, head, from, to): runs in [from, to)
    l.truncate(seq, n);                                           // keep positions < n
    l.clear(seq);
    { cl.memory_bytes() } -> std::convertible_to<std::size_t>;
};

}  // namespace optiq::kv

#pragma once
// Perplexity with llama.cpp's llama-perplexity protocol (tools/perplexity, "perplexity()"): the
// text's tokens are cut into consecutive chunks of ctx tokens (a trailing partial chunk is
// dropped); each chunk runs from empty caches (with BOS in its first position when the model
// adds one); only the second half is scored: the logits at positions ctx/2 .. ctx-2 predict tokens
// ctx/2+1 .. ctx-1 (ctx/2 - 1 predictions per chunk). perplexity = exp(mean NLL) over all chunks.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/model/transformer.hpp"

namespace optiq::model {

struct PerplexityResult {
    double perplexity = 0.0;
    double mean_nll = 0.0;
    std::size_t predictions = 0;
    std::size_t chunks = 0;
    std::vector<double> chunk_perplexity;  ///< running perplexity after each chunk (llama.cpp prints these)
};

/// -log softmax(logits)[target], in double.
[[nodiscard]] inline double token_nll(std::span<const float> logits, TokenId target) {
    double mx = logits[0];
    for (float l : logits) mx = std::max<double>(mx, l);
    double z = 0.0;
    for (float l : logits) z += std::exp(static_cast<double>(l) - mx);
    return std::log(z) + mx - static_cast<double>(logits[static_cast<std::size_t>(target)]);
}

/// max_chunks 0: every whole chunk. bos: written over the first token of each chunk (llama.cpp does
/// this when the vocabulary adds BOS). on_chunk(i, running perplexity) after each chunk.
inline PerplexityResult perplexity(Transformer& m, std::span<const TokenId> tokens, std::size_t ctx = 512,
                                   std::size_t max_chunks = 0, std::optional<TokenId> bos = std::nullopt,
                                   const std::function<void(std::size_t, double)>& on_chunk = {}) {
    if (ctx < 4) optiq::detail::fail<config_error>("model::perplexity: ctx ", ctx, " is too small (need >= 4)");
    std::size_t n_chunks = tokens.size() / ctx;
    if (max_chunks) n_chunks = std::min(n_chunks, max_chunks);
    if (n_chunks == 0)
        optiq::detail::fail<value_error>("model::perplexity: ", tokens.size(), " tokens do not fill one chunk of ", ctx);
    PerplexityResult r;
    const std::size_t V = m.config().vocab_size, first = ctx / 2;
    double nll = 0.0;
    std::vector<TokenId> chunk(ctx);
    for (std::size_t c = 0; c < n_chunks; ++c) {
        std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(c * ctx), ctx, chunk.begin());
        if (bos) chunk[0] = *bos;
        m.reset();
        const std::vector<float> logits = m.forward_from(chunk, 0, first);  // rows first .. ctx-1
        for (std::size_t j = first; j + 1 < ctx; ++j) {
            nll += token_nll({logits.data() + (j - first) * V, V}, tokens[c * ctx + j + 1]);
            ++r.predictions;
        }
        r.chunk_perplexity.push_back(std::exp(nll / static_cast<double>(r.predictions)));
        if (on_chunk) on_chunk(c, r.chunk_perplexity.back());
    }
    r.chunks = n_chunks;
    r.mean_nll = nll / static_cast<double>(r.predictions);
    r.perplexity = std::exp(r.mean_nll);
    return r;
}

}  // namespace optiq::model

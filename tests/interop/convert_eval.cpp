// Quality of converted models against their reference (docs/results.md), until optiq-eval lands:
//   optiq_convert_eval REF TOKENIZER|- TEXT CTX CHUNKS QDIR [QDIR...]
// Tokenizes TEXT with REF's tokenizer, cuts it into CHUNKS consecutive chunks of CTX tokens and
// scores each model with llama.cpp's perplexity protocol (model/perplexity.hpp: the second half of
// each chunk, BOS in front when the tokenizer adds one). For each quantized directory it also
// reports the mean KL(ref || quantized) of the next-token distributions over the same scored
// positions. One JSON object per model on stdout.
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "optiq/alloc/sensitivity/kl.hpp"
#include "optiq/model/loader.hpp"
#include "optiq/model/perplexity.hpp"
#include "optiq/tokenizer/any_tokenizer.hpp"

int main(int argc, char** argv) try {
    using namespace optiq;
    if (argc < 7) {
        std::fprintf(stderr, "usage: %s REF TOKENIZER|- TEXT CTX CHUNKS QDIR...\n", argv[0]);
        return 2;
    }
    const std::string tok_path = argv[2];
    const auto tok = tokenizer::load_tokenizer(argv[1], tok_path == "-" ? std::string() : tok_path);
    std::ifstream in(argv[3], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::vector<model::TokenId> ids = tok.encode(ss.str(), false);
    const std::size_t ctx = std::stoul(argv[4]), chunks = std::stoul(argv[5]);
    std::optional<model::TokenId> bos;
    if (tok.adds_bos()) bos = tok.encode("", true).at(0);
    if (ids.size() < ctx * chunks) {
        std::fprintf(stderr, "%zu tokens, need %zu\n", ids.size(), ctx * chunks);
        return 1;
    }
    std::vector<std::string> names = {argv[1]};
    std::vector<model::Transformer> models;
    models.push_back(model::load(argv[1]));
    for (int a = 6; a < argc; ++a) {
        names.emplace_back(argv[a]);
        models.push_back(model::load(argv[a]));
    }
    const std::size_t V = models[0].config().vocab_size, first = ctx / 2, n_models = models.size();
    std::vector<double> nll(n_models, 0.0), kl(n_models, 0.0);
    std::size_t predictions = 0;
    std::vector<model::TokenId> chunk(ctx);
    alloc::detail::RefDistribution ref;
    for (std::size_t c = 0; c < chunks; ++c) {
        std::copy_n(ids.begin() + static_cast<std::ptrdiff_t>(c * ctx), ctx, chunk.begin());
        if (bos) chunk[0] = *bos;
        for (std::size_t m = 0; m < n_models; ++m) {
            models[m].reset();
            std::vector<float> lg = models[m].forward_from(chunk, 0, first);  // rows first..ctx-1
            lg.resize((ctx - 1 - first) * V);                                  // the last row predicts nothing
            for (std::size_t j = first; j + 1 < ctx; ++j)
                nll[m] += model::token_nll({lg.data() + (j - first) * V, V}, ids[c * ctx + j + 1]);
            if (m == 0) alloc::detail::log_softmax_rows(lg, V, ref);
            else kl[m] += alloc::detail::kl_sum_rows(ref, lg, V);
        }
        predictions += ctx - 1 - first;
        std::fprintf(stderr, "chunk %zu/%zu: ppl ref %.4f\n", c + 1, chunks, std::exp(nll[0] / static_cast<double>(predictions)));
    }
    for (std::size_t m = 0; m < n_models; ++m)
        std::printf("{\"model\": \"%s\", \"perplexity\": %.6f, \"kl\": %.8g, \"predictions\": %zu, \"chunks\": %zu, \"ctx\": %zu}\n",
                    names[m].c_str(), std::exp(nll[m] / static_cast<double>(predictions)),
                    kl[m] / static_cast<double>(predictions), predictions, chunks, ctx);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}

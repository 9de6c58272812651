// optiq-eval: perplexity (llama.cpp's protocol, as model/perplexity.hpp) of a model with a given KV
// cache, and the mean KL(reference || evaluated) of the next-token distributions at the same positions.
//   optiq-eval --model SmolLM2.gguf --text wiki.test.raw --ctx 512 --chunks 20
//   optiq-eval --model SmolLM2.gguf --kv-config kv/kv_config.json --text wiki.test.raw --kl
//   optiq-eval --model SmolLM2.gguf --quantized out/ --text wiki.test.raw --json
// The evaluated model is --quantized when given, else --model, with the caches of --kv-config (f32
// otherwise). The reference is --model with f32 caches; it runs (ref_ppl, kl_mean) when --quantized
// is given or with --kl. Output: a table on stdout, or with --json one object
//   {"ppl", "ref_ppl", "kl_mean", "tokens", "chunks", "ctx"}   (ref_ppl / kl_mean null when not run;
// tokens = scored predictions). Progress goes to stderr.
#include <optiq/alloc/sensitivity/kv_kl.hpp>
#include <optiq/core/progress.hpp>
#include <optiq/kv/kv_config.hpp>
#include <optiq/model/loader.hpp>
#include <optiq/model/perplexity.hpp>
#include <optiq/tokenizer/any_tokenizer.hpp>

#include <CLI/CLI.hpp>

#include "../common/engine_flags.hpp"
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using optiq::model::TokenId;

namespace {

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw optiq::format_error("optiq-eval: --text " + p.string() + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"optiq-eval: perplexity and KL against a reference model"};
    std::string ref_path, tokenizer_path, quantized, kv_config, text_path;
    std::size_t ctx = 512, chunks = 0, threads = 2;
    bool json = false, force_kl = false, quiet = false, kv_int8 = false;
    app.add_option("--model", ref_path, "reference model: directory, .gguf or llama2.c .bin")->required();
    app.add_option("--tokenizer", tokenizer_path, "tokenizer.json, llama2.c tokenizer.bin or a .gguf");
    app.add_option("--quantized", quantized, "model to evaluate against --model (e.g. an optiq-convert output)");
    app.add_option("--kv-config", kv_config, "kv_config.json for the evaluated model's caches");
    app.add_flag("--kv-int8", kv_int8,
                 "4-bit tq_mse layers of --kv-config: int8 attention arithmetic (AVX-512 VNNI; approximate, opt-in)");
    app.add_option("--text", text_path, "evaluation text (held out: not the calibration text)")->required();
    app.add_option("--ctx", ctx, "chunk length")->check(CLI::Range(4, 1 << 20));
    app.add_option("--chunks", chunks, "chunks to score (0: all)");
    app.add_flag("--kl", force_kl, "also run the reference (f32 caches) without --quantized: KL of the KV config");
    app.add_flag("--json", json, "print one JSON object instead of the table");
    app.add_option("--threads", threads, "matmul threads")->check(CLI::Range(1, 256));
    optiq_drivers::EngineFlags engine_flags;
    engine_flags.add(app);
    app.add_flag("-q,--quiet", quiet, "no progress bar");
    CLI11_PARSE(app, argc, argv);

    try {
        optiq::model::LoadOptions lo;
        lo.transformer.threads = threads;
        engine_flags.apply(lo);
        optiq::model::LoadOptions eval_lo = lo;
        if (!kv_config.empty())
            eval_lo.caches = optiq::model::kv_config_cache_factory(optiq::kv::read_kv_config(kv_config),
                                                                   optiq::kv::KVCacheOptions<>{.int8_attention = kv_int8});
        const std::string eval_path = quantized.empty() ? ref_path : quantized;
        auto m = optiq::model::load(eval_path, eval_lo);
        std::optional<optiq::model::Transformer> ref;
        if (!quantized.empty() || force_kl) {
            ref.emplace(optiq::model::load(ref_path, lo));
            if (ref->config().vocab_size != m.config().vocab_size)
                throw optiq::config_error("optiq-eval: --model has a vocabulary of " +
                                          std::to_string(ref->config().vocab_size) + ", --quantized " +
                                          std::to_string(m.config().vocab_size));
        }
        const auto tok = optiq::tokenizer::load_tokenizer(ref_path, tokenizer_path);
        if (tok.empty()) throw optiq::config_error("optiq-eval: " + ref_path + ": no tokenizer found (give --tokenizer)");
        const auto ids = tok.encode(read_text(text_path));
        std::optional<TokenId> bos;
        if (tok.adds_bos() && m.config().bos_token_id >= 0) bos = m.config().bos_token_id;

        // llama.cpp's perplexity: whole chunks of ctx from empty caches, BOS over the first token,
        // the second half scored (model/perplexity.hpp).
        std::size_t n_chunks = ids.size() / ctx;
        if (chunks) n_chunks = std::min(n_chunks, chunks);
        if (n_chunks == 0)
            throw optiq::value_error("optiq-eval: " + text_path + ": " + std::to_string(ids.size()) +
                                     " tokens do not fill one chunk of " + std::to_string(ctx));
        const std::size_t V = m.config().vocab_size, first = ctx / 2;
        double nll = 0, ref_nll = 0, kl = 0;
        std::size_t predictions = 0;
        std::vector<TokenId> chunk(ctx);
        std::vector<double> row_kl;
        optiq::ProgressBar bar("eval", n_chunks, stderr, !quiet);
        for (std::size_t c = 0; c < n_chunks; ++c) {
            std::copy_n(ids.begin() + static_cast<std::ptrdiff_t>(c * ctx), ctx, chunk.begin());
            if (bos) chunk[0] = *bos;
            m.reset();
            const std::vector<float> logits = m.forward_from(chunk, 0, first);
            std::vector<float> ref_logits;
            if (ref) {
                ref->reset();
                ref_logits = ref->forward_from(chunk, 0, first);
            }
            const std::size_t rows = ctx - 1 - first;
            row_kl.assign(rows, 0.0);
            if (ref)
                m.pool().parallel_for(rows, [&](std::size_t r0, std::size_t r1, std::size_t) {
                    for (std::size_t r = r0; r < r1; ++r)
                        row_kl[r] = optiq::alloc::KVKLSensitivity::logits_kl({ref_logits.data() + r * V, V},
                                                                             {logits.data() + r * V, V});
                });
            for (std::size_t j = first; j + 1 < ctx; ++j) {
                const TokenId target = ids[c * ctx + j + 1];
                nll += optiq::model::token_nll({logits.data() + (j - first) * V, V}, target);
                if (ref) ref_nll += optiq::model::token_nll({ref_logits.data() + (j - first) * V, V}, target);
                kl += row_kl[j - first];
                ++predictions;
            }
            bar.advance();
        }
        bar.finish();
        const double n = static_cast<double>(predictions);
        const double ppl = std::exp(nll / n);
        nlohmann::ordered_json out;
        out["ppl"] = ppl;
        out["ref_ppl"] = ref ? nlohmann::ordered_json(std::exp(ref_nll / n)) : nlohmann::ordered_json(nullptr);
        out["kl_mean"] = ref ? nlohmann::ordered_json(kl / n) : nlohmann::ordered_json(nullptr);
        out["tokens"] = predictions;
        out["chunks"] = n_chunks;
        out["ctx"] = ctx;
        if (json) {
            std::printf("%s\n", out.dump().c_str());
        } else {
            std::printf("%-12s %s\n", "model", eval_path.c_str());
            std::printf("%-12s %s\n", "kv cache", kv_config.empty() ? "f32" : kv_config.c_str());
            std::printf("%-12s %s (%zu tokens; %zu chunks of %zu, %zu scored)\n", "text", text_path.c_str(), ids.size(),
                        n_chunks, ctx, predictions);
            std::printf("%-12s %.4f\n", "perplexity", ppl);
            if (ref) {
                std::printf("%-12s %.4f (%s, f32 KV)\n", "ref ppl", std::exp(ref_nll / n), ref_path.c_str());
                std::printf("%-12s %.6f\n", "KL mean", kl / n);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}

// optiq-generate: text generation and perplexity with optiq's model runtime.
//   optiq-generate --model SmolLM2-135M-Instruct.Q4_1.gguf --prompt "What is 2+2?" --chat --max-tokens 64
//   optiq-generate --model stories260K.bin --tokenizer tok512.bin --prompt "Once upon a time" --temp 0.8 --seed 7
//   optiq-generate --model DIR --prompt-ids 1,2,3 --max-tokens 16          (raw ids in and out)
//   optiq-generate --model M.gguf --perplexity wiki.test.raw --ctx 512 --chunks 20
// --model: an HF / MLX directory (config.json + safetensors), a .gguf file or a llama2.c .bin.
// The tokenizer comes from the model (GGUF vocabulary, tokenizer.json beside config.json,
// tokenizer.bin / tok512.bin beside a llama2.c checkpoint) unless --tokenizer names one.
// Text goes to stdout as it is generated; prompt and decode speeds go to stderr.
#include <optiq/kv/kv_config.hpp>
#include <optiq/model/generate.hpp>
#include <optiq/model/loader.hpp>
#include <optiq/model/perplexity.hpp>
#include <optiq/tokenizer/any_tokenizer.hpp>

#include <CLI/CLI.hpp>

#include "../common/engine_flags.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using optiq::model::TokenId;

namespace {

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw optiq::format_error("optiq: " + p.string() + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<TokenId> parse_ids(const std::string& s) {
    std::vector<TokenId> ids;
    std::stringstream ss(s);
    for (std::string x; std::getline(ss, x, ',');)
        if (!x.empty()) ids.push_back(static_cast<TokenId>(std::stol(x)));
    return ids;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"optiq-generate: generate text or measure perplexity with optiq's model runtime"};
    std::string model_path, tokenizer_path, prompt, prompt_ids, system, kv_config, ppl_file;
    std::vector<std::string> stops;
    bool chat = false, raw_ids = false, kv_int8 = false;
    std::size_t max_tokens = 128, threads = 2, ctx = 512, chunks = 0;
    optiq::model::SamplingOptions s;
    s.temperature = 0.0f;
    app.add_option("--model", model_path, "model directory, .gguf or llama2.c .bin")->required();
    app.add_option("--tokenizer", tokenizer_path, "tokenizer.json, llama2.c tokenizer.bin or a .gguf");
    app.add_option("--prompt", prompt, "prompt text");
    app.add_option("--prompt-ids", prompt_ids, "prompt as comma-separated token ids");
    app.add_flag("--chat", chat, "wrap the prompt in the model's chat template");
    app.add_option("--system", system, "system message for --chat");
    app.add_option("--max-tokens", max_tokens, "tokens to generate");
    app.add_option("--temp", s.temperature, "temperature (0: greedy)");
    app.add_option("--top-k", s.top_k, "top-k (0: off)");
    app.add_option("--top-p", s.top_p, "top-p (1: off)");
    app.add_option("--min-p", s.min_p, "min-p (0: off)");
    app.add_option("--repeat-penalty", s.repetition_penalty, "repetition penalty (1: off)");
    app.add_option("--seed", s.seed, "sampling seed");
    app.add_option("--stop", stops, "stop string (repeatable)");
    app.add_flag("--raw-ids", raw_ids, "print generated token ids instead of text");
    app.add_option("--threads", threads, "matmul threads")->check(CLI::Range(1, 256));
    optiq_drivers::EngineFlags engine_flags;
    engine_flags.add(app);
    app.add_option("--kv-config", kv_config, "kv_config.json for per-layer KV cache quantization");
    app.add_flag("--kv-int8", kv_int8,
                 "4-bit tq_mse layers of --kv-config: int8 attention arithmetic (AVX-512 VNNI; approximate, opt-in)");
    app.add_option("--perplexity", ppl_file, "text file: print perplexity (llama.cpp protocol) instead of generating");
    app.add_option("--ctx", ctx, "perplexity chunk length")->check(CLI::Range(4, 1 << 20));
    app.add_option("--chunks", chunks, "perplexity chunks (0: all)");
    CLI11_PARSE(app, argc, argv);

    try {
        using clock = std::chrono::steady_clock;
        const auto t0 = clock::now();
        optiq::model::LoadOptions lo;
        lo.transformer.threads = threads;
        engine_flags.apply(lo);
        if (!kv_config.empty())
            lo.caches = optiq::model::kv_config_cache_factory(optiq::kv::read_kv_config(kv_config),
                                                              optiq::kv::KVCacheOptions<>{.int8_attention = kv_int8});
        auto m = optiq::model::load(model_path, lo);
        const auto tok = optiq::tokenizer::load_tokenizer(model_path, tokenizer_path);
        std::fprintf(stderr, "loaded %s (%s, %zu layers, dim %zu, vocab %zu) in %.2f s\n", model_path.c_str(),
                     std::string(optiq::model::arch_name(m.config().arch)).c_str(), m.config().n_layers, m.config().dim,
                     m.config().vocab_size, std::chrono::duration<double>(clock::now() - t0).count());

        if (!ppl_file.empty()) {
            const auto ids = tok.encode(read_text(ppl_file));
            std::optional<TokenId> bos;
            if (tok.adds_bos() && m.config().bos_token_id >= 0) bos = m.config().bos_token_id;
            std::fprintf(stderr, "%zu tokens, ctx %zu\n", ids.size(), ctx);
            const auto t1 = clock::now();
            const auto r = optiq::model::perplexity(m, ids, ctx, chunks, bos, [&](std::size_t c, double p) {
                std::fprintf(stderr, "[%zu] %.4f\n", c + 1, p);
            });
            const double secs = std::chrono::duration<double>(clock::now() - t1).count();
            std::printf("perplexity %.4f over %zu chunks of %zu (%zu predictions), %.1f tok/s\n", r.perplexity, r.chunks,
                        ctx, r.predictions, static_cast<double>(r.chunks * ctx) / secs);
            return 0;
        }

        std::vector<TokenId> ids;
        if (!prompt_ids.empty()) {
            ids = parse_ids(prompt_ids);
        } else {
            std::string text = prompt;
            if (chat) {
                if (!tok.chat()) throw optiq::config_error("optiq-generate: --chat, but the model has no chat template");
                std::vector<optiq::tokenizer::ChatMessage> msgs;
                if (!system.empty()) msgs.push_back({"system", system});
                msgs.push_back({"user", prompt});
                text = tok.chat()->render(msgs, true);
            }
            ids = tok.encode(text);
        }
        if (ids.empty()) throw optiq::value_error("optiq-generate: empty prompt (give --prompt or --prompt-ids)");

        optiq::model::GenerateOptions go;
        go.max_tokens = max_tokens;
        go.sampling = s;
        go.stop_strings = stops;
        // Generated text = text(prompt + generated) minus text(prompt): a piece's leading space
        // (SentencePiece strips it at the start of a text) is kept.
        optiq::model::Detokenizer detok;
        const std::string prompt_text = tok.empty() ? std::string() : tok.decode(ids);
        if (!tok.empty() && !raw_ids)
            detok = [&](std::span<const TokenId> t) {
                std::vector<TokenId> all(ids);
                all.insert(all.end(), t.begin(), t.end());
                std::string text = tok.decode(all);
                return text.size() >= prompt_text.size() && text.compare(0, prompt_text.size(), prompt_text) == 0
                           ? text.substr(prompt_text.size())
                           : tok.decode(t);
            };
        if (detok && !chat) std::fwrite(prompt_text.data(), 1, prompt_text.size(), stdout);
        const auto r = optiq::model::generate(
            m, ids, go, detok, [](std::string_view piece) { std::fwrite(piece.data(), 1, piece.size(), stdout), std::fflush(stdout); },
            [&](TokenId t) {
                if (!detok) std::printf("%d ", t), std::fflush(stdout);
            });
        std::printf("\n");
        std::fflush(stdout);  // the text ends before the stats on stderr
        static const char* reasons[] = {"max tokens", "stop token", "stop string", "context full"};
        std::fprintf(stderr, "prompt: %zu tokens, %.1f tok/s; decode: %zu tokens, %.1f tok/s; stop: %s\n",
                     r.prompt_tokens, r.prompt_tokens_per_second(), r.tokens.size(), r.decode_tokens_per_second(),
                     reasons[static_cast<int>(r.stop)]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}

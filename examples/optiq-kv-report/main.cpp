// optiq-kv-report: KV-cache methods on synthetic keys with outlier channels (kv/evaluate.hpp):
// bytes per token, compression vs f16, attention-output error, top-1 key agreement, needle
// retrieval at 32k tokens, and decode time per token at 32k (8 KV heads, GQA 4).
//   optiq-kv-report [--dim 128] [--methods tq_mse:4,kivi:2,...] [--tokens 2048] [--needle-trials 4]
//                   [--context 32768] [--no-timing] [--json]
#include <optiq/core/progress.hpp>
#include <optiq/kv/evaluate.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    CLI::App app{"optiq-kv-report: quality, size and decode speed of KV-cache quantization methods"};
    std::size_t dim = 128, tokens = 2048, queries = 64, needle_trials = 4, needle_tokens = 32768, context = 32768;
    std::vector<std::string> methods;
    for (const auto& m : optiq::kv::default_kv_methods()) methods.push_back(m.label());
    std::uint64_t seed = 42;
    double margin = 2.0;
    optiq::kv::SyntheticKeyOptions opts{};
    bool json = false, no_timing = false;
    app.add_option("--dim", dim, "head dimension")->check(CLI::Range(16, 1024));
    app.add_option("--methods", methods, "methods: f16, tq_mse:b, tq_prod:b, rvq:b, qjl, polar[:b], kivi:b, affine:b")
        ->delimiter(',');
    app.add_option("--tokens", tokens, "context of the quality measurement")->check(CLI::Range(32, 1 << 20));
    app.add_option("--queries", queries, "queries of the quality measurement")->check(CLI::Range(1, 1 << 16));
    app.add_option("--needle-tokens", needle_tokens, "needle test context")->check(CLI::Range(2, 1 << 22));
    app.add_option("--needle-trials", needle_trials, "needle trials per method (0: skip)")->check(CLI::Range(0, 1000));
    app.add_option("--context", context, "decode timing context")->check(CLI::Range(1, 1 << 22));
    app.add_option("--outliers", opts.outlier_channels, "outlier key channels");
    app.add_option("--outlier-offset", opts.outlier_offset, "outlier channel offset, in units of its scale");
    app.add_option("--norm-sigma", opts.norm_sigma, "per-token log-norm standard deviation");
    app.add_option("--logit-std", opts.logit_std, "standard deviation of q.k/sqrt(d) over the context");
    app.add_option("--needle-margin", margin, "needle score above the best distractor, in score std");
    app.add_option("--seed", seed, "seed of the synthetic data and rotations");
    app.add_flag("--no-timing", no_timing, "skip the decode timing");
    app.add_flag("--json", json, "print a JSON list instead of a table");
    CLI11_PARSE(app, argc, argv);

    try {
        std::vector<optiq::kv::KVMethod> ms;
        for (const auto& s : methods) ms.push_back(optiq::kv::parse_kv_method(s));
        const auto data = optiq::kv::make_synthetic_kv(tokens, dim, queries, opts, seed);
        const optiq::kv::AttentionShape shape{32, 8, dim, 0.0f};
        struct Row {
            optiq::kv::KVQuality q;
            double needle = -1, decode_us = -1;
        };
        std::vector<Row> rows;
        optiq::ProgressBar bar("kv-report", ms.size());
        for (const auto& m : ms) {
            bar.set_label(m.label());
            Row r{optiq::kv::evaluate_quality(m, data, optiq::Rng::derive(seed, 1))};
            if (needle_trials > 0)
                r.needle = optiq::kv::needle_retrieval(m, dim, {needle_tokens, needle_trials, margin, opts}, seed);
            if (!no_timing) r.decode_us = optiq::kv::decode_time_us(m, shape, context);
            rows.push_back(r);
            bar.advance();
        }
        bar.finish();
        if (json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& r : rows) {
                nlohmann::json j{{"method", r.q.method},
                                 {"dim", dim},
                                 {"bytes_per_token", r.q.bytes_per_token},
                                 {"compression_vs_f16", r.q.compression_vs_f16},
                                 {"attn_rel_error", r.q.attn_rel_error},
                                 {"top1_agreement", r.q.top1_agreement},
                                 {"score_rel_rmse", r.q.score_rel_rmse}};
                j["needle_rate"] = r.needle >= 0 ? nlohmann::json(r.needle) : nlohmann::json(nullptr);
                j["needle_tokens"] = needle_tokens;
                j["decode_us"] = r.decode_us >= 0 ? nlohmann::json(r.decode_us) : nlohmann::json(nullptr);
                j["decode_context"] = context;
                out.push_back(j);
            }
            std::printf("%s\n", out.dump(2).c_str());
        } else {
            std::printf("d=%zu; quality: %zu tokens, %zu queries, %zu outlier channels x%.0f-%.0f, offset %.1f, logit std %.1f; "
                        "needle: %zu tokens, %zu trials, margin %.2f; decode: %zu tokens, %zu q / %zu kv heads; seed %llu\n\n",
                        dim, tokens, queries, opts.outlier_channels, static_cast<double>(opts.outlier_scale_min),
                        static_cast<double>(opts.outlier_scale_max), static_cast<double>(opts.outlier_offset),
                        static_cast<double>(opts.logit_std), needle_tokens, needle_trials, margin, context, shape.q_heads, shape.kv_heads,
                        static_cast<unsigned long long>(seed));
            int w = 10;  // the method column fits the longest label ("tq_mse:4+int8")
            for (const auto& r : rows) w = std::max(w, static_cast<int>(r.q.method.size()));
            std::printf("| %-*s | %9s | %8s | %10s | %8s | %10s | %8s | %10s |\n", w, "method", "B/token", "vs f16",
                        "attn err", "top-1", "score err", "needle", "decode us");
            std::printf("|%s|\n", std::string(static_cast<std::size_t>(88 + w), '-').c_str());
            for (const auto& r : rows)
                std::printf("| %-*s | %9.1f | %7.2fx | %10.5f | %8.3f | %10.5f | %8.3f | %10.1f |\n", w,
                            r.q.method.c_str(), r.q.bytes_per_token, r.q.compression_vs_f16, r.q.attn_rel_error,
                            r.q.top1_agreement, r.q.score_rel_rmse, r.needle, r.decode_us);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "optiq-kv-report: %s\n", e.what());
        return 1;
    }
    return 0;
}

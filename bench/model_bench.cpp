// optiq_bench_model: prefill and decode throughput of model::Transformer (2 matmul threads) with
// f32 weights vs MLX affine 4-bit and 8-bit weights (group 64, quantized in process with
// optiq::mlx::quantize; a linear whose input dim is not a multiple of 64 stays f32).
//
//   <model>/<weights>/prefill   one 128-token prompt from an empty cache      tok/s = 128 / time
//   <model>/<weights>/decode    64 single-token steps after that prompt         tok/s = 64 / time
//                               (the prompt itself runs with the timer paused)
//
// Models: stories260K (llama2.c; OPTIQ_BENCH_STORIES or the shared models folder) and
// SmolLM2-135M-Instruct (${OPTIQ_CACHE:-~/.cache/optiq}/SmolLM2-135M-Instruct.Q4_1.gguf; its Q4_1
// weights are dequantized to f32 at load, that f32 model is the baseline and the source of the
// affine weights). A missing model's rows are skipped with a message. At the end the reporter
// prints every quantized row's tok/s relative to the f32 row of the same model and phase, same run.
// Matmul kernels: the best this CPU runs (backend/simd/matmul*.hpp), named on stderr and in the
// benchmark context; OPTIQ_SIMD_MAX=scalar|avx2 in the environment measures a narrower one.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "optiq/backend/simd/arch.hpp"
#include "optiq/model/loader.hpp"
#include "optiq/model/transformer.hpp"
#include "optiq/model/weights.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

#ifndef OPTIQ_BENCH_STORIES
#define OPTIQ_BENCH_STORIES ""
#endif

namespace {

namespace fs = std::filesystem;
using optiq::model::Transformer;

constexpr std::size_t kPrompt = 128, kDecode = 64, kThreads = 2, kGroup = 64;

struct ModelSpec {
    std::string name;
    fs::path path;
};

/// bits 0: f32 as loaded; 4 / 8: every linear with in % 64 == 0 replaced by its mx.quantize.
std::unique_ptr<Transformer> load_model(const fs::path& path, int bits) {
    optiq::model::LoadOptions opts;
    opts.transformer.threads = kThreads;
    auto m = std::make_unique<Transformer>(optiq::model::load(path, opts));
    if (bits == 0) return m;
    std::size_t quantized = 0, kept = 0;
    m->for_each_linear([&](const std::string& name, optiq::model::Linear& l) {
        if (l.empty()) return;
        if (l.in_features() % kGroup != 0 || l.format() != optiq::model::WeightFormat::f32) {
            ++kept;
            return;
        }
        const std::vector<float> w(l.f32_data().begin(), l.f32_data().end());
        auto q = optiq::mlx::quantize(w, {l.out_features(), l.in_features()}, kGroup, bits);
        auto repl = optiq::model::Linear::mlx_affine(std::move(q), name);
        if (!l.bias().empty()) repl.set_bias(l.bias());
        l = std::move(repl);
        ++quantized;
    });
    std::fprintf(stderr, "optiq_bench_model: %s at %d bits: %zu linears quantized, %zu kept f32\n",
                 path.filename().string().c_str(), bits, quantized, kept);
    return m;
}

/// One loaded model per (path, bits), built on first use (outside the timed region).
Transformer& model_for(const fs::path& path, int bits) {
    static std::map<std::pair<std::string, int>, std::unique_ptr<Transformer>> cache;
    auto& slot = cache[{path.string(), bits}];
    if (!slot) slot = load_model(path, bits);
    return *slot;
}

std::vector<optiq::model::TokenId> prompt_tokens(std::size_t vocab) {
    std::vector<optiq::model::TokenId> t(kPrompt);
    for (std::size_t i = 0; i < kPrompt; ++i)
        t[i] = static_cast<optiq::model::TokenId>((i * 7919 + 13) % vocab);
    return t;
}

optiq::model::TokenId argmax(const std::vector<float>& v) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < v.size(); ++i)
        if (v[i] > v[best]) best = i;
    return static_cast<optiq::model::TokenId>(best);
}

void BM_prefill(benchmark::State& state, fs::path path, int bits) {
    Transformer& m = model_for(path, bits);
    const auto prompt = prompt_tokens(m.config().vocab_size);
    for (auto _ : state) {
        m.reset();
        auto logits = m.forward(prompt, 0);
        benchmark::DoNotOptimize(logits.data());
    }
    state.counters["tok/s"] = benchmark::Counter(static_cast<double>(kPrompt), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_decode(benchmark::State& state, fs::path path, int bits) {
    Transformer& m = model_for(path, bits);
    const auto prompt = prompt_tokens(m.config().vocab_size);
    for (auto _ : state) {
        state.PauseTiming();
        m.reset();
        auto tok = argmax(m.forward(prompt, 0));
        state.ResumeTiming();
        for (std::size_t i = 0; i < kDecode; ++i) {
            const optiq::model::TokenId one[1] = {tok};
            tok = argmax(m.forward(one, m.position()));
        }
        benchmark::DoNotOptimize(tok);
    }
    state.counters["tok/s"] = benchmark::Counter(static_cast<double>(kDecode), benchmark::Counter::kIsIterationInvariantRate);
}

/// The console table, then each quantized row's tok/s over its f32 row's.
class RatioReporter : public benchmark::ConsoleReporter {
public:
    RatioReporter() : ConsoleReporter(OO_Tabular) {}  // no colour codes: the output goes to logs
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            const bool is_mean = r.run_type == Run::RT_Aggregate && r.aggregate_name == "mean";
            if (r.run_type == Run::RT_Aggregate && !is_mean) continue;
            const auto it = r.counters.find("tok/s");
            if (it == r.counters.end() || !(it->second.value > 0)) continue;  // errored runs too
            std::string key = r.run_name.str();  // <model>/<weights>/<phase>/real_time
            if (const auto rt = key.rfind("/real_time"); rt != std::string::npos && rt + 10 == key.size()) key.resize(rt);
            if (is_mean || !has_mean_.count(key)) rate_[key] = it->second.value;
            if (is_mean) has_mean_[key] = true;
        }
    }
    void Finalize() override {
        ConsoleReporter::Finalize();
        std::printf("\ntok/s relative to the f32 weights (same model, same phase, same run):\n");
        for (const auto& [name, rate] : rate_) {
            // name: <model>/<weights>/<phase>
            const auto p1 = name.find('/'), p2 = name.rfind('/');
            if (p1 == std::string::npos || p1 == p2) continue;
            const std::string weights = name.substr(p1 + 1, p2 - p1 - 1);
            if (weights == "f32") continue;
            const std::string base = name.substr(0, p1) + "/f32" + name.substr(p2);
            const auto b = rate_.find(base);
            if (b == rate_.end() || b->second <= 0) continue;
            std::printf("  %-40s %10.1f tok/s %8.2fx vs %s (%.1f tok/s)\n", name.c_str(), rate, rate / b->second,
                        base.c_str(), b->second);
        }
    }

private:
    std::map<std::string, double> rate_;
    std::map<std::string, bool> has_mean_;
};

fs::path cache_dir() {
    if (const char* c = std::getenv("OPTIQ_CACHE"); c && *c) return c;
    if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "optiq";
    return ".cache/optiq";
}

}  // namespace

int main(int argc, char** argv) {
    fs::path stories = OPTIQ_BENCH_STORIES;
    if (const char* s = std::getenv("OPTIQ_BENCH_STORIES"); s && *s) stories = s;
    const std::vector<ModelSpec> models{{"stories260K", stories},
                                        {"SmolLM2-135M", cache_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"}};
    const std::pair<const char*, int> formats[] = {{"f32", 0}, {"affine4_g64", 4}, {"affine8_g64", 8}};
    for (const auto& spec : models) {
        std::error_code ec;
        if (spec.path.empty() || !fs::is_regular_file(spec.path, ec)) {
            std::fprintf(stderr, "optiq_bench_model: %s not found at '%s': its rows are skipped\n", spec.name.c_str(),
                         spec.path.string().c_str());
            continue;
        }
        for (const auto& [fname, bits] : formats) {
            const std::string base = spec.name + "/" + fname;
            benchmark::RegisterBenchmark((base + "/prefill").c_str(), BM_prefill, spec.path, bits)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
            benchmark::RegisterBenchmark((base + "/decode").c_str(), BM_decode, spec.path, bits)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
        }
    }
    const std::string kernels(optiq::backend::arch::arch_name(optiq::backend::arch::best_arch()));
    std::fprintf(stderr, "optiq_bench_model: matmul kernels: %s\n", kernels.c_str());
    benchmark::AddCustomContext("optiq_matmul_arch", kernels);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}

// optiq_bench_model: prefill and decode throughput of model::Transformer (2 matmul threads unless
// --threads says otherwise) with f32 weights vs MLX affine 4-bit and 8-bit weights (group 64,
// quantized in process with optiq::mlx::quantize; a linear whose input dim is not a multiple of 64
// stays f32), and of any GGUF named on the command line as the loader reads it by default.
//
//   <model>/<weights>/prefill   one 128-token prompt from an empty cache      tok/s = 128 / time
//   <model>/<weights>/decode    64 single-token steps after that prompt         tok/s = 64 / time
//                               (the prompt itself runs with the timer paused)
//   gguf/<file stem>/pp128      one 128-token prompt from an empty cache      tok/s = 128 / time
//   gguf/<file stem>/tg64       64 single-token steps from an empty cache       tok/s = 64 / time
//                               (positions 0..63, each step's argmax fed back)
// The gguf rows mirror llama-bench's pp128 and tg64 (bench/llama_cpp_compare.py runs both programs
// on the same file and thread count); they use the public API only: model::load with default
// LoadOptions except transformer.threads, then Transformer::reset / forward.
//
//   optiq_bench_model [--gguf PATH]... [--threads N] [benchmark flags]
//
// Models: stories260K (llama2.c; OPTIQ_BENCH_STORIES or the shared models folder) and
// SmolLM2-135M-Instruct (${OPTIQ_CACHE:-~/.cache/optiq}/SmolLM2-135M-Instruct.Q4_1.gguf; its Q4_1
// weights are dequantized to f32 at load, that f32 model is the baseline and the source of the
// affine weights). A missing model's rows are skipped with a message. At the end the reporter
// prints every quantized row's tok/s relative to the f32 row of the same model and phase, same run.
// Matmul kernels: the best this CPU runs (backend/simd/matmul*.hpp), named on stderr and in the
// benchmark context; OPTIQ_SIMD_MAX=scalar|avx2 in the environment measures a narrower one.
#include <benchmark/benchmark.h>

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
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

/// The flags this program adds to Google Benchmark's (which rejects any it does not know).
struct CliOptions {
    std::vector<fs::path> ggufs;    ///< --gguf PATH, repeatable: one pp128 and one tg64 row each
    std::size_t threads = kThreads; ///< --threads N: matmul threads of every row
};

/// Takes --gguf PATH / --gguf=PATH and --threads N / --threads=N out of argv; throws
/// std::invalid_argument on a missing or bad value.
CliOptions take_custom_flags(int& argc, char** argv) {
    CliOptions o;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        std::string_view value;
        bool matched = false;
        for (const std::string_view flag : {std::string_view("--gguf"), std::string_view("--threads")}) {
            if (arg == flag) {
                if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + " needs a value");
                value = argv[++i];
            } else if (arg.size() > flag.size() && arg.substr(0, flag.size()) == flag && arg[flag.size()] == '=') {
                value = arg.substr(flag.size() + 1);
            } else {
                continue;
            }
            matched = true;
            if (flag == "--gguf") {
                if (value.empty()) throw std::invalid_argument("--gguf needs a path");
                o.ggufs.emplace_back(std::string(value));
            } else {
                std::size_t n = 0;
                const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
                if (ec != std::errc{} || end != value.data() + value.size() || n == 0)
                    throw std::invalid_argument("--threads needs a positive integer, got '" + std::string(value) + "'");
                o.threads = n;
            }
            break;
        }
        if (!matched) argv[out++] = argv[i];
    }
    argc = out;
    argv[argc] = nullptr;
    return o;
}

/// bits 0: f32 as loaded; 4 / 8: every linear with in % 64 == 0 replaced by its mx.quantize.
std::unique_ptr<Transformer> load_model(const fs::path& path, int bits, std::size_t threads) {
    optiq::model::LoadOptions opts;
    opts.transformer.threads = threads;
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

/// One loaded model per (path, bits), built on first use (outside the timed region); every row of
/// one process uses the same thread count.
Transformer& model_for(const fs::path& path, int bits, std::size_t threads) {
    static std::map<std::pair<std::string, int>, std::unique_ptr<Transformer>> cache;
    auto& slot = cache[{path.string(), bits}];
    if (!slot) slot = load_model(path, bits, threads);
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

void BM_prefill(benchmark::State& state, fs::path path, int bits, std::size_t threads) {
    Transformer& m = model_for(path, bits, threads);
    const auto prompt = prompt_tokens(m.config().vocab_size);
    for (auto _ : state) {
        m.reset();
        auto logits = m.forward(prompt, 0);
        benchmark::DoNotOptimize(logits.data());
    }
    state.counters["tok/s"] = benchmark::Counter(static_cast<double>(kPrompt), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_decode(benchmark::State& state, fs::path path, int bits, std::size_t threads) {
    Transformer& m = model_for(path, bits, threads);
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

/// The GGUF as model::load reads it by default, or nullptr after SkipWithError (a file the loader
/// rejects fails its rows, not the process).
Transformer* gguf_model(benchmark::State& state, const fs::path& path, std::size_t threads) {
    try {
        return &model_for(path, 0, threads);
    } catch (const std::exception& e) {
        std::string msg = e.what();  // optiq's errors name the file already
        if (msg.find(path.string()) == std::string::npos) msg = path.string() + ": " + msg;
        state.SkipWithError(msg.c_str());
        return nullptr;
    }
}

/// True the first time per (row, path): Google Benchmark calls a row's function once per iteration
/// estimate and per repetition, and an untimed warm-up (first touch of the weights and buffers) is
/// needed only once, before the first of them, whose single iteration may already be the result.
bool first_call(const std::string& row, const fs::path& path) {
    static std::set<std::pair<std::string, std::string>> seen;
    return seen.insert({row, path.string()}).second;
}

/// llama-bench's pp128: one 128-token prompt from an empty cache, last position's logits.
void BM_gguf_pp(benchmark::State& state, fs::path path, std::size_t threads) {
    Transformer* m = gguf_model(state, path, threads);
    if (!m) return;
    const auto prompt = prompt_tokens(m->config().vocab_size);
    if (first_call("pp", path)) {
        m->reset();
        benchmark::DoNotOptimize(m->forward(prompt, 0).data());
    }
    for (auto _ : state) {
        m->reset();
        auto logits = m->forward(prompt, 0);
        benchmark::DoNotOptimize(logits.data());
    }
    state.counters["tok/s"] =
        benchmark::Counter(static_cast<double>(kPrompt), benchmark::Counter::kIsIterationInvariantRate);
}

/// llama-bench's tg64: 64 single-token steps at positions 0..63 of an empty cache.
void BM_gguf_tg(benchmark::State& state, fs::path path, std::size_t threads) {
    Transformer* m = gguf_model(state, path, threads);
    if (!m) return;
    const auto first = prompt_tokens(m->config().vocab_size).front();
    const auto run = [&] {
        auto tok = first;
        for (std::size_t i = 0; i < kDecode; ++i) {
            const optiq::model::TokenId one[1] = {tok};
            tok = argmax(m->forward(one, i));
        }
        return tok;
    };
    if (first_call("tg", path)) {
        m->reset();
        benchmark::DoNotOptimize(run());
    }
    for (auto _ : state) {
        state.PauseTiming();
        m->reset();
        state.ResumeTiming();
        benchmark::DoNotOptimize(run());
    }
    state.counters["tok/s"] =
        benchmark::Counter(static_cast<double>(kDecode), benchmark::Counter::kIsIterationInvariantRate);
}

/// Reports as Base does, counting the runs that ended in SkipWithError (a GGUF the loader rejects).
template <class Base>
class ErrorCounting : public Base {
public:
    using Base::Base;
    void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
        Base::ReportRuns(runs);
        for (const auto& r : runs) errors_ += r.error_occurred ? 1 : 0;
    }
    [[nodiscard]] std::size_t errors() const noexcept { return errors_; }

private:
    std::size_t errors_ = 0;
};

/// The console table, then each quantized row's tok/s over its f32 row's.
class RatioReporter : public ErrorCounting<benchmark::ConsoleReporter> {
public:
    RatioReporter() : ErrorCounting(OO_Tabular) {}  // no colour codes: the output goes to logs
    void ReportRuns(const std::vector<Run>& runs) override {
        ErrorCounting::ReportRuns(runs);
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

/// --benchmark_format as Google Benchmark will read it (its environment default, then the last flag):
/// a display reporter passed to RunSpecifiedBenchmarks replaces the one that flag would choose.
std::string display_format(int argc, char** argv) {
    std::string format = "console";
    if (const char* e = std::getenv("BENCHMARK_FORMAT"); e && *e) format = e;
    constexpr std::string_view flag = "--benchmark_format=";
    for (int i = 1; i < argc; ++i)
        if (const std::string_view a = argv[i]; a.substr(0, flag.size()) == flag) format = a.substr(flag.size());
    return format;
}

/// Runs the selected rows; fails when none ran (a smoke run whose models are missing must not pass
/// silently) or when one ended in an error.
template <class Reporter>
int run_all(Reporter& reporter) {
    const std::size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    if (ran == 0) {
        std::fprintf(stderr, "optiq_bench_model: no benchmark ran (models missing, or the filter matches no row)\n");
        return 1;
    }
    if (reporter.errors() != 0) {
        std::fprintf(stderr, "optiq_bench_model: %zu run(s) failed\n", reporter.errors());
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CliOptions cli;
    try {
        cli = take_custom_flags(argc, argv);
    } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "optiq_bench_model: %s\nusage: %s [--gguf PATH]... [--threads N] [benchmark flags]\n",
                     e.what(), argv[0]);
        return 2;
    }
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
            benchmark::RegisterBenchmark((base + "/prefill").c_str(), BM_prefill, spec.path, bits, cli.threads)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
            benchmark::RegisterBenchmark((base + "/decode").c_str(), BM_decode, spec.path, bits, cli.threads)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
        }
    }
    std::set<std::string> stems;
    for (const auto& path : cli.ggufs) {
        std::error_code ec;
        if (!fs::is_regular_file(path, ec)) {
            std::fprintf(stderr, "optiq_bench_model: --gguf %s: no such file\n", path.string().c_str());
            return 2;
        }
        const std::string stem = path.stem().string();
        if (!stems.insert(stem).second) {
            std::fprintf(stderr, "optiq_bench_model: --gguf %s: a file named '%s' is already benchmarked\n",
                         path.string().c_str(), stem.c_str());
            return 2;
        }
        const std::string base = "gguf/" + stem + "/";
        benchmark::RegisterBenchmark((base + "pp" + std::to_string(kPrompt)).c_str(), BM_gguf_pp, path, cli.threads)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
        benchmark::RegisterBenchmark((base + "tg" + std::to_string(kDecode)).c_str(), BM_gguf_tg, path, cli.threads)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
    const std::string kernels(optiq::backend::arch::arch_name(optiq::backend::arch::best_arch()));
    std::fprintf(stderr, "optiq_bench_model: matmul kernels: %s\n", kernels.c_str());
    benchmark::AddCustomContext("optiq_matmul_arch", kernels);
    benchmark::AddCustomContext("optiq_threads", std::to_string(cli.threads));
    const std::string format = display_format(argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (format == "json") {
        ErrorCounting<benchmark::JSONReporter> reporter;
        return run_all(reporter);
    }
    // csv: Google Benchmark's CSVReporter is deprecated (--benchmark_out_format=csv still writes it).
    if (format != "console") {
        std::fprintf(stderr, "optiq_bench_model: --benchmark_format '%s' not supported here (console, json)\n",
                     format.c_str());
        return 1;
    }
    RatioReporter reporter;
    return run_all(reporter);
}

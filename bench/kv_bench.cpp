// Decode attention per generated token through KVCache (8 KV heads, GQA 4: 32 query heads), at
// contexts 1k..32k and d = 64, 128, for f32, f16, MLX affine 4/8 and TurboQuant-MSE 2/3/4, and at
// 32k for TurboQuant-Prod 4, KIVI 4 and QJL; one thread (the best SIMD kernels of this CPU), and
// decode_pool2/ rows with the KV heads on a 2-thread pool.
// Counters: bytes_per_token (the cache's in-memory bytes of one token, all KV heads, memory_bytes()),
// vs_f16 (that over the f16 cache's), floor_us (the bytes one decode step must read — the whole
// cache — over this machine's streaming-read bandwidth, measured at start-up by the same kind of
// loop as BM_StreamRead; for decode_pool2/ rows, read by two threads at once), x_floor (time / floor_us).
// "+int8" rows: TurboQuant-MSE 4-bit with int8 attention arithmetic (backend/simd/kv_int8.hpp).
//   optiq_bench_kv [--benchmark_filter=tq_mse:4/128/32768]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "optiq/core/rng.hpp"
#include "optiq/core/threads.hpp"
#include "optiq/kv/evaluate.hpp"

namespace {

constexpr std::size_t kv_heads = 8, q_heads = 32;

/// Sum of a buffer far larger than the caches, 4 independent sums (bandwidth, not latency, bound).
float stream_sum(const float* a, std::size_t size) {
    float s[8] = {};
    const std::size_t n = size / 8 * 8;
    for (std::size_t i = 0; i < n; i += 8)
        for (std::size_t k = 0; k < 8; ++k) s[k] += a[i + k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

std::vector<float>& stream_buffer() {
    static std::vector<float> a(std::size_t{1} << 27, 1.0f);  // 512 MiB
    return a;
}

/// Best-of-5 streaming-read bandwidth in bytes/s, with `threads` threads each reading its slice.
double measure_bandwidth(std::size_t threads) {
    auto& a = stream_buffer();
    const std::size_t slice = a.size() / threads;
    double best = 0.0;
    for (int r = 0; r < 5; ++r) {
        std::vector<float> sums(threads);
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (std::size_t t = 1; t < threads; ++t)
            pool.emplace_back([&, t] { sums[t] = stream_sum(a.data() + t * slice, slice); });
        sums[0] = stream_sum(a.data(), slice);
        for (auto& th : pool) th.join();
        benchmark::DoNotOptimize(sums.data());
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
        best = std::max(best, static_cast<double>(threads * slice * sizeof(float)) / dt.count());
    }
    return best;
}

double g_bandwidth = 0.0;   ///< one thread
double g_bandwidth2 = 0.0;  ///< two threads (the floor of the decode_pool2 rows)

void BM_StreamRead(benchmark::State& state) {
    auto& a = stream_buffer();
    for (auto _ : state) {
        float s = stream_sum(a.data(), a.size());
        benchmark::DoNotOptimize(s);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(a.size() * 4));
}

/// One filled cache at a time (filling 32k tokens is the expensive part), type-erased.
struct Filled {
    std::string key;
    std::function<void(std::span<const float>, std::span<float>, optiq::ThreadPool*)> attend;
    double token_bytes = 0;
};

Filled& filled(const optiq::kv::KVMethod& m, std::size_t d, std::size_t context) {
    static std::unique_ptr<Filled> cur;
    const std::string key = m.label() + "/" + std::to_string(d) + "/" + std::to_string(context);
    if (cur && cur->key == key) return *cur;
    cur.reset();  // free the previous cache first
    auto f = std::make_unique<Filled>();
    f->key = key;
    optiq::kv::with_kv_codecs(m, d, 42, [&](const auto& kc, const auto& vc) {
        using P = optiq::kv::Policy<std::decay_t<decltype(kc)>, std::decay_t<decltype(vc)>>;
        using C = optiq::kv::KVCache<P, optiq::kv::ContiguousLayout>;
        // Block key codecs (KIVI) keep one block in the full-precision window.
        const std::size_t recent = optiq::kv::key_block_tokens(kc) > 1 ? optiq::kv::key_block_tokens(kc) : 0;
        auto cache = std::make_shared<C>(P(kc, vc, recent), optiq::kv::AttentionShape{q_heads, kv_heads, d, 0.0f});
        optiq::Rng rng(7);
        const std::size_t chunk = 1024;
        std::vector<float> k(chunk * kv_heads * d), v(k.size());
        for (std::size_t t0 = 0; t0 < context; t0 += chunk) {
            const std::size_t n = std::min(chunk, context - t0);
            for (auto& x : k) x = static_cast<float>(rng.normal());
            for (auto& x : v) x = static_cast<float>(rng.normal());
            cache->append(std::span<const float>(k).subspan(0, n * kv_heads * d),
                          std::span<const float>(v).subspan(0, n * kv_heads * d));
        }
        f->token_bytes = static_cast<double>(cache->memory_bytes()) / static_cast<double>(context);
        f->attend = [cache](std::span<const float> q, std::span<float> out, optiq::ThreadPool* pool) {
            cache->attend(q, out, pool);
        };
        return 0;
    });
    cur = std::move(f);
    return *cur;
}

void BM_Decode(benchmark::State& state, const std::string& method, optiq::ThreadPool* pool) {
    const auto d = static_cast<std::size_t>(state.range(0)), context = static_cast<std::size_t>(state.range(1));
    const auto m = optiq::kv::parse_kv_method(method);
    Filled& f = filled(m, d, context);
    std::vector<float> q(q_heads * d), out(q_heads * d);
    optiq::Rng rng(9);
    for (auto& x : q) x = static_cast<float>(rng.normal());
    f.attend(q, out, pool);  // warm-up
    double seconds = 0.0;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        f.attend(q, out, pool);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    const double f16_bytes = static_cast<double>(kv_heads) * 2.0 * 2.0 * static_cast<double>(d);
    const double bytes = f.token_bytes * static_cast<double>(context);
    state.counters["bytes_per_token"] = f.token_bytes;
    state.counters["vs_f16"] = f.token_bytes / f16_bytes;
    const double bw = pool != nullptr ? g_bandwidth2 : g_bandwidth;
    state.counters["floor_us"] = bytes / bw * 1e6;
    state.counters["x_floor"] = seconds / static_cast<double>(state.iterations()) / (bytes / bw);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

}  // namespace

int main(int argc, char** argv) {
    g_bandwidth = measure_bandwidth(1);
    g_bandwidth2 = measure_bandwidth(2);
    std::printf("streaming-read bandwidth: %.2f GB/s on one thread, %.2f GB/s on two (best of 5 reads of 512 MiB)\n",
                g_bandwidth / 1e9, g_bandwidth2 / 1e9);
    benchmark::RegisterBenchmark("BM_StreamRead", BM_StreamRead)->Unit(benchmark::kMillisecond);
    static optiq::ThreadPool pool(2);
    for (const char* m : {"f32", "f16", "affine:4", "affine:8", "tq_mse:2", "tq_mse:3", "tq_mse:4", "tq_mse:4+int8"})
        for (long d : {64L, 128L})
            for (long ctx : {1024L, 4096L, 16384L, 32768L})
                benchmark::RegisterBenchmark((std::string("decode/") + m).c_str(),
                                             [m](benchmark::State& s) { BM_Decode(s, m, nullptr); })
                    ->Args({d, ctx})
                    ->Unit(benchmark::kMicrosecond);
    for (const char* m : {"tq_prod:4", "kivi:4", "qjl"})
        for (long ctx : {1024L, 32768L})
            benchmark::RegisterBenchmark((std::string("decode/") + m).c_str(),
                                         [m](benchmark::State& s) { BM_Decode(s, m, nullptr); })
                ->Args({128, ctx})
                ->Unit(benchmark::kMicrosecond);
    for (const char* m : {"f16", "affine:4", "tq_mse:4", "tq_mse:4+int8"})
        benchmark::RegisterBenchmark((std::string("decode_pool2/") + m).c_str(),
                                     [m](benchmark::State& s) { BM_Decode(s, m, &pool); })
            ->Args({128, 32768})
            ->Unit(benchmark::kMicrosecond);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

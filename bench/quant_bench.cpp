// Encode / decode / inner-product throughput of every quantization method at d = 64, 128, 256,
// with FAISS's ScalarQuantizer (4-bit and 8-bit, trained per dimension) on the same vectors as
// the baseline measured in the same run. Each row also reports the MSE of unit vectors and the
// bits per coordinate actually stored; the summary prints throughput as a ratio to FAISS SQ at
// the nearest bit width.
//   optiq_bench_quant [--benchmark_filter=...]
#include <optiq/quant/evaluate.hpp>
#include <optiq/quant/factory.hpp>

#include <benchmark/benchmark.h>

#ifdef OPTIQ_BENCH_HAVE_FAISS
#include <faiss/impl/ScalarQuantizer.h>
#include <omp.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kVectors = 4096;

const std::vector<float>& unit_vectors(std::size_t d) {
    static std::map<std::size_t, std::vector<float>> cache;
    auto& v = cache[d];
    if (v.empty()) v = optiq::random_unit_vectors(kVectors, d, 42);
    return v;
}

double mse_of(const std::vector<float>& x, const std::vector<float>& y) {
    double s = 0;
    for (std::size_t i = 0; i < x.size(); ++i) s += (x[i] - y[i]) * (x[i] - y[i]);
    return s / static_cast<double>(kVectors);
}

enum class Op { encode, decode, inner_product };

void bench_optiq(benchmark::State& state, std::string spec, Op op) {
    const auto d = static_cast<std::size_t>(state.range(0));
    const auto& x = unit_vectors(d);
    const auto q = optiq::make_quantizer(spec, d, 7);
    auto enc = q.encode(x);
    std::vector<float> y(x.size()), ip(kVectors);
    const std::vector<float> query(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(d));
    for (auto _ : state) {
        switch (op) {
            case Op::encode: enc = q.encode(x); break;
            case Op::decode: q.decode(enc, y); break;
            case Op::inner_product: q.inner_products(query, enc, ip); break;
        }
        benchmark::ClobberMemory();
    }
    q.decode(enc, y);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kVectors));
    state.counters["mse"] = mse_of(x, y);
    state.counters["bits_per_coord"] = enc.bits_per_coord();
}

#ifdef OPTIQ_BENCH_HAVE_FAISS
void bench_faiss(benchmark::State& state, faiss::ScalarQuantizer::QuantizerType qt, Op op) {
    const auto d = static_cast<std::size_t>(state.range(0));
    const auto& x = unit_vectors(d);
    faiss::ScalarQuantizer sq(d, qt);
    sq.train(kVectors, x.data());
    std::vector<std::uint8_t> codes(kVectors * sq.code_size);
    sq.compute_codes(x.data(), codes.data(), kVectors);
    std::vector<float> y(x.size()), ip(kVectors);
    std::unique_ptr<faiss::ScalarQuantizer::SQDistanceComputer> dc(sq.get_distance_computer(faiss::METRIC_INNER_PRODUCT));
    dc->code_size = sq.code_size;
    dc->codes = codes.data();
    for (auto _ : state) {
        switch (op) {
            case Op::encode: sq.compute_codes(x.data(), codes.data(), kVectors); break;
            case Op::decode: sq.decode(codes.data(), y.data(), kVectors); break;
            case Op::inner_product:
                dc->set_query(x.data());
                for (std::size_t i = 0; i < kVectors; ++i) ip[i] = dc->query_to_code(codes.data() + i * sq.code_size);
                break;
        }
        benchmark::ClobberMemory();
    }
    sq.decode(codes.data(), y.data(), kVectors);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kVectors));
    state.counters["mse"] = mse_of(x, y);
    state.counters["bits_per_coord"] = static_cast<double>(sq.code_size * 8) / static_cast<double>(d);
}
#endif

/// Collects items/s of every run and prints each optiq row's throughput relative to FAISS SQ
/// (4-bit for optiq rows at <= 4 bits, 8-bit above) for the same operation and dimension.
class RatioReporter : public benchmark::ConsoleReporter {
public:
    RatioReporter() : ConsoleReporter(OO_Tabular) {}  // no colour codes: the output goes to logs
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            const auto it = r.counters.find("items_per_second");
            if (it != r.counters.end()) rate_[r.benchmark_name()] = it->second.value;
        }
    }
    void Finalize() override {
        ConsoleReporter::Finalize();
        std::printf("\nthroughput relative to FAISS ScalarQuantizer (same op, same d, same run):\n");
        for (const auto& [name, rate] : rate_) {
            if (name.rfind("optiq/", 0) != 0) continue;
            // name: optiq/<op>/<spec>/<d>
            const auto p1 = name.find('/', 6), p3 = name.rfind('/');
            const std::string op = name.substr(6, p1 - 6), spec = name.substr(p1 + 1, p3 - p1 - 1), d = name.substr(p3 + 1);
            const auto colon = spec.find(':');
            const int bits = colon == std::string::npos ? 4 : std::atoi(spec.c_str() + colon + 1);
            const std::string base = "faiss/" + op + "/" + (bits <= 4 ? "SQ4" : "SQ8") + "/" + d;
            const auto b = rate_.find(base);
            if (b == rate_.end()) continue;
            std::printf("  %-40s %8.2fx vs %s\n", name.c_str(), rate / b->second, base.c_str());
        }
    }

private:
    std::map<std::string, double> rate_;
};

}  // namespace

int main(int argc, char** argv) {
#ifdef OPTIQ_BENCH_HAVE_FAISS
    omp_set_num_threads(1);  // optiq's methods are single-threaded here: compare like with like
#endif
    const std::vector<std::string> specs{"tq_mse:2", "tq_mse:4", "tq_mse:4:haar", "tq_prod:4", "rvq:2",
                                         "qjl:1", "polar:4", "kivi:4", "affine:4:g64", "affine:8:g64"};
    const std::pair<const char*, Op> ops[] = {{"encode", Op::encode}, {"decode", Op::decode}, {"ip", Op::inner_product}};
    for (const auto& [opname, op] : ops) {
        for (const auto& spec : specs) {
            benchmark::RegisterBenchmark((std::string("optiq/") + opname + "/" + spec).c_str(), bench_optiq, spec, op)
                ->Arg(64)->Arg(128)->Arg(256);
        }
#ifdef OPTIQ_BENCH_HAVE_FAISS
        benchmark::RegisterBenchmark((std::string("faiss/") + opname + "/SQ4").c_str(), bench_faiss,
                                     faiss::ScalarQuantizer::QT_4bit, op)->Arg(64)->Arg(128)->Arg(256);
        benchmark::RegisterBenchmark((std::string("faiss/") + opname + "/SQ8").c_str(), bench_faiss,
                                     faiss::ScalarQuantizer::QT_8bit, op)->Arg(64)->Arg(128)->Arg(256);
#endif
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}

// optiq-kv-cache: per-layer KV-cache sensitivity and a mixed-precision kv_config.json
// (mlx-optiq's `optiq kv-cache`, reference-spec C "KV allocation").
//   optiq-kv-cache SmolLM2-135M-Instruct.Q4_1.gguf --target-bits 5 --candidate-bits 4,8 -o kv/
//   optiq-kv-cache stories260K.bin --tokenizer tok512.bin --method tq_mse --group-size 8 -o kv/
// For each attention layer and each candidate width, only that layer's cache is quantized and the
// KL of the next-token distribution against the f32-cache model is measured on calibration text;
// a solver then spends the mean-bits budget (greedy = mlx-optiq's dKL/dbits rule, the target a
// floor; exact and ratequant keep the mean at or below it). Writes, each by temp name + rename:
//   DIR/kv_config.json       [{"layer_idx", "bits", "group_size"(, "method", "k_bits", "v_bits")}, ...]
//   DIR/kv_sensitivity.json  {"<layer>": {"<bits>": KL}}  ("<layer>.keys" / ".values" with --separate-kv)
//   DIR/kv_sensitivity.svg   KL per layer and candidate (log scale), chosen bits below
//   DIR/kv_cost_table.json   the measured table, reused while model and settings are unchanged
// --separate-kv measures and allocates keys and values of each layer as two units, so keys (with
// their outlier channels) may get more bits than values at the same mean.
// Calibration defaults to tinyshakespeare.txt from ../shared/data: the only WikiText here is the
// test split, which evaluation uses.
#include <optiq/alloc/allocator.hpp>
#include <optiq/alloc/sensitivity/kv_kl.hpp>
#include <optiq/alloc/solver/exact.hpp>
#include <optiq/alloc/solver/greedy.hpp>
#include <optiq/alloc/solver/waterfill.hpp>
#include <optiq/kv/kv_config.hpp>
#include <optiq/model/loader.hpp>
#include <optiq/tokenizer/any_tokenizer.hpp>

#include <CLI/CLI.hpp>

#include "../common/engine_flags.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#ifndef OPTIQ_DEFAULT_CALIBRATION
#define OPTIQ_DEFAULT_CALIBRATION ""
#endif

namespace fs = std::filesystem;
using optiq::model::TokenId;

namespace {

std::string read_text(const fs::path& p, const char* what) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw optiq::format_error("optiq-kv-cache: " + std::string(what) + " " + p.string() + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Written to PATH.tmp, then renamed: a reader never sees half a file.
void write_atomically(const fs::path& path, const std::string& text) {
    fs::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw optiq::format_error("optiq-kv-cache: " + tmp.string() + ": cannot create");
        out << text;
        if (!out) throw optiq::format_error("optiq-kv-cache: " + tmp.string() + ": write failed");
    }
    fs::rename(tmp, path);
}

/// File name and byte size: enough to tell models apart without hashing gigabytes.
std::string model_identity(const fs::path& p) {
    std::uintmax_t bytes = 0;
    if (fs::is_directory(p)) {
        for (const auto& e : fs::directory_iterator(p))
            if (e.is_regular_file() && (e.path().extension() == ".safetensors" || e.path().filename() == "config.json"))
                bytes += e.file_size();
    } else {
        bytes = fs::file_size(p);
    }
    return fs::absolute(p).lexically_normal().filename().string() + ":" + std::to_string(bytes);
}

std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return b;
}

/// Grouped bars of KL per layer (one bar per candidate width, log scale), chosen bits under each group.
std::string svg_chart(const optiq::alloc::CostTable& t, const std::vector<int>& chosen, const std::string& title) {
    const auto& bits = t.candidate_bits();
    double lo = HUGE_VAL, hi = 0;
    for (std::size_t i = 0; i < t.size(); ++i)
        for (double c : t.costs(i))
            if (c > 0) lo = std::min(lo, c), hi = std::max(hi, c);
    if (!(hi > 0)) lo = 1e-6, hi = 1;
    const double y0 = std::floor(std::log10(lo)), y1 = std::max(y0 + 1, std::ceil(std::log10(hi)));
    const double group = 8.0 * static_cast<double>(bits.size()) + 6, left = 60, top = 30, h = 260;
    const double width = left + group * static_cast<double>(t.size()) + 120, height = top + h + 50;
    const char* colors[] = {"#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b"};
    const auto y_of = [&](double v) { return top + h * (y1 - std::log10(v)) / (y1 - y0); };
    std::ostringstream s;
    s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"10\">\n"
      << "<text x=\"" << left << "\" y=\"16\" font-size=\"13\">" << title << "</text>\n";
    for (double e = y0; e <= y1; e += 1) {
        s << "<line x1=\"" << left << "\" x2=\"" << left + group * static_cast<double>(t.size()) << "\" y1=\"" << y_of(std::pow(10, e))
          << "\" y2=\"" << y_of(std::pow(10, e)) << "\" stroke=\"#ddd\"/>"
          << "<text x=\"" << left - 4 << "\" y=\"" << y_of(std::pow(10, e)) + 3 << "\" text-anchor=\"end\">1e" << e
          << "</text>\n";
    }
    for (std::size_t i = 0; i < t.size(); ++i) {
        const double x = left + group * static_cast<double>(i) + 3;
        for (std::size_t c = 0; c < bits.size(); ++c) {
            const double v = t.cost(i, c);
            if (!(v > 0)) continue;
            const double y = y_of(std::max(v, std::pow(10, y0)));
            s << "<rect x=\"" << x + 8.0 * static_cast<double>(c) << "\" y=\"" << y << "\" width=\"7\" height=\""
              << top + h - y << "\" fill=\"" << colors[c % 6] << "\"><title>layer " << i << ", " << bits[c]
              << " bits: KL " << fmt(v) << "</title></rect>\n";
        }
        s << "<text x=\"" << x + 4.0 * static_cast<double>(bits.size()) << "\" y=\"" << top + h + 14
          << "\" text-anchor=\"middle\">" << i << "</text><text x=\"" << x + 4.0 * static_cast<double>(bits.size())
          << "\" y=\"" << top + h + 28 << "\" text-anchor=\"middle\" fill=\"#555\">" << chosen[i] << "</text>\n";
    }
    s << "<text x=\"" << left - 4 << "\" y=\"" << top + h + 14 << "\" text-anchor=\"end\">layer</text>"
      << "<text x=\"" << left - 4 << "\" y=\"" << top + h + 28 << "\" text-anchor=\"end\">bits</text>\n";
    for (std::size_t c = 0; c < bits.size(); ++c) {
        const double lx = left + group * static_cast<double>(t.size()) + 15, ly = top + 14.0 * static_cast<double>(c);
        s << "<rect x=\"" << lx << "\" y=\"" << ly << "\" width=\"10\" height=\"10\" fill=\"" << colors[c % 6]
          << "\"/><text x=\"" << lx + 14 << "\" y=\"" << ly + 9 << "\">KL at " << bits[c] << " bits</text>\n";
    }
    s << "</svg>\n";
    return s.str();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"optiq-kv-cache: per-layer KV-cache sensitivity (KL) and a mixed-precision kv_config.json"};
    std::string model_path, tokenizer_path, method = "affine", calibration = OPTIQ_DEFAULT_CALIBRATION, solver = "greedy",
                                            positions = "last", out_dir, candidates = "4,8";
    double target_bits = 5.0;
    std::size_t group_size = 64, n_calibration = 5, seq_len = 512, threads = 2;
    bool no_cache = false, quiet = false, separate_kv = false;
    app.add_option("model", model_path, "model directory, .gguf or llama2.c .bin")->required();
    app.add_option("--tokenizer", tokenizer_path, "tokenizer.json, llama2.c tokenizer.bin or a .gguf");
    app.add_option("--target-bits", target_bits, "mean bits per layer (greedy: a floor; exact/ratequant: a ceiling)");
    app.add_option("--candidate-bits", candidates, "comma-separated widths: 1..8, 16 = f16, 32 = f32");
    app.add_option("--method", method, "affine | tq_mse | tq_prod | rvq | polar | qjl | kivi");
    app.add_option("--group-size", group_size, "affine / kivi group size")->check(CLI::Range(1, 1 << 20));
    app.add_option("--calibration", calibration, "calibration text file (never the evaluation text)");
    app.add_option("--n-calibration", n_calibration, "calibration windows")->check(CLI::Range(1, 100000));
    app.add_option("--seq-len", seq_len, "tokens per window")->check(CLI::Range(2, 1 << 20));
    app.add_option("--kl-positions", positions, "last (mlx-optiq) | all: where the next-token KL is taken");
    app.add_option("--solver", solver, "greedy | exact | ratequant");
    app.add_option("--threads", threads, "matmul threads")->check(CLI::Range(1, 256));
    optiq_drivers::EngineFlags engine_flags;
    engine_flags.add(app);
    app.add_flag("--separate-kv", separate_kv, "keys and values as separate units (writes k_bits / v_bits)");
    app.add_flag("--no-cache", no_cache, "measure even when DIR/kv_cost_table.json matches");
    app.add_flag("-q,--quiet", quiet, "no progress bar");
    app.add_option("-o,--output", out_dir, "output directory")->required();
    CLI11_PARSE(app, argc, argv);

    try {
        using clock = std::chrono::steady_clock;
        namespace al = optiq::alloc;
        std::vector<int> bits;
        {
            std::stringstream ss(candidates);
            for (std::string x; std::getline(ss, x, ',');) {
                std::size_t used = 0;
                int b = 0;
                try {
                    b = std::stoi(x, &used);
                } catch (const std::exception&) {
                    used = 0;
                }
                if (used == 0 || used != x.size())
                    throw optiq::config_error("optiq-kv-cache: --candidate-bits: '" + x + "' is not an integer");
                bits.push_back(b);
            }
            std::sort(bits.begin(), bits.end());
            bits.erase(std::unique(bits.begin(), bits.end()), bits.end());
            if (bits.empty()) throw optiq::config_error("optiq-kv-cache: --candidate-bits is empty");
        }
        if (!(target_bits >= bits.front() && target_bits <= bits.back()))
            throw optiq::config_error("optiq-kv-cache: --target-bits " + fmt(target_bits) + " is outside the candidates " +
                                      std::to_string(bits.front()) + ".." + std::to_string(bits.back()));
        al::KVKLSensitivity::Options so;
        so.method = method;
        so.group_size = group_size;
        so.progress = !quiet;
        so.separate_kv = separate_kv;
        if (positions == "last") so.positions = al::KLPositions::last;
        else if (positions == "all") so.positions = al::KLPositions::all;
        else throw optiq::config_error("optiq-kv-cache: --kl-positions '" + positions + "' (want last or all)");
        if (solver != "greedy" && solver != "exact" && solver != "ratequant")
            throw optiq::config_error("optiq-kv-cache: --solver '" + solver + "' (want greedy, exact or ratequant)");
        if (calibration.empty())
            throw optiq::config_error("optiq-kv-cache: no --calibration file given and no default was built in");

        const auto t0 = clock::now();
        optiq::model::LoadOptions lo;
        lo.transformer.threads = threads;
        engine_flags.apply(lo);
        auto m = optiq::model::load(model_path, lo);
        const auto tok = optiq::tokenizer::load_tokenizer(model_path, tokenizer_path);
        if (tok.empty())
            throw optiq::config_error("optiq-kv-cache: " + model_path + ": no tokenizer found (give --tokenizer)");
        const auto& cfg = m.config();
        std::optional<TokenId> bos;
        if (tok.adds_bos() && cfg.bos_token_id >= 0) bos = cfg.bos_token_id;
        const auto ids = tok.encode(read_text(calibration, "calibration file"), false);
        auto windows = al::kv_calibration_windows(ids, n_calibration, seq_len, bos);
        std::fprintf(stderr, "loaded %s (%zu layers, %zu KV heads of %zu) in %.1f s; calibration %s: %zu tokens, %zu x %zu\n",
                     model_path.c_str(), cfg.n_layers, cfg.n_kv_heads, cfg.head_dim,
                     std::chrono::duration<double>(clock::now() - t0).count(), calibration.c_str(), ids.size(),
                     n_calibration, seq_len);

        fs::create_directories(out_dir);
        const fs::path dir(out_dir);
        al::KVKLSensitivity sens(m, model_identity(model_path), std::move(windows), so);
        const auto t1 = clock::now();
        const auto run = [&](auto solver_policy) {
            typename al::Allocator<al::KVKLSensitivity, decltype(solver_policy)>::Options ao;
            ao.candidate_bits = bits;
            if (!no_cache) ao.cache_path = dir / "kv_cost_table.json";
            al::Allocator<al::KVKLSensitivity, decltype(solver_policy)> a(sens, solver_policy, ao);
            const al::CostTable& table = a.table();
            std::fprintf(stderr, "%s in %.1f s\n", a.from_cache() ? "cost table from kv_cost_table.json" : "measured",
                         std::chrono::duration<double>(clock::now() - t1).count());
            return std::pair<al::CostTable, al::Allocation>(table, a.allocate(target_bits));
        };
        const auto [table, alloc] = solver == "greedy" ? run(al::GreedyKnapsack(al::kv_greedy_options()))
                                    : solver == "exact" ? run(al::ExactKnapsack())
                                                        : run(al::ReverseWaterFilling(method == "kivi"
                                                                                          ? al::kRateQuantBetaKivi
                                                                                          : al::kRateQuantBetaTurboQuant));

        const optiq::kv::KVConfig kvc = al::kv_config_from_allocation(table, alloc, method, group_size);
        write_atomically(dir / "kv_config.json", optiq::kv::to_json(kvc));
        write_atomically(dir / "kv_sensitivity.json", al::kv_sensitivity_json(table).dump(2) + "\n");
        const al::KVSpread spread = al::kv_sensitivity_spread(table, 0);
        write_atomically(dir / "kv_sensitivity.svg",
                         svg_chart(table, alloc.bits,
                                   "KV sensitivity: KL(f32 || one layer quantized), " + method + ", " +
                                       fs::path(model_path).filename().string()));

        std::printf("KV sensitivity of %s: method %s, group %zu, KL at %s of %zu x %zu tokens\n",
                    fs::path(model_path).filename().c_str(), method.c_str(), group_size,
                    positions == "last" ? "the last position" : "every position", n_calibration, seq_len);
        std::printf("%12s", "layer");
        for (int b : bits) std::printf(" %12s", ("KL@" + std::to_string(b)).c_str());
        std::printf(" %5s\n", "bits");
        for (std::size_t i = 0; i < table.size(); ++i) {
            const al::KVPart part = al::kv_unit_part(table.unit(i).name);
            std::printf("%5d%-7s", table.unit(i).block,
                        part == al::KVPart::keys ? " keys" : part == al::KVPart::values ? " values" : "");
            for (double c : table.costs(i)) std::printf(" %12.4e", c);
            std::printf(" %5d\n", alloc.bits[i]);
        }
        std::printf("spread at %d bits: max %.4e (%s) = %.1fx the median %.4e\n", bits.front(), spread.max,
                    table.unit(spread.max_unit).name.c_str(), spread.ratio, spread.median);
        std::printf("solver %s: mean %.3f bits per cached coordinate (target %s), summed KL %.4e\n", solver.c_str(), alloc.bpw,
                    fmt(target_bits).c_str(), alloc.cost);
        std::printf("wrote %s, kv_sensitivity.json, kv_sensitivity.svg\n", (dir / "kv_config.json").c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}

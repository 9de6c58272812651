#pragma once
// KLSensitivity: mlx-optiq's sensitivity (reference-spec C, "mlx-optiq weight knapsack"). For each
// quantizable unit (every Linear, lm_head included, and the embedding) and candidate bit-width,
// quantize ONLY that unit with MLX affine (group g, scales in `side`, the dtype the writer stores),
// run the calibration sequences and record the mean over all positions of
// KL(reference || perturbed) of the next-token distributions; the reference is the model as loaded.
//
// Cost. A unit in block l leaves layers 0..l-1 unchanged, so each sequence's residual stream is
// captured once (Transformer::layer_inputs) and a perturbed pass runs layers l.. only
// (logits_from_layer); lm_head runs the head alone. A tied embedding is also the head: quantizing
// it changes both the input rows and the logits (as mlx-lm's QuantizedEmbedding.as_linear does), so
// it reruns every layer. An untied embedding only changes the input rows.
//
// Predicted bits (KLOptions::all_bits = false, the default). KL is second order in the output
// perturbation (KL(p||p+dp) = 1/2 dp^T F dp + O(dp^3)), and a unit's output perturbation scales with
// its weight error, so for one unit KL(b) ~ KL(b_min) * SSE(b) / SSE(b_min), SSE = the squared weight
// error of the MLX quantization at b bits. Only the lowest candidate is measured; the others are
// predicted from the weight error, which costs no forward pass. tests/alloc/kl_test.cpp checks the
// prediction against measurement on stories260K. all_bits = true measures every candidate.
// Candidate 16 means "kept unquantized" and costs 0.
//
// Units whose input dimension is not divisible by g are skipped (mlx-lm's convert leaves them
// unquantized; mx.quantize refuses them) and listed in skipped().
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "optiq/alloc/table.hpp"
#include "optiq/core/error.hpp"
#include "optiq/core/progress.hpp"
#include "optiq/model/transformer.hpp"
#include "optiq/model/weights.hpp"
#include "optiq/quant/encoded.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace optiq::alloc {

struct KLOptions {
    std::size_t group_size = 64;
    /// dtype of the scales and biases (and of the weights before quantization), as the writer stores
    /// them: f16 for f32 / GGUF sources, the source dtype for f16 / bf16 ones.
    SideType side = SideType::f16;
    /// Measure every candidate instead of predicting the higher ones from the weight error.
    bool all_bits = false;
    bool progress = true;
    std::FILE* progress_out = stderr;
};

/// One measured unit and where its perturbation enters the forward pass.
struct KLUnitInfo {
    std::string name;
    std::size_t block = 0;      ///< first layer a perturbation reaches (n_layers: the head only)
    bool embedding = false;     ///< the input rows change (model.embed_tokens)
    std::uint64_t params = 0;
};

/// "path|size|mtime" of a file, or of config.json and every *.safetensors / *.gguf / *.bin file of a
/// directory: the model identity in cache keys (a changed or replaced file gives another key).
[[nodiscard]] inline std::string model_identity(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    auto one = [&](const fs::path& p) {
        const auto size = fs::file_size(p, ec);
        if (ec) optiq::detail::fail<format_error>(p.string(), ": cannot stat (", ec.message(), ")");
        const auto t = fs::last_write_time(p, ec);
        if (ec) optiq::detail::fail<format_error>(p.string(), ": cannot stat (", ec.message(), ")");
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
        return fs::weakly_canonical(p).string() + "|" + std::to_string(size) + "|" + std::to_string(ns);
    };
    if (!fs::is_directory(path)) return one(path);
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(path)) {
        const auto ext = e.path().extension();
        if (e.is_regular_file() &&
            (e.path().filename() == "config.json" || ext == ".safetensors" || ext == ".gguf" || ext == ".bin"))
            files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    std::string id;
    for (const auto& f : files) id += one(f) + ";";
    return id;
}

namespace detail {

/// The reference side of KL: log-probabilities and probabilities of logits [n][V] (double math).
struct RefDistribution {
    std::vector<float> logp, p;
};

/// Row-wise log-softmax of logits [n][V] in double precision, stored as float (and its exp).
inline void log_softmax_rows(std::span<const float> logits, std::size_t V, RefDistribution& out) {
    out.logp.resize(logits.size());
    out.p.resize(logits.size());
    for (std::size_t r = 0; r < logits.size() / V; ++r) {
        const float* x = logits.data() + r * V;
        double mx = x[0];
        for (std::size_t v = 0; v < V; ++v) mx = std::max<double>(mx, x[v]);
        double z = 0;
        for (std::size_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(x[v]) - mx);
        const double lz = mx + std::log(z);
        for (std::size_t v = 0; v < V; ++v) {
            const double l = static_cast<double>(x[v]) - lz;
            out.logp[r * V + v] = static_cast<float>(l);
            out.p[r * V + v] = static_cast<float>(std::exp(l));
        }
    }
}

/// Sum over rows of KL(p || q): p as the reference distribution, q as raw logits.
[[nodiscard]] inline double kl_sum_rows(const RefDistribution& ref, std::span<const float> logits, std::size_t V) {
    double total = 0;
    for (std::size_t r = 0; r < logits.size() / V; ++r) {
        const float* x = logits.data() + r * V;
        const float* lp = ref.logp.data() + r * V;
        const float* p = ref.p.data() + r * V;
        double mx = x[0];
        for (std::size_t v = 0; v < V; ++v) mx = std::max<double>(mx, x[v]);
        double z = 0;
        for (std::size_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(x[v]) - mx);
        const double lz = mx + std::log(z);
        double kl = 0;
        for (std::size_t v = 0; v < V; ++v)
            kl += static_cast<double>(p[v]) * (static_cast<double>(lp[v]) - (static_cast<double>(x[v]) - lz));
        total += std::max(0.0, kl);  // rounding can leave a tiny negative sum for identical rows
    }
    return total;
}

}  // namespace detail

class KLSensitivity {
public:
    using Options = KLOptions;
    using TokenId = model::TokenId;

    /// `model` is used (its linears are swapped one at a time and restored) and must outlive this
    /// object; `model_id` names it in cache_key() (model_identity(path) for a file on disk).
    KLSensitivity(model::Transformer& model, std::vector<std::vector<TokenId>> calibration, std::string model_id,
                  Options options = {})
        : model_(&model), calib_(std::move(calibration)), model_id_(std::move(model_id)), opt_(options) {
        if (!Affine::mlx_group_size(opt_.group_size))
            optiq::detail::fail<config_error>("KLSensitivity: group_size ", opt_.group_size, " is not 32, 64 or 128");
        if (calib_.empty()) optiq::detail::fail<config_error>("KLSensitivity: no calibration sequences");
        for (std::size_t i = 0; i < calib_.size(); ++i)
            if (calib_[i].size() < 2)
                optiq::detail::fail<config_error>("KLSensitivity: calibration sequence ", i, " has ", calib_[i].size(),
                                                  " tokens (need >= 2)");
        const std::size_t L = model.config().n_layers;
        model.for_each_linear([&](const std::string& name, model::Linear& l) {
            if (l.in_features() % opt_.group_size != 0) {
                skipped_.push_back(name);
                return;
            }
            KLUnitInfo u;
            u.name = name;
            u.params = static_cast<std::uint64_t>(l.in_features()) * l.out_features();
            if (name == "model.embed_tokens") {
                u.embedding = true;
                u.block = 0;
            } else if (name == "lm_head") {
                u.block = L;
            } else {
                const int b = block_index(name);
                u.block = b < 0 ? 0 : static_cast<std::size_t>(b);
            }
            units_.push_back(std::move(u));
        });
    }

    [[nodiscard]] const std::vector<KLUnitInfo>& units() const noexcept { return units_; }
    [[nodiscard]] const std::vector<std::string>& skipped() const noexcept { return skipped_; }
    [[nodiscard]] const Options& options() const noexcept { return opt_; }
    [[nodiscard]] std::size_t calibration_tokens() const noexcept {
        std::size_t n = 0;
        for (const auto& s : calib_) n += s.size();
        return n;
    }

    [[nodiscard]] std::string cache_key() const {
        std::string toks;
        for (const auto& s : calib_) {
            for (TokenId t : s) toks += std::to_string(t) + ",";
            toks += ";";
        }
        std::string k = model_id_ + ";kl;g=" + std::to_string(opt_.group_size) +
                        ";side=" + std::to_string(static_cast<int>(opt_.side)) + (opt_.all_bits ? ";all_bits" : ";predicted") +
                        ";calib=" + std::to_string(calib_.size()) + "x" + std::to_string(calibration_tokens()) + ":" +
                        detail::fnv1a_hex(toks) + ";units=";
        for (const auto& u : units_) k += u.name + ":" + std::to_string(u.params) + ",";
        return k;
    }

    /// The unit's weight quantized as the writer will quantize it, as a Linear (bias kept).
    [[nodiscard]] model::Linear quantized(std::string_view unit, int bits) const {
        const model::Linear* l = model_->linear(unit);
        if (!l) optiq::detail::fail<config_error>("KLSensitivity: no unit named '", unit, "'");
        return quantize_linear(*l, bits);
    }

    /// Squared weight error of the unit at `bits` (0 for 16), against the weight as loaded.
    [[nodiscard]] double weight_sse(std::string_view unit, int bits) const {
        if (bits == 16) return 0.0;
        const model::Linear* l = model_->linear(unit);
        if (!l) optiq::detail::fail<config_error>("KLSensitivity: no unit named '", unit, "'");
        return sse(*l, quantize_linear(*l, bits));
    }

    /// Mean KL over all calibration positions with `unit` quantized at `bits`. reuse_prefix = false
    /// reruns every layer from the embedding (logits_all): the check that the prefix reuse is exact.
    [[nodiscard]] double unit_kl(std::string_view unit, int bits, bool reuse_prefix = true) const {
        const auto it = std::find_if(units_.begin(), units_.end(), [&](const KLUnitInfo& u) { return u.name == unit; });
        if (it == units_.end()) optiq::detail::fail<config_error>("KLSensitivity: no quantizable unit named '", unit, "'");
        model::Linear q = quantized(unit, bits);
        double total = 0;
        std::size_t positions = 0;
        detail::RefDistribution ref;
        for (const auto& seq : calib_) {
            const auto hidden = model_->layer_inputs(seq);
            const std::size_t L = model_->config().n_layers, V = model_->config().vocab_size;
            detail::log_softmax_rows(model_->logits_from_layer(L, hidden[L], seq.size()), V, ref);
            std::vector<float> logits;
            if (reuse_prefix) {
                logits = perturbed_logits(*it, q, hidden, seq);
            } else {
                swap_in(unit, q);
                try {
                    logits = model_->logits_all(seq);
                } catch (...) {
                    swap_in(unit, q);
                    throw;
                }
                swap_in(unit, q);
            }
            total += detail::kl_sum_rows(ref, logits, V);
            positions += seq.size();
        }
        return total / static_cast<double>(positions);
    }

    [[nodiscard]] CostTable measure(std::span<const int> candidate_bits) const {
        CostTable t(std::vector<int>(candidate_bits.begin(), candidate_bits.end()));
        std::vector<int> measured;
        for (int b : candidate_bits) {
            if (b == 16) continue;
            if (!Affine::mlx_bits(b))
                optiq::detail::fail<config_error>("KLSensitivity: ", b, " bits is not an MLX bit-width (or 16)");
            if (opt_.all_bits || measured.empty()) measured.push_back(b);
        }
        const std::size_t nu = units_.size(), nm = measured.size();
        // Quantized copies once, not per sequence: quantizing the head / embedding costs about as
        // much as a short forward pass.
        std::vector<model::Linear> q(nu * nm);
        std::vector<std::vector<double>> err(nu);  // squared weight error per candidate
        for (std::size_t i = 0; i < nu; ++i) {
            const model::Linear& orig = *model_->linear(units_[i].name);
            for (int b : candidate_bits) {
                if (b == 16) {
                    err[i].push_back(0.0);
                    continue;
                }
                model::Linear qb = quantize_linear(orig, b);
                err[i].push_back(sse(orig, qb));
                const auto m = std::find(measured.begin(), measured.end(), b);
                if (m != measured.end()) q[i * nm + static_cast<std::size_t>(m - measured.begin())] = std::move(qb);
            }
        }

        std::vector<double> kl(nu * nm, 0.0);
        std::size_t positions = 0;
        const std::size_t L = model_->config().n_layers, V = model_->config().vocab_size;
        ProgressBar bar("KL sensitivity", calib_.size() * nu * nm, opt_.progress_out, opt_.progress && nm > 0);
        detail::RefDistribution ref;
        for (const auto& seq : calib_) {
            if (nm == 0) break;
            const auto hidden = model_->layer_inputs(seq);
            detail::log_softmax_rows(model_->logits_from_layer(L, hidden[L], seq.size()), V, ref);
            for (std::size_t i = 0; i < nu; ++i)
                for (std::size_t m = 0; m < nm; ++m) {
                    kl[i * nm + m] += detail::kl_sum_rows(ref, perturbed_logits(units_[i], q[i * nm + m], hidden, seq), V);
                    bar.advance();
                }
            positions += seq.size();
        }
        bar.finish();

        int n_blocks = 0;
        for (const auto& u : units_) n_blocks = std::max(n_blocks, block_index(u.name) + 1);
        for (std::size_t i = 0; i < nu; ++i) {
            std::vector<double> cost;
            const std::size_t base = candidate_index(candidate_bits, measured.empty() ? 16 : measured[0]);
            for (std::size_t c = 0; c < candidate_bits.size(); ++c) {
                const int b = candidate_bits[c];
                if (b == 16) {
                    cost.push_back(0.0);
                    continue;
                }
                const auto m = std::find(measured.begin(), measured.end(), b);
                if (m != measured.end()) {
                    cost.push_back(kl[i * nm + static_cast<std::size_t>(m - measured.begin())] / static_cast<double>(positions));
                } else {
                    const double k0 = kl[i * nm] / static_cast<double>(positions);
                    cost.push_back(err[i][base] > 0 ? k0 * err[i][c] / err[i][base] : k0);
                }
            }
            Unit u = make_unit(units_[i].name, units_[i].params, n_blocks);
            t.add(std::move(u), std::move(cost));
        }
        return t;
    }

private:
    [[nodiscard]] static std::size_t candidate_index(std::span<const int> cand, int b) {
        return static_cast<std::size_t>(std::find(cand.begin(), cand.end(), b) - cand.begin());
    }

    [[nodiscard]] model::Linear quantize_linear(const model::Linear& l, int bits) const {
        const std::vector<float> w = l.dequantize();
        const std::vector<std::size_t> shape{l.out_features(), l.in_features()};
        mlx::QuantizedMatrix qm;
        if (opt_.side == SideType::f32) {
            qm = mlx::quantize(w, shape, opt_.group_size, bits);
        } else {
            const std::vector<std::uint16_t> h = mlx::to_bits16(w, opt_.side);
            qm = mlx::quantize(std::span<const std::uint16_t>(h), opt_.side, shape, opt_.group_size, bits);
        }
        model::Linear q = model::Linear::mlx_affine(std::move(qm), l.name());
        if (!l.bias().empty()) q.set_bias(l.bias());
        return q;
    }

    [[nodiscard]] static double sse(const model::Linear& a, const model::Linear& b) {
        const std::vector<float> x = a.dequantize(), y = b.dequantize();
        double s = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
            const double d = static_cast<double>(y[i]) - x[i];
            s += d * d;
        }
        return s;
    }

    void swap_in(std::string_view name, model::Linear& l) const {
        model::Linear* slot = model_->linear(name);
        std::swap(*slot, l);
    }

    /// Logits with `q` in place of the unit, from the captured residual stream; `q` is swapped in
    /// and back out, so it holds the quantized weight again afterwards.
    [[nodiscard]] std::vector<float> perturbed_logits(const KLUnitInfo& u, model::Linear& q,
                                                      const std::vector<std::vector<float>>& hidden,
                                                      std::span<const TokenId> seq) const {
        model::Linear& tmp = q;
        swap_in(u.name, tmp);
        std::vector<float> out;
        try {
            if (u.embedding) {
                const std::size_t d = model_->config().dim;
                std::vector<float> h0(seq.size() * d);
                const model::Linear& e = model_->weights().embed;
                for (std::size_t t = 0; t < seq.size(); ++t)
                    e.row(static_cast<std::size_t>(seq[t]), {h0.data() + t * d, d});
                out = model_->logits_from_layer(0, h0, seq.size());
            } else {
                out = model_->logits_from_layer(u.block, hidden[u.block], seq.size());
            }
        } catch (...) {
            swap_in(u.name, tmp);
            throw;
        }
        swap_in(u.name, tmp);
        return out;
    }

    model::Transformer* model_;
    std::vector<std::vector<TokenId>> calib_;
    std::string model_id_;
    Options opt_;
    std::vector<KLUnitInfo> units_;
    std::vector<std::string> skipped_;
};

}  // namespace optiq::alloc

// optiq-quant-report: distortion, inner-product error, storage and speed of every quantization
// method on random unit vectors, as a table or JSON.
//   optiq-quant-report --dim 128 --bits 1,2,3,4 --vectors 20000 --methods tq_mse,tq_prod --seed 42 [--json]
#include <optiq/core/progress.hpp>
#include <optiq/quant/evaluate.hpp>
#include <optiq/quant/factory.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    CLI::App app{"optiq-quant-report: quality, storage and speed of quantization methods on random unit vectors"};
    std::size_t dim = 128, vectors = 20000, queries = 32;
    std::vector<int> bits{1, 2, 3, 4};
    std::vector<std::string> methods{"tq_mse", "tq_prod", "rvq", "qjl", "polar", "kivi", "affine"};
    std::uint64_t seed = 42;
    bool json = false;
    app.add_option("--dim", dim, "vector dimension")->check(CLI::Range(1, 1 << 16));
    app.add_option("--bits", bits, "bits per coordinate to try")->delimiter(',')->check(CLI::Range(1, 8));
    app.add_option("--vectors", vectors, "number of random unit vectors")->check(CLI::Range(1, 1 << 24));
    app.add_option("--queries", queries, "random unit queries for inner-product error")->check(CLI::Range(1, 1 << 16));
    app.add_option("--methods", methods, "methods (" + optiq::method_names() + ") or full specs like tq_mse:4:haar")
        ->delimiter(',');
    app.add_option("--seed", seed, "seed for vectors, queries and rotations");
    app.add_flag("--json", json, "print a JSON list instead of a table");
    CLI11_PARSE(app, argc, argv);

    try {
        const auto x = optiq::random_unit_vectors(vectors, dim, seed);
        const auto q = optiq::random_unit_vectors(queries, dim, optiq::Rng::derive(seed, 1));
        std::vector<optiq::QuantStats> rows;
        optiq::ProgressBar bar("quant-report", methods.size() * bits.size());
        for (const auto& m : methods) {
            for (int b : bits) {
                const std::string spec = m.find(':') == std::string::npos ? m + ":" + std::to_string(b) : m;
                bar.set_label(spec);
                // The quantizer's own stream, so rotations are independent of the test vectors.
                const auto quant = optiq::make_quantizer(spec, dim, optiq::Rng::derive(seed, 2));
                rows.push_back(optiq::evaluate(quant, x, q));
                bar.advance();
                if (m.find(':') != std::string::npos) {
                    bar.advance(bits.size() - 1);
                    break;  // a full spec fixes its own bits
                }
            }
        }
        bar.finish();
        if (json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& r : rows) {
                out.push_back({{"method", r.method}, {"bits", r.bits}, {"bits_per_coord", r.bits_per_coord},
                               {"mse", r.mse}, {"ip_bias", r.ip_bias}, {"ip_rmse", r.ip_rmse},
                               {"ip_var_d", r.ip_var_d}, {"cosine", r.cosine}, {"encode_ns", r.encode_ns},
                               {"decode_ns", r.decode_ns}});
            }
            std::printf("%s\n", out.dump(2).c_str());
        } else {
            std::printf("d=%zu, %zu unit vectors, %zu unit queries, seed %llu\n\n", dim, vectors, queries,
                        static_cast<unsigned long long>(seed));
            std::printf("| %-22s | %4s | %9s | %10s | %10s | %9s | %8s | %7s | %9s | %9s |\n", "method", "bits",
                        "bits/coord", "mse", "ip_bias", "ip_rmse", "ip_var*d", "cosine", "enc ns/v", "dec ns/v");
            std::printf("|%s|\n", std::string(126, '-').c_str());
            for (const auto& r : rows) {
                std::printf("| %-22s | %4d | %10.3f | %10.6f | %+10.2e | %9.6f | %8.4f | %7.4f | %9.0f | %9.0f |\n",
                            r.method.c_str(), r.bits, r.bits_per_coord, r.mse, r.ip_bias, r.ip_rmse, r.ip_var_d,
                            r.cosine, r.encode_ns, r.decode_ns);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "optiq-quant-report: %s\n", e.what());
        return 1;
    }
    return 0;
}

// Helper of check_convert.py: what optiq's own runtime and tokenizers make of a model.
//   optiq_convert_dump logits DIR OUT.f32 IDS [IDS...]   logits [T][vocab] of each comma-separated id list,
//                                                       concatenated as little-endian float32
//   optiq_convert_dump modules DIR                      "name format" of every linear (format as
//                                                       Linear::describe: f32 / f16 / mlx_affine:B:gG)
//   optiq_convert_dump tokenize MODEL TOKENIZER TEXT    one JSON array of ids per line of TEXT, as
//                                                       tokenizer::load_tokenizer(MODEL, TOKENIZER)
//                                                       encodes it ("-" = no explicit tokenizer)
#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "optiq/model/loader.hpp"
#include "optiq/tokenizer/any_tokenizer.hpp"

int main(int argc, char** argv) try {
    using namespace optiq;
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "logits" && argc >= 5) {
        auto m = model::load(argv[2]);
        std::ofstream out(argv[3], std::ios::binary | std::ios::trunc);
        for (int a = 4; a < argc; ++a) {
            std::vector<model::TokenId> ids;
            std::stringstream ss(argv[a]);
            for (std::string x; std::getline(ss, x, ',');) ids.push_back(static_cast<model::TokenId>(std::stol(x)));
            const std::vector<float> lg = m.logits_all(ids);
            out.write(reinterpret_cast<const char*>(lg.data()), static_cast<std::streamsize>(lg.size() * sizeof(float)));
        }
        std::printf("vocab %zu\n", m.config().vocab_size);
        return out ? 0 : 1;
    }
    if (mode == "modules" && argc == 3) {
        auto m = model::load(argv[2]);
        m.for_each_linear([](const std::string& n, model::Linear& l) { std::printf("%s %s\n", n.c_str(), l.describe().c_str()); });
        return 0;
    }
    if (mode == "tokenize" && argc == 5) {
        const std::string explicit_tok = argv[3];
        const auto tok = tokenizer::load_tokenizer(argv[2], explicit_tok == "-" ? std::string() : explicit_tok);
        std::ifstream in(argv[4], std::ios::binary);
        for (std::string line; std::getline(in, line);) {
            const auto ids = tok.encode(line);
            std::printf("[");
            for (std::size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? "," : "", ids[i]);
            std::printf("]\n");
        }
        return 0;
    }
    std::fprintf(stderr, "usage: %s logits DIR OUT.f32 IDS... | modules DIR | tokenize MODEL TOKENIZER|- TEXT\n", argv[0]);
    return 2;
} catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}

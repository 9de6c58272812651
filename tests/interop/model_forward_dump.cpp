// Forward-pass dumps for tests/interop/check_model_forward.py.
//   optiq_model_forward_dump MODEL greedy N OUT      greedy decode from BOS (token 1) for N steps:
//                                                   stdout "ids a b c ...", OUT = N x vocab f32 logits
//                                                   (the logits each step's argmax was taken from)
//   optiq_model_forward_dump MODEL logits IDS OUT    IDS = "1,2,3": logits of every position of the
//                                                   sequence, OUT = n x vocab f32 (prefill in chunks of 3)
//   optiq_model_forward_dump MODEL logits-int8 IDS OUT   the same through the int8-activation kernels
// "greedy" and "logits" run the exact (f32-activation) matmul, the reference rule.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "optiq/model/loader.hpp"

using optiq::model::TokenId;

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: optiq_model_forward_dump MODEL (greedy N | logits IDS) OUT\n";
        return 2;
    }
    try {
        const std::string mode = argv[2];
        optiq::model::LoadOptions lo;
        lo.transformer.activations =
            mode == "logits-int8" ? optiq::model::Activations::int8 : optiq::model::Activations::exact;
        auto m = optiq::model::load(argv[1], lo);
        std::ofstream out(argv[4], std::ios::binary);
        auto write = [&](const std::vector<float>& v) {
            out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
        };
        if (mode == "greedy") {
            const int steps = std::atoi(argv[3]);
            std::vector<float> lg = m.decode(1);
            std::cout << "ids";
            for (int s = 0; s < steps; ++s) {
                write(lg);
                TokenId best = 0;
                for (std::size_t j = 1; j < lg.size(); ++j)
                    if (lg[j] > lg[static_cast<std::size_t>(best)]) best = static_cast<TokenId>(j);
                std::cout << ' ' << best;
                if (s + 1 < steps) lg = m.decode(best);
            }
            std::cout << '\n';
        } else if (mode == "logits" || mode == "logits-int8") {
            std::vector<TokenId> ids;
            std::stringstream ss(argv[3]);
            for (std::string t; std::getline(ss, t, ',');) ids.push_back(static_cast<TokenId>(std::stol(t)));
            m.set_prefill_chunk(3);  // exercises chunked prefill against the reference's one-shot pass
            write(m.logits_all(ids));
            std::cout << "n " << ids.size() << " vocab " << m.config().vocab_size << '\n';
        } else {
            std::cerr << "unknown mode " << mode << '\n';
            return 2;
        }
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
    return 0;
}

// Logits of optiq's runtime for tests/interop/check_arch_forward.py (Qwen3, Qwen2, Llama 3 rope
// scaling against mlx-lm's model classes).
//   optiq_arch_forward_dump MODEL_DIR IDS CHUNK OUT
// IDS = "1,2,3". Writes, as f32, n x vocab logits of every position twice: first from one
// logits_all() prefill cut into CHUNK-token steps, then from a prefill of the first token followed
// by one decode step per token (the KV cache path a generation takes). stdout: "n N vocab V arch A".
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
        std::cerr << "usage: optiq_arch_forward_dump MODEL_DIR IDS CHUNK OUT\n";
        return 2;
    }
    try {
        auto m = optiq::model::load(argv[1]);
        std::vector<TokenId> ids;
        std::stringstream ss(argv[2]);
        for (std::string t; std::getline(ss, t, ',');) ids.push_back(static_cast<TokenId>(std::stol(t)));
        if (ids.empty()) throw std::runtime_error("no token ids");
        m.set_prefill_chunk(static_cast<std::size_t>(std::atoi(argv[3])));
        std::ofstream out(argv[4], std::ios::binary);
        auto write = [&](const std::vector<float>& v) {
            out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
        };
        write(m.logits_all(ids));
        m.reset();
        write(m.forward(std::vector<TokenId>{ids[0]}, 0));
        for (std::size_t i = 1; i < ids.size(); ++i) write(m.decode(ids[i]));
        std::cout << "n " << ids.size() << " vocab " << m.config().vocab_size << " arch "
                  << optiq::model::arch_name(m.config().arch) << '\n';
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
    return 0;
}

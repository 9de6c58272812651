#pragma once
// Shared by the model tests: stories260K paths, a tok512.bin decoder (llama2.c's decode: strip
// the space after BOS, <0xXX> byte tokens), greedy decoding.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "../io/io_test_util.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/model/loader.hpp"
#include "optiq/model/sampling.hpp"

namespace optiq::model::test {

using io::test::cache_dir;
using io::test::shared_models_dir;

inline const char* kStory = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";

[[nodiscard]] inline std::filesystem::path stories_bin() { return shared_models_dir() / "stories260K" / "stories260K.bin"; }
[[nodiscard]] inline std::filesystem::path stories_tok() { return shared_models_dir() / "stories260K" / "tok512.bin"; }
[[nodiscard]] inline std::filesystem::path smollm_gguf() { return cache_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf"; }

[[nodiscard]] inline Transformer stories(TransformerOptions o = {}) {
    LoadOptions lo;
    lo.transformer = o;
    return load(stories_bin(), lo);
}

[[nodiscard]] inline std::string decode_stories(std::span<const TokenId> ids, TokenId prev = 1) {
    static const io::Llama2cTokenizer tok = io::Llama2cTokenizer::open(stories_tok(), 512);
    std::string out;
    for (TokenId id : ids) {
        std::string piece = tok.vocab.at(static_cast<std::size_t>(id));
        if (prev == 1 && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
        if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>')
            piece = std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
        out += piece;
        prev = id;
    }
    return out;
}

/// Greedy ids after `prompt` (caches reset first), n of them.
[[nodiscard]] inline std::vector<TokenId> greedy(Transformer& m, std::vector<TokenId> prompt, std::size_t n) {
    m.reset();
    std::vector<float> lg = m.forward(prompt, 0);
    std::vector<TokenId> out;
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(Sampler::argmax(lg));
        if (i + 1 < n) lg = m.decode(out.back());
    }
    return out;
}

[[nodiscard]] inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
    EXPECT_EQ(a.size(), b.size());
    float m = 0.0f;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

}  // namespace optiq::model::test

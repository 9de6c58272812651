#include "optiq/io/llama2c.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "io_test_util.hpp"

namespace {

using namespace optiq::io;
using optiq::io::test::expect_error;

/// A synthetic checkpoint whose float i (counting from the first weight) has value i, so every
/// tensor's position in the file can be checked.
std::vector<std::byte> synthetic(std::int32_t dim, std::int32_t hidden, std::int32_t layers, std::int32_t heads,
                                 std::int32_t kv_heads, std::int32_t vocab, std::int32_t seq, std::ptrdiff_t extra = 0) {
    Llama2cConfig c;
    c.dim = static_cast<std::size_t>(dim), c.hidden_dim = static_cast<std::size_t>(hidden);
    c.n_layers = static_cast<std::size_t>(layers), c.n_heads = static_cast<std::size_t>(heads);
    c.n_kv_heads = static_cast<std::size_t>(kv_heads), c.vocab_size = static_cast<std::size_t>(vocab < 0 ? -vocab : vocab);
    c.seq_len = static_cast<std::size_t>(seq), c.tie_word_embeddings = vocab > 0;
    const auto n = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(*Llama2cCheckpoint::expected_file_bytes(c)) + extra);
    std::vector<std::byte> b(n);
    const std::int32_t h[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
    std::memcpy(b.data(), h, 28);
    for (std::size_t i = 0; 28 + 4 * i + 4 <= n; ++i) {
        const float v = static_cast<float>(i);
        std::memcpy(b.data() + 28 + 4 * i, &v, 4);
    }
    return b;
}

TEST(Llama2c, SyntheticLayoutAndNames) {
    // dim 8, hidden 12, 2 layers, 2 heads (hd 4), 1 KV head (kv_dim 4), vocab 5, seq 3.
    const auto ck = Llama2cCheckpoint::from_bytes(synthetic(8, 12, 2, 2, 1, 5, 3), "syn.bin");
    const auto& c = ck.config();
    EXPECT_EQ(c.dim, 8u);
    EXPECT_EQ(c.head_dim(), 4u);
    EXPECT_EQ(c.kv_dim(), 4u);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_TRUE(c.rope_interleaved);
    EXPECT_EQ(ck.size(), 1u + 2 * 9 + 1);
    EXPECT_FALSE(ck.contains("lm_head.weight"));
    auto first = [&](std::string_view name) { return ck.at(name).to_float().front(); };
    // Offsets (in floats): embed 0 (40), rms_att 40 (2x8), wq 56 (2x64), wk 184 (2x32), wv 248,
    // wo 312 (2x64), rms_ffn 440, w1 456 (2x96), w2 648, w3 840, rms_final 1032.
    EXPECT_EQ(first("model.embed_tokens.weight"), 0.f);
    EXPECT_EQ(first("model.layers.0.input_layernorm.weight"), 40.f);
    EXPECT_EQ(first("model.layers.1.input_layernorm.weight"), 48.f);
    EXPECT_EQ(first("model.layers.0.self_attn.q_proj.weight"), 56.f);
    EXPECT_EQ(first("model.layers.1.self_attn.q_proj.weight"), 120.f);
    EXPECT_EQ(first("model.layers.0.self_attn.k_proj.weight"), 184.f);
    EXPECT_EQ(first("model.layers.1.self_attn.v_proj.weight"), 280.f);
    EXPECT_EQ(first("model.layers.0.self_attn.o_proj.weight"), 312.f);
    EXPECT_EQ(first("model.layers.1.post_attention_layernorm.weight"), 448.f);
    EXPECT_EQ(first("model.layers.0.mlp.gate_proj.weight"), 456.f);
    EXPECT_EQ(first("model.layers.0.mlp.down_proj.weight"), 648.f);
    EXPECT_EQ(first("model.layers.1.mlp.up_proj.weight"), 936.f);
    EXPECT_EQ(first("model.norm.weight"), 1032.f);
    EXPECT_EQ(ck.at("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<std::size_t>{4, 8}));
    EXPECT_EQ(ck.at("model.layers.0.mlp.down_proj.weight").shape, (std::vector<std::size_t>{8, 12}));
    EXPECT_EQ(ck.at("model.layers.0.mlp.gate_proj.weight").shape, (std::vector<std::size_t>{12, 8}));
    EXPECT_EQ(ck.at("model.norm.weight").to_float().back(), 1039.f);
}

TEST(Llama2c, UntiedClassifierFollowsTheLegacyFreqCis) {
    const auto ck = Llama2cCheckpoint::from_bytes(synthetic(8, 12, 2, 2, 1, -5, 3), "untied.bin");
    EXPECT_FALSE(ck.config().tie_word_embeddings);
    EXPECT_EQ(ck.config().vocab_size, 5u);
    const auto& head = ck.at("lm_head.weight");
    EXPECT_EQ(head.shape, (std::vector<std::size_t>{5, 8}));
    // rms_final ends at 1040; freq_cis real + imag are 3 * 2 floats each = 12 skipped.
    EXPECT_EQ(head.to_float().front(), 1052.f);
    EXPECT_EQ(ck.tensors().back().name, "lm_head.weight");
}

TEST(Llama2c, RejectsBadFiles) {
    expect_error([] { (void)Llama2cCheckpoint::from_bytes(std::vector<std::byte>(27), "short.bin"); }, {"short.bin", "7-int32"});
    expect_error([] { (void)Llama2cCheckpoint::from_bytes(synthetic(8, 12, 2, 2, 1, 5, 3, 4), "long.bin"); },
                 {"long.bin", "does not match the header"});
    expect_error([] { (void)Llama2cCheckpoint::from_bytes(synthetic(8, 12, 2, 2, 1, 5, 3, -4), "cut.bin"); },
                 {"cut.bin", "does not match the header"});
    auto zero = synthetic(8, 12, 2, 2, 1, 5, 3);
    std::memset(zero.data() + 8, 0, 4);  // n_layers = 0
    expect_error([&] { (void)Llama2cCheckpoint::from_bytes(zero, "z.bin"); }, {"z.bin", "'n_layers'"});
    auto heads = synthetic(8, 12, 2, 2, 1, 5, 3);
    const std::int32_t three = 3;
    std::memcpy(heads.data() + 12, &three, 4);  // 8 % 3 != 0
    expect_error([&] { (void)Llama2cCheckpoint::from_bytes(heads, "h.bin"); }, {"h.bin", "'n_heads'"});
    auto kv = synthetic(8, 12, 2, 2, 1, 5, 3);
    std::memcpy(kv.data() + 16, &three, 4);
    expect_error([&] { (void)Llama2cCheckpoint::from_bytes(kv, "kv.bin"); }, {"kv.bin", "'n_kv_heads'"});
    auto huge = synthetic(8, 12, 2, 2, 1, 5, 3);
    const std::int32_t big = 0x7FFFFFFC;  // head_dim 0x3FFFFFFE: even, so only the size check trips
    for (int f : {0, 1, 2, 6}) std::memcpy(huge.data() + 4 * f, &big, 4);
    const std::int32_t two = 2;
    std::memcpy(huge.data() + 12, &two, 4);
    expect_error([&] { (void)Llama2cCheckpoint::from_bytes(huge, "huge.bin"); }, {"huge.bin", "does not match"});
    // Every truncation fails cleanly.
    const auto full = synthetic(8, 12, 1, 2, 1, 5, 3);
    for (std::size_t n = 0; n < full.size(); n += 3)
        EXPECT_THROW((void)Llama2cCheckpoint::from_bytes(std::vector<std::byte>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)), "t.bin"),
                     optiq::format_error);
}

TEST(Llama2cTokenizer, ParsesAndValidates) {
    std::vector<std::byte> b;
    auto put = [&](const void* p, std::size_t n) {
        b.insert(b.end(), static_cast<const std::byte*>(p), static_cast<const std::byte*>(p) + n);
    };
    const std::int32_t max_len = 3;
    put(&max_len, 4);
    for (auto [s, score] : {std::pair<std::string, float>{"<u>", 0.f}, {"ab", -1.5f}, {"", 2.f}}) {
        const auto len = static_cast<std::int32_t>(s.size());
        put(&score, 4), put(&len, 4), put(s.data(), s.size());
    }
    const auto t = Llama2cTokenizer::parse(b, "tok.bin");
    EXPECT_EQ(t.max_token_length, 3u);
    EXPECT_EQ(t.vocab, (std::vector<std::string>{"<u>", "ab", ""}));
    EXPECT_EQ(t.scores, (std::vector<float>{0.f, -1.5f, 2.f}));
    EXPECT_EQ(Llama2cTokenizer::parse(b, "tok.bin", 3).size(), 3u);
    expect_error([&] { (void)Llama2cTokenizer::parse(b, "tok.bin", 4); }, {"tok.bin", "token 3"});
    expect_error([&] { (void)Llama2cTokenizer::parse(b, "tok.bin", 2); }, {"tok.bin", "left after 2 tokens"});
    for (std::size_t n = 5; n < b.size(); ++n) {
        if (n == 4 + 11 || n == 4 + 21) continue;  // whole tokens: a valid shorter vocabulary
        expect_error([&] { (void)Llama2cTokenizer::parse(std::span(b).first(n), "tok.bin"); }, {"tok.bin", "truncated"});
    }
    auto bad = b;
    const std::int32_t too_long = 4;
    std::memcpy(bad.data() + 8, &too_long, 4);
    expect_error([&] { (void)Llama2cTokenizer::parse(bad, "tok.bin"); }, {"tok.bin", "token 0", "length 4"});
    expect_error([&] { (void)Llama2cTokenizer::parse(std::span(b).first(2), "tok.bin"); }, {"tok.bin", "max_token_length"});
}

// ---- the real stories260K checkpoint and tokenizer (../shared/models/stories260K) ----

std::filesystem::path stories_dir() { return optiq::io::test::shared_models_dir() / "stories260K"; }

#define OPTIQ_REQUIRE_FILE(p)                                                                         \
    do {                                                                                              \
        if (!std::filesystem::exists(p)) {                                                            \
            if (optiq::io::test::ci()) FAIL() << (p) << " is missing (CI=true)";                      \
            GTEST_SKIP() << (p) << " is missing (set OPTIQ_MODELS to the folder holding stories260K/)"; \
        }                                                                                             \
    } while (0)

TEST(Llama2cStories260K, Checkpoint) {
    const auto path = stories_dir() / "stories260K.bin";
    OPTIQ_REQUIRE_FILE(path);
    EXPECT_EQ(optiq::io::test::sha256_hex(optiq::io::test::read_file(path)),
              "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");
    const auto ck = Llama2cCheckpoint::open(path);
    const auto& c = ck.config();
    EXPECT_EQ(c.dim, 64u);
    EXPECT_EQ(c.hidden_dim, 172u);
    EXPECT_EQ(c.n_layers, 5u);
    EXPECT_EQ(c.n_heads, 8u);
    EXPECT_EQ(c.n_kv_heads, 4u);
    EXPECT_EQ(c.vocab_size, 512u);
    EXPECT_EQ(c.seq_len, 512u);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.head_dim(), 8u);
    EXPECT_EQ(ck.size(), 47u);
    EXPECT_EQ(ck.at("model.embed_tokens.weight").shape, (std::vector<std::size_t>{512, 64}));
    EXPECT_EQ(ck.at("model.layers.4.self_attn.k_proj.weight").shape, (std::vector<std::size_t>{32, 64}));
    EXPECT_EQ(ck.at("model.layers.4.mlp.down_proj.weight").shape, (std::vector<std::size_t>{64, 172}));
    // First values (read independently with Python's struct module).
    const auto emb = ck.at("model.embed_tokens.weight").to_float();
    EXPECT_EQ(emb[0], -0.29474878311157227f);
    EXPECT_EQ(emb[1], 0.5618956089019775f);
    EXPECT_EQ(ck.at("model.layers.0.input_layernorm.weight").to_float()[0], 0.97224295f);
    // RMSNorm gains are positive and near 1; projections are small and finite.
    for (const auto& t : ck.tensors()) {
        const auto v = t.to_float();
        double sq = 0;
        for (float x : v) {
            ASSERT_TRUE(std::isfinite(x)) << t.name;
            sq += double(x) * x;
        }
        const double rms = std::sqrt(sq / static_cast<double>(v.size()));
        EXPECT_GT(rms, 0.01) << t.name;
        EXPECT_LT(rms, 10.0) << t.name;
    }
}

TEST(Llama2cStories260K, Tokenizer) {
    const auto path = stories_dir() / "tok512.bin";
    OPTIQ_REQUIRE_FILE(path);
    EXPECT_EQ(optiq::io::test::sha256_hex(optiq::io::test::read_file(path)),
              "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312");
    const auto t = Llama2cTokenizer::open(path, 512);
    EXPECT_EQ(t.max_token_length, 7u);
    ASSERT_EQ(t.size(), 512u);
    EXPECT_EQ(t.vocab[0], "<unk>");
    EXPECT_EQ(t.vocab[1], "\n<s>\n");
    EXPECT_EQ(t.vocab[2], "\n</s>\n");
    EXPECT_EQ(t.vocab[3], "<0x00>");
    EXPECT_EQ(t.vocab[3 + 0x41], "<0x41>");  // byte fallback tokens at id byte + 3
    EXPECT_EQ(t.vocab[259], " t");
    EXPECT_EQ(t.scores[260], -1.f);
    EXPECT_EQ(t.vocab[511], "\xe2\x80\x8a");
    EXPECT_EQ(t.scores[511], -252.f);
    EXPECT_EQ(Llama2cTokenizer::open(path).size(), 512u);  // read to the end of the file
}

}  // namespace

// Writes the fuzzers' seed corpora: small valid files of each format.
// usage: optiq_fuzz_make_seeds OUT_DIR  ->  OUT_DIR/{safetensors,gguf,llama2c}/*
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../io/gguf_builder.hpp"
#include "optiq/core/half.hpp"
#include "optiq/io/ggml_quants.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/io/safetensors.hpp"

namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::vector<std::byte>& b) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
    std::vector<std::byte> b(v.size() * sizeof(T));
    if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
}

void safetensors_seeds(const fs::path& dir) {
    using optiq::io::DType;
    optiq::io::SafetensorsWriter w;
    w.set_metadata("format", "mlx");
    w.add("model.layers.0.w", {2, 3}, std::vector<float>{1, -2, 3, 4, 5, 6});
    w.add("h", DType::f16, {2}, bytes_of(std::vector<std::uint16_t>{0x3C00, 0xC000}));
    w.add("b", DType::bf16, {1, 2}, bytes_of(std::vector<std::uint16_t>{0x3F80, 0x4040}));
    w.add("u", DType::u32, {1}, bytes_of(std::vector<std::uint32_t>{0xDEADBEEF}));
    w.add("e", DType::f8_e4m3, {3}, bytes_of(std::vector<std::uint8_t>{0x38, 0x7E, 0x01}));
    w.add("z", DType::i64, {0}, {});
    write(dir / "multi.safetensors", w.to_bytes());
    optiq::io::SafetensorsWriter one;
    one.add("x", {1}, std::vector<float>{0.5f});
    write(dir / "one.safetensors", one.to_bytes());
    write(dir / "empty.safetensors", optiq::io::SafetensorsWriter{}.to_bytes());
}

std::vector<std::byte> blocks(std::uint32_t type, std::size_t n_blocks, std::uint32_t seed) {
    const auto tr = *optiq::io::ggml_type_traits(type);
    std::vector<std::byte> b(n_blocks * tr.type_size);
    std::uint32_t x = seed;
    for (auto& v : b) {
        x = x * 1664525u + 1013904223u;
        v = std::byte(static_cast<std::uint8_t>(x >> 24));
    }
    return b;
}

void gguf_seeds(const fs::path& dir) {
    using optiq::io::test::GgufBuilder;
    GgufBuilder g;
    g.kv_string("general.architecture", "llama");
    g.kv_u32("llama.block_count", 1);
    g.kv_f32("llama.rope.freq_base", 10000.f);
    g.kv_bool("tokenizer.ggml.add_bos_token", false);
    g.kv_i64("i64", -3);
    g.kv_f64("f64", 0.25);
    g.kv_strings("tokenizer.ggml.tokens", {"<s>", "a", "b"});
    g.kv_array<std::int32_t>("tokenizer.ggml.token_type", 5, {3, 1, 1});
    g.tensor("token_embd.weight", {4, 2}, 0, bytes_of(std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
    g.tensor("f16", {2}, 1, bytes_of(std::vector<std::uint16_t>{0x3C00, 0x4000}));
    g.tensor("bf16", {2}, 30, bytes_of(std::vector<std::uint16_t>{0x3F80, 0x4000}));
    write(dir / "plain.gguf", g.build());

    GgufBuilder q;
    q.kv_string("general.architecture", "qwen2");
    q.kv_u32("general.alignment", 64);
    q.alignment = 64;
    const std::uint32_t types[] = {2, 3, 6, 7, 8, 10, 11, 12, 13, 14};
    for (std::uint32_t t : types) {
        const auto tr = *optiq::io::ggml_type_traits(t);
        q.tensor("blk.0." + std::string(tr.name), {tr.block_size, 2}, t, blocks(t, 2, t));
    }
    write(dir / "quants.gguf", q.build());

    // Dims far beyond the file's size with a zero among them: valid and empty. Mutating the zero
    // reaches the size checks (F32 with 2^62 elements once wrapped to 0 bytes).
    GgufBuilder big;
    big.kv_string("general.architecture", "llama");
    big.tensor("empty", {1, 1ull << 40, 0}, 0, {});
    big.tensor("x", {2}, 0, bytes_of(std::vector<float>{1, 2}));
    write(dir / "bigdims.gguf", big.build());

    GgufBuilder v2;
    v2.version = 2;
    v2.kv_u8("u8", 1);
    v2.kv_i16("i16", -2);
    v2.tensor("q8", {32}, 8, blocks(8, 1, 99));
    write(dir / "v2.gguf", v2.build());
}

void llama2c_seeds(const fs::path& dir) {
    // dim 4, hidden 4, 1 layer, 2 heads (hd 2), 1 KV head, vocab 3 (untied: -3), seq 2.
    for (std::int32_t vocab : {3, -3}) {
        optiq::io::Llama2cConfig c;
        c.dim = 4, c.hidden_dim = 4, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 3, c.seq_len = 2;
        c.tie_word_embeddings = vocab > 0;
        const auto n = *optiq::io::Llama2cCheckpoint::expected_file_bytes(c);
        std::vector<std::byte> b(n);
        const std::int32_t h[7] = {4, 4, 1, 2, 1, vocab, 2};
        std::memcpy(b.data(), h, 28);
        for (std::size_t i = 0; 28 + 4 * i < n; ++i) {
            const float v = 0.01f * static_cast<float>(i);
            std::memcpy(b.data() + 28 + 4 * i, &v, 4);
        }
        write(dir / (vocab > 0 ? "tied.bin" : "untied.bin"), b);
    }
    std::vector<std::byte> tok;
    auto put = [&](const void* p, std::size_t n) {
        tok.insert(tok.end(), static_cast<const std::byte*>(p), static_cast<const std::byte*>(p) + n);
    };
    const std::int32_t max_len = 5;
    put(&max_len, 4);
    for (const char* s : {"<unk>", "<s>", " a"}) {
        const float score = -1.f;
        const auto len = static_cast<std::int32_t>(std::strlen(s));
        put(&score, 4), put(&len, 4), put(s, std::strlen(s));
    }
    write(dir / "tokenizer.bin", tok);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    try {
        const fs::path out = argv[1];
        for (const char* d : {"safetensors", "gguf", "llama2c"}) fs::create_directories(out / d);
        safetensors_seeds(out / "safetensors");
        gguf_seeds(out / "gguf");
        llama2c_seeds(out / "llama2c");
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "optiq_fuzz_make_seeds: %s\n", e.what());
        return 1;
    }
}

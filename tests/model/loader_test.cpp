#include "optiq/model/loader.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../io/gguf_builder.hpp"
#include "model_test_util.hpp"
#include "optiq/io/gguf.hpp"
#include "optiq/io/safetensors.hpp"

namespace optiq::model::test {
namespace {

using io::test::expect_error;
using io::test::TempDir;
using io::test::write_file;

const std::vector<TokenId> kIds{1, 400, 261, 403, 365, 297, 300, 301, 302, 303};

std::vector<std::byte> f32_bytes(const std::vector<float>& v) {
    std::vector<std::byte> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

/// stories260K as a GGUF "llama" file of F32 tensors (llama2.c's q/k row order is llama.cpp's).
io::test::GgufBuilder stories_gguf(Transformer& m, const std::string& arch = "llama") {
    io::test::GgufBuilder g;
    const auto& c = m.config();
    g.kv_string("general.architecture", arch);
    g.kv_u32(arch + ".embedding_length", 64);
    g.kv_u32(arch + ".feed_forward_length", 172);
    g.kv_u32(arch + ".block_count", 5);
    g.kv_u32(arch + ".attention.head_count", 8);
    g.kv_u32(arch + ".attention.head_count_kv", 4);
    g.kv_u32(arch + ".context_length", 512);
    g.kv_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
    g.kv_f32(arch + ".rope.freq_base", 10000.0f);
    auto mat = [&](const std::string& name, const Linear& l) {
        g.tensor(name, {l.in_features(), l.out_features()}, 0, f32_bytes(l.dequantize()));
    };
    auto vec = [&](const std::string& name, const std::vector<float>& v) { g.tensor(name, {v.size()}, 0, f32_bytes(v)); };
    mat("token_embd.weight", m.weights().embed);
    for (std::size_t i = 0; i < c.n_layers; ++i) {
        const auto& L = m.weights().layers[i];
        const std::string p = "blk." + std::to_string(i) + ".";
        vec(p + "attn_norm.weight", L.attn_norm);
        mat(p + "attn_q.weight", L.q);
        mat(p + "attn_k.weight", L.k);
        mat(p + "attn_v.weight", L.v);
        mat(p + "attn_output.weight", L.o);
        vec(p + "ffn_norm.weight", L.ffn_norm);
        mat(p + "ffn_gate.weight", L.gate);
        mat(p + "ffn_up.weight", L.up);
        mat(p + "ffn_down.weight", L.down);
    }
    vec("output_norm.weight", m.weights().final_norm);
    return g;
}

TEST(Loader, GgufLlamaKeepsInterleavedRowsAndEqualsLlama2c) {
    auto ref = stories();
    const auto want = ref.logits_all(kIds);
    TempDir dir;
    write_file(dir / "s.gguf", stories_gguf(ref).build());
    auto m = load(dir / "s.gguf");
    EXPECT_TRUE(m.config().rope_interleaved);
    EXPECT_TRUE(m.config().tie_word_embeddings);
    EXPECT_EQ(max_abs_diff(m.logits_all(kIds), want), 0.0f);
}

TEST(Loader, GgufErrorsNameFileAndTensor) {
    auto ref = stories();
    TempDir dir;
    {
        auto g = stories_gguf(ref, "gpt2");
        write_file(dir / "a.gguf", g.build());
        expect_error<config_error>([&] { (void)load(dir / "a.gguf"); }, {"a.gguf", "unknown architecture 'gpt2'"});
    }
    {
        auto g = stories_gguf(ref);
        std::erase_if(g.tensors, [](const auto& t) { return t.name == "blk.1.ffn_up.weight"; });
        write_file(dir / "b.gguf", g.build());
        expect_error<format_error>([&] { (void)load(dir / "b.gguf"); }, {"b.gguf", "model.layers.1.mlp.up_proj.weight", "missing"});
    }
    {
        auto g = stories_gguf(ref);
        for (auto& t : g.tensors)
            if (t.name == "blk.2.attn_k.weight") t.ne = {64, 16}, t.data.resize(64 * 16 * 4);
        write_file(dir / "c.gguf", g.build());
        expect_error<shape_error>([&] { (void)load(dir / "c.gguf"); }, {"c.gguf", "blk.2.attn_k.weight", "[16, 64]", "[32, 64]"});
    }
    {
        auto g = stories_gguf(ref);
        g.magic[0] = 'X';
        write_file(dir / "d.gguf", g.build());
        expect_error<format_error>([&] { (void)load(dir / "d.gguf"); }, {"d.gguf"});
    }
    {
        auto g = stories_gguf(ref);
        g.kv_i32("tokenizer.ggml.eos_token_id", -7);  // must not wrap or pass as an id
        write_file(dir / "f.gguf", g.build());
        expect_error<format_error>([&] { (void)load(dir / "f.gguf"); }, {"f.gguf", "tokenizer.ggml.eos_token_id", "-7"});
    }
    {
        expect_error<format_error>([&] { (void)load_gguf(dir.path()); }, {dir.path().string(), "directory"});
    }
    {
        auto bytes = stories_gguf(ref).build();
        bytes.resize(bytes.size() / 2);
        write_file(dir / "e.gguf", bytes);
        expect_error<format_error>([&] { (void)load(dir / "e.gguf"); }, {"e.gguf"});
    }
}

TEST(Loader, Llama2cTruncatedFileIsAFormatError) {
    auto bytes = io::test::read_file(stories_bin());
    bytes.resize(bytes.size() - 4);
    TempDir dir;
    write_file(dir / "cut.bin", bytes);
    expect_error<format_error>([&] { (void)load(dir / "cut.bin"); }, {"cut.bin", "does not match the header"});
    expect_error<format_error>([&] { (void)load(dir / "absent.bin"); }, {"absent.bin"});
}

/// stories260K as an HF directory: q/k rows restored to HF order (rotate-half), weights as
/// `dtype`, or MLX-quantized (4-bit, group 32) when quantize.
void write_hf_dir(Transformer& ref, const std::filesystem::path& dir, io::DType dtype, bool quantize,
                  const std::string& model_type = "llama") {
    std::filesystem::create_directories(dir);
    nlohmann::json cfg = {{"model_type", model_type},        {"hidden_size", 64},         {"intermediate_size", 172},
                          {"num_hidden_layers", 5},          {"num_attention_heads", 8},  {"num_key_value_heads", 4},
                          {"vocab_size", 512},               {"rms_norm_eps", 1e-5},      {"rope_theta", 10000.0},
                          {"tie_word_embeddings", true},     {"max_position_embeddings", 512}};
    if (quantize) cfg["quantization"] = {{"group_size", 32}, {"bits", 4}, {"model.layers.0.mlp.gate_proj", {{"group_size", 64}, {"bits", 8}}}};
    write_file(dir / "config.json", cfg.dump());
    io::SafetensorsWriter w;
    auto put = [&](const std::string& name, std::vector<std::size_t> shape, const std::vector<float>& v) {
        if (dtype == io::DType::f32) return w.add(name, std::move(shape), v);
        std::vector<std::byte> b(v.size() * 2);
        for (std::size_t i = 0; i < v.size(); ++i) {
            const std::uint16_t h = dtype == io::DType::bf16 ? float_to_bf16_bits(v[i]) : float_to_f16_bits(v[i]);
            std::memcpy(b.data() + 2 * i, &h, 2);
        }
        w.add(name, dtype, std::move(shape), b);
    };
    auto lin = [&](const std::string& module, const Linear& l, std::size_t qk_heads = 0) {
        std::vector<float> v = l.dequantize();
        if (qk_heads) v = io::permute_qk_rows_gguf_to_hf(v, qk_heads, l.in_features());
        const std::size_t out = l.out_features(), in = l.in_features();
        if (quantize && in % 32 == 0) {
            const bool gate0 = module == "model.layers.0.mlp.gate_proj";
            const auto q = mlx::quantize(v, {out, in}, gate0 ? 64 : 32, gate0 ? 8 : 4);
            w.add(module + ".weight", io::DType::u32, q.words_shape(),
                  std::as_bytes(std::span(q.words.data(), q.words.size())));
            w.add(module + ".scales", q.scales_shape(), q.scales);
            w.add(module + ".biases", q.scales_shape(), q.biases);
            return;
        }
        put(module + ".weight", {out, in}, v);
    };
    const auto& c = ref.config();
    lin("model.embed_tokens", ref.weights().embed);
    for (std::size_t i = 0; i < c.n_layers; ++i) {
        const auto& L = ref.weights().layers[i];
        const std::string p = "model.layers." + std::to_string(i) + ".";
        put(p + "input_layernorm.weight", {64}, L.attn_norm);
        put(p + "post_attention_layernorm.weight", {64}, L.ffn_norm);
        lin(p + "self_attn.q_proj", L.q, 8);
        lin(p + "self_attn.k_proj", L.k, 4);
        lin(p + "self_attn.v_proj", L.v);
        lin(p + "self_attn.o_proj", L.o);
        lin(p + "mlp.gate_proj", L.gate);
        lin(p + "mlp.up_proj", L.up);
        lin(p + "mlp.down_proj", L.down);
    }
    put("model.norm.weight", {64}, ref.weights().final_norm);
    w.write(dir / "model.safetensors");
}

TEST(Loader, HfDirectoryRotateHalfEqualsInterleavedOriginal) {
    auto ref = stories();
    const auto want = ref.logits_all(kIds);
    TempDir dir;
    write_hf_dir(ref, dir / "f32", io::DType::f32, false);
    auto m = load(dir / "f32");
    EXPECT_FALSE(m.config().rope_interleaved);
    EXPECT_LT(max_abs_diff(m.logits_all(kIds), want), 1e-5f);

    write_hf_dir(ref, dir / "bf16", io::DType::bf16, false);
    auto b = load(dir / "bf16");
    EXPECT_EQ(b.linear("model.layers.0.self_attn.q_proj")->format(), WeightFormat::bf16);
    const float db = max_abs_diff(b.logits_all(kIds), want);
    EXPECT_GT(db, 0.0f);
    EXPECT_LT(db, 0.5f);
    const auto bl = b.logits_all(kIds);
    EXPECT_EQ(Sampler::argmax(std::span(bl).last(512)), Sampler::argmax(std::span(want).last(512)));
}

TEST(Loader, MlxQuantizedDirectoryStaysPackedWithPerModuleBits) {
    auto ref = stories();
    TempDir dir;
    write_hf_dir(ref, dir / "q", io::DType::f32, true);
    auto m = load(dir / "q");
    EXPECT_EQ(m.linear("model.layers.0.mlp.gate_proj")->describe(), "mlx_affine:8:g64");
    EXPECT_EQ(m.linear("model.layers.0.mlp.up_proj")->describe(), "mlx_affine:4:g32");
    EXPECT_EQ(m.linear("model.embed_tokens")->describe(), "mlx_affine:4:g32");
    EXPECT_EQ(m.linear("model.layers.3.mlp.down_proj")->describe(), "f32");  // 172 columns: left as is
    // Same model built in memory: HF-order f32 directory with the same modules swapped in.
    write_hf_dir(ref, dir / "f", io::DType::f32, false);
    auto f = load(dir / "f");
    f.for_each_linear([&](const std::string& name, Linear& l) { l = *m.linear(name); });
    EXPECT_EQ(max_abs_diff(f.logits_all(kIds), m.logits_all(kIds)), 0.0f);
    // 4-bit weights on a 260K-parameter model: the story survives the first few words at least.
    const std::string text = decode_stories(greedy(m, {1}, 8));
    EXPECT_EQ(text.rfind("Once upon a time", 0), 0u) << text;
}

TEST(Loader, HfDirectoryErrors) {
    auto ref = stories();
    TempDir dir;
    write_hf_dir(ref, dir / "gpt", io::DType::f32, false, "gpt2");
    expect_error<config_error>([&] { (void)load(dir / "gpt"); }, {"config.json", "unknown architecture 'gpt2'"});
    write_hf_dir(ref, dir / "q", io::DType::f32, true);
    write_file(dir / "q" / "config.json", nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 172},
                                                         {"num_hidden_layers", 5}, {"num_attention_heads", 8},
                                                         {"num_key_value_heads", 4}, {"vocab_size", 512},
                                                         {"tie_word_embeddings", true}}
                                              .dump());
    expect_error<format_error>([&] { (void)load(dir / "q"); }, {"model.embed_tokens", "no quantization"});
    write_hf_dir(ref, dir / "v", io::DType::f32, false);
    write_file(dir / "v" / "config.json", nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 172},
                                                         {"num_hidden_layers", 6}, {"num_attention_heads", 8},
                                                         {"num_key_value_heads", 4}, {"vocab_size", 512},
                                                         {"tie_word_embeddings", true}}
                                              .dump());
    expect_error<format_error>([&] { (void)load(dir / "v"); }, {"model.layers.5.input_layernorm.weight", "missing"});
    write_file(dir / "v" / "config.json", nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 170},
                                                         {"num_hidden_layers", 5}, {"num_attention_heads", 8},
                                                         {"num_key_value_heads", 4}, {"vocab_size", 512},
                                                         {"tie_word_embeddings", true}}
                                              .dump());
    expect_error<shape_error>([&] { (void)load(dir / "v"); }, {"model.layers.0.mlp.gate_proj.weight", "[172, 64]", "[170, 64]"});
}

}  // namespace
}  // namespace optiq::model::test

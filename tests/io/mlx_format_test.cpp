#include "optiq/io/mlx_format.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "io_test_util.hpp"

namespace {

using namespace optiq::io;
using optiq::io::test::TempDir;
namespace fs = std::filesystem;

/// A named tensor owning its bytes.
struct Owned {
    std::string name;
    DType dtype;
    std::vector<std::size_t> shape;
    std::vector<std::byte> bytes;
    [[nodiscard]] TensorView view() const { return TensorView{name, dtype, shape, bytes}; }
};

Owned random_tensor(std::string name, DType dtype, std::vector<std::size_t> shape, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0.0f, 0.05f);
    std::vector<float> v(numel(shape));
    for (float& x : v) x = n(rng);
    v[0] = 0.4f;  // an outlier, so groups differ
    return Owned{std::move(name), dtype, std::move(shape), detail::float_bytes(v, dtype)};
}

nlohmann::json read_json(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

struct Fixture {
    std::vector<Owned> owned;
    std::vector<TensorView> views;
    std::map<std::string, int> bits;
    Fixture() {
        owned.push_back(random_tensor("model.embed_tokens.weight", DType::bf16, {16, 64}, 1));
        owned.push_back(random_tensor("model.layers.0.input_layernorm.weight", DType::bf16, {64}, 2));
        owned.push_back(random_tensor("model.layers.0.self_attn.q_proj.weight", DType::bf16, {32, 64}, 3));
        owned.push_back(random_tensor("model.layers.0.mlp.down_proj.weight", DType::bf16, {64, 48}, 4));
        owned.push_back(random_tensor("model.layers.1.self_attn.q_proj.weight", DType::bf16, {32, 128}, 5));
        owned.push_back(random_tensor("model.layers.1.self_attn.k_proj.weight", DType::bf16, {16, 128}, 6));
        for (const Owned& o : owned) views.push_back(o.view());
        bits = {{"model.embed_tokens", 8},
                {"model.layers.0.self_attn.q_proj", 4},
                {"model.layers.0.mlp.down_proj", 4},  // 48 % 32 != 0: stays bf16
                {"model.layers.1.self_attn.q_proj", 16},
                {"model.layers.1.self_attn.k_proj", 3}};
    }
};

TEST(MlxFormat, WritesQuantizedTensorsThatRoundTrip) {
    TempDir dir;
    Fixture f;
    MlxWriteOptions opt;
    opt.group_size = 32;
    opt.target_bpw = 6.0;
    opt.kl = {{"model.embed_tokens", 0.25}};
    const nlohmann::json src = {{"model_type", "llama"}, {"hidden_size", 64}};
    const MlxWriteReport r = write_mlx_model(dir / "out", f.views, src, f.bits, opt);
    EXPECT_FALSE(fs::exists(dir.path() / "out.optiq-tmp"));
    ASSERT_TRUE(fs::exists(dir / "out/model.safetensors"));
    EXPECT_FALSE(fs::exists(dir / "out/model.safetensors.index.json"));

    const SafetensorsFile file = SafetensorsFile::open(dir / "out/model.safetensors");
    EXPECT_EQ(file.metadata().at("format"), "mlx");
    // 1 norm + embed/q0/k1 x3 + down + q1 = 1 + 9 + 2.
    EXPECT_EQ(file.size(), 12u);
    for (const auto& entry : f.bits) {
        const std::string& module = entry.first;  // not a structured binding: clang 14 cannot capture one
        const int b = entry.second;
        const TensorView& src_w = *std::find_if(f.views.begin(), f.views.end(),
                                                [&](const TensorView& t) { return t.name == module + ".weight"; });
        const bool quantized = (b != 16) && src_w.shape.back() % 32 == 0;
        ASSERT_EQ(file.contains(module + ".scales"), quantized) << module;
        ASSERT_EQ(file.contains(module + ".biases"), quantized) << module;
        const TensorView& w = file.at(module + ".weight");
        if (!quantized) {
            EXPECT_EQ(w.dtype, DType::bf16);
            EXPECT_EQ(w.to_float(), src_w.to_float()) << module;
            continue;
        }
        ASSERT_EQ(w.dtype, DType::u32);
        const std::size_t rows = src_w.shape[0], cols = src_w.shape[1];
        EXPECT_EQ(w.shape, (std::vector<std::size_t>{rows, cols * static_cast<std::size_t>(b) / 32}));
        const TensorView& s = file.at(module + ".scales");
        const TensorView& z = file.at(module + ".biases");
        EXPECT_EQ(s.dtype, DType::bf16);
        EXPECT_EQ(s.shape, (std::vector<std::size_t>{rows, cols / 32}));
        optiq::mlx::QuantizedMatrix q;
        q.shape = src_w.shape;
        q.group_size = 32;
        q.bits = b;
        q.dtype = optiq::SideType::bf16;
        q.words.resize(w.numel());
        for (std::size_t i = 0; i < q.words.size(); ++i) q.words[i] = detail::load_le<std::uint32_t>(w.bytes.data() + 4 * i);
        q.scales = s.to_float();
        q.biases = z.to_float();
        const std::vector<float> deq = optiq::mlx::dequantize(q);
        // Same bytes as quantizing the source directly, and close to it: rounding gives |scale| / 2, the
        // zero-exact rule can clip the far end by up to one more half step, plus bf16 rounding of the output.
        const std::vector<float> x = src_w.to_float();
        std::vector<std::uint16_t> h(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) h[i] = optiq::float_to_bf16_bits(x[i]);
        const auto ref = optiq::mlx::quantize(std::span<const std::uint16_t>(h), optiq::SideType::bf16, src_w.shape, 32, b);
        EXPECT_EQ(q.words, ref.words) << module;
        EXPECT_EQ(q.scales, ref.scales) << module;
        EXPECT_EQ(q.biases, ref.biases) << module;
        for (std::size_t i = 0; i < x.size(); ++i) {
            const std::size_t g = (i / cols) * (cols / 32) + (i % cols) / 32;
            const float scale = std::abs(q.scales[g]);
            float absmax = 0;  // bf16 rounds s * q and then + bias: relative 2^-9 of values up to the group's range
            for (std::size_t k = g * 32; k < g * 32 + 32; ++k) absmax = std::max(absmax, std::abs(x[k]));
            ASSERT_LE(std::abs(deq[i] - x[i]), scale + absmax / 128.0f) << module << " element " << i;
        }
    }
    EXPECT_EQ(file.at("model.layers.0.input_layernorm.weight").to_float(), f.views[1].to_float());

    // config.json: source keys kept; overrides keyed by module path; default 4-bit modules not listed.
    const nlohmann::json cfg = read_json(dir / "out/config.json");
    EXPECT_EQ(cfg.at("model_type"), "llama");
    EXPECT_EQ(cfg.at("quantization"), cfg.at("quantization_config"));
    const nlohmann::json& qc = cfg.at("quantization");
    EXPECT_EQ(qc.at("group_size"), 32);
    EXPECT_EQ(qc.at("bits"), 4);
    EXPECT_EQ(qc.at("mode"), "affine");
    EXPECT_EQ(qc.at("model.embed_tokens"), (nlohmann::json{{"group_size", 32}, {"bits", 8}}));
    EXPECT_EQ(qc.at("model.layers.1.self_attn.k_proj"), (nlohmann::json{{"group_size", 32}, {"bits", 3}}));
    EXPECT_EQ(qc.at("model.layers.0.mlp.down_proj"), false);
    EXPECT_EQ(qc.at("model.layers.1.self_attn.q_proj"), false);
    EXPECT_FALSE(qc.contains("model.layers.0.self_attn.q_proj"));
    EXPECT_EQ(qc.size(), 3u + 4u);
    for (const auto& [key, value] : qc.items()) {
        if (key == "group_size" || key == "bits" || key == "mode") continue;
        EXPECT_EQ(key.find(".weight"), std::string::npos) << key;
        EXPECT_TRUE(file.contains(key + ".weight")) << key;  // a real module path
        EXPECT_EQ(file.contains(key + ".scales"), value.is_object()) << key;
    }

    // achieved bpw is over the QUANTIZED modules only (issue 5): 1024 (8) + 2048 (4) + 2048 (3) weights;
    // the two float modules (3072 + 4096 weights) are listed as unquantized instead.
    const double nominal = (1024.0 * 8 + 2048.0 * 4 + 2048.0 * 3) / 5120.0;
    EXPECT_DOUBLE_EQ(r.achieved_bpw, nominal);
    EXPECT_NEAR(nominal, 4.4, 1e-12);
    // effective: quantized modules add 2 * 16 / 32 = 1 bit per weight for scales and biases.
    EXPECT_DOUBLE_EQ(r.effective_bpw, (1024.0 * 9 + 2048.0 * 5 + 3072.0 * 16 + 4096.0 * 16 + 2048.0 * 4) / 12288.0);
    // ... and equals the bytes actually written for those modules.
    std::uint64_t bytes = 0;
    for (const TensorView& t : file.tensors())
        if (t.name != "model.layers.0.input_layernorm.weight") bytes += t.bytes.size();
    EXPECT_DOUBLE_EQ(r.effective_bpw, 8.0 * static_cast<double>(bytes) / 12288.0);

    const nlohmann::json meta = read_json(dir / "out/optiq_metadata.json");
    EXPECT_EQ(meta.at("method"), "optiq");
    EXPECT_DOUBLE_EQ(meta.at("target_bpw").get<double>(), 6.0);
    EXPECT_DOUBLE_EQ(meta.at("achieved_bpw").get<double>(), nominal);
    EXPECT_EQ(meta.at("per_layer").size(), 5u);
    EXPECT_EQ(meta.at("per_layer").at("model.embed_tokens"), (nlohmann::json{{"bits", 8}, {"kl", 0.25}}));
    EXPECT_EQ(meta.at("per_layer").at("model.layers.0.mlp.down_proj").at("bits"), 16);
    EXPECT_EQ(r.quantized.size(), 3u);
    EXPECT_EQ(r.unquantized.size(), 2u);
    EXPECT_EQ(meta.at("unquantized").size(), 2u);
}

TEST(MlxFormat, RefusesExistingDirectoryAndWeightSpelledKeys) {
    TempDir dir;
    Fixture f;
    fs::create_directory(dir / "exists");
    EXPECT_THROW(write_mlx_model(dir / "exists", f.views, nlohmann::json::object(), f.bits), optiq::config_error);
    auto bad = f.bits;
    bad["model.layers.0.self_attn.q_proj.weight"] = 4;
    try {
        write_mlx_model(dir / "a", f.views, nlohmann::json::object(), bad);
        FAIL();
    } catch (const optiq::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("module path"), std::string::npos) << e.what();
    }
    EXPECT_THROW(write_mlx_model(dir / "b", f.views, nlohmann::json::object(), {{"model.layers.9.mlp.up_proj", 4}}),
                 optiq::config_error);
    EXPECT_THROW(write_mlx_model(dir / "c", f.views, nlohmann::json::object(), {{"model.embed_tokens", 7}}),
                 optiq::config_error);
    EXPECT_FALSE(fs::exists(dir / "a"));
    EXPECT_FALSE(fs::exists(dir / "b"));
    EXPECT_FALSE(fs::exists(dir / "c"));
}

TEST(MlxFormat, ShardsWithIndexAndCastsF32) {
    TempDir dir;
    std::vector<Owned> owned = {random_tensor("model.layers.0.mlp.up_proj.weight", DType::f32, {64, 64}, 7),
                                random_tensor("model.layers.0.mlp.gate_proj.weight", DType::f32, {64, 64}, 8),
                                random_tensor("model.norm.weight", DType::f32, {64}, 9)};
    std::vector<TensorView> views;
    for (const Owned& o : owned) views.push_back(o.view());
    MlxWriteOptions opt;
    opt.dtype = DType::f16;
    opt.max_shard_bytes = 2500;  // each quantized module is 2048 + 2 * 256 bytes at 4 bits
    const auto r = write_mlx_model(dir / "m", views, {{"model_type", "llama"}},
                                   {{"model.layers.0.mlp.up_proj", 4}, {"model.layers.0.mlp.gate_proj", 4}}, opt);
    EXPECT_GE(r.shards.size(), 2u);
    ASSERT_TRUE(fs::exists(dir / "m/model.safetensors.index.json"));
    const SafetensorsModel m = SafetensorsModel::open(dir / "m");
    const TensorView* norm = m.find("model.norm.weight");
    ASSERT_NE(norm, nullptr);
    EXPECT_EQ(norm->dtype, DType::f16);
    std::vector<float> expect = views[2].to_float();
    for (float& x : expect) x = optiq::round_to_f16(x);
    EXPECT_EQ(norm->to_float(), expect);
    ASSERT_NE(m.find("model.layers.0.mlp.up_proj.scales"), nullptr);
    EXPECT_EQ(m.find("model.layers.0.mlp.up_proj.scales")->dtype, DType::f16);
    EXPECT_EQ(m.find("model.layers.0.mlp.up_proj.weight")->dtype, DType::u32);
    for (const fs::path& s : r.shards) EXPECT_EQ(SafetensorsFile::open(s).metadata().at("format"), "mlx");
    // 4-bit everywhere: no overrides at all.
    EXPECT_EQ(r.quantization.size(), 3u);
    EXPECT_DOUBLE_EQ(r.achieved_bpw, 4.0);
}

}  // namespace

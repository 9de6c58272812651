// Writes stories260K (llama2.c) as a mixed 4/8-bit MLX model directory for check_mlx_format.py (bits
// from alloc::WeightMSESensitivity + GreedyKnapsack at 5.0 bpw),
// plus a reference safetensors file holding every weight as float32 the way optiq::mlx::dequantize
// decodes it (HF row order), for the weight comparison and the NumPy forward pass.
// Usage: optiq_mlx_format_write STORIES.bin OUT_DIR REFERENCE.safetensors
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "optiq/alloc/sensitivity/weight_mse.hpp"
#include "optiq/alloc/solver/greedy.hpp"
#include "optiq/io/gguf.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/io/mlx_format.hpp"
#include "optiq/io/safetensors.hpp"

int main(int argc, char** argv) try {
    using namespace optiq;
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s STORIES.bin OUT_DIR REFERENCE.safetensors\n", argv[0]);
        return 2;
    }
    const auto ck = io::Llama2cCheckpoint::open(argv[1]);
    const io::Llama2cConfig& c = ck.config();
    constexpr std::size_t kGroup = 32;

    // HF names; q/k rows restored from llama2.c's interleaved-RoPE order to rotate-half order.
    std::vector<std::vector<float>> storage;
    std::vector<io::TensorView> tensors;
    storage.reserve(ck.size());
    for (const io::TensorView& t : ck.tensors()) {
        std::vector<float> v = t.to_float();
        const bool q = t.name.find("self_attn.q_proj") != std::string::npos;
        const bool k = t.name.find("self_attn.k_proj") != std::string::npos;
        if ((q || k) && c.rope_interleaved) v = io::permute_qk_rows_gguf_to_hf(v, q ? c.n_heads : c.n_kv_heads, c.dim);
        storage.push_back(std::move(v));
        tensors.push_back(io::TensorView{t.name, io::DType::f32, t.shape,
                                         std::as_bytes(std::span<const float>(storage.back()))});
    }

    // Mixed 4/8 bits from the allocator: weight-MSE sensitivity (no forward pass) and mlx-optiq's
    // greedy knapsack at a 5.0 bpw floor. down_proj's input (hidden_dim = 172) is not divisible by 32:
    // the sensitivity leaves it out and it stays float (`false` in config.json).
    std::vector<alloc::WeightUnit> units;
    for (const io::TensorView& t : tensors)
        if (t.rank() == 2) units.push_back({t.name.substr(0, t.name.size() - 7), t});
    const alloc::WeightMSESensitivity sens("stories260K", units, {kGroup, alloc::MseNormalization::total});
    const std::vector<int> candidates = {4, 8};
    const alloc::CostTable table = sens.measure(candidates);
    const alloc::Allocation allocation = alloc::GreedyKnapsack{}.solve(table, 5.0);
    std::map<std::string, int> bits = allocation.bit_map(table);
    for (const std::string& name : sens.skipped()) bits[name] = 16;
    std::printf("allocation: %zu units, table bpw %.4f:", table.size(), allocation.bpw);
    for (const auto& [name, b] : bits) std::printf(" %s=%d", name.c_str(), b);
    std::printf("\n");

    const nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                                   {"model_type", "llama"},
                                   {"hidden_size", c.dim},
                                   {"intermediate_size", c.hidden_dim},
                                   {"num_hidden_layers", c.n_layers},
                                   {"num_attention_heads", c.n_heads},
                                   {"num_key_value_heads", c.n_kv_heads},
                                   {"head_dim", c.head_dim()},
                                   {"rms_norm_eps", c.rms_norm_eps},
                                   {"rope_theta", c.rope_theta},
                                   {"vocab_size", c.vocab_size},
                                   {"max_position_embeddings", c.seq_len},
                                   {"tie_word_embeddings", c.tie_word_embeddings},
                                   {"torch_dtype", "float32"}};
    io::MlxWriteOptions opt;
    opt.group_size = kGroup;
    opt.default_bits = 4;
    opt.method = "optiq-interop";
    opt.target_bpw = 5.0;
    const io::MlxWriteReport r = io::write_mlx_model(argv[2], tensors, config, bits, opt);

    // Reference: read back what was written and decode it with optiq::mlx::dequantize.
    const auto written = io::SafetensorsModel::open(argv[2]);
    io::SafetensorsWriter ref;
    for (const io::TensorView& t : tensors) {
        const std::string module = t.name.substr(0, t.name.size() - 7);
        const io::TensorView* s = written.find(module + ".scales");
        if (!s) {
            ref.add(t.name, t.shape, written.find(t.name)->to_float());
            continue;
        }
        const io::TensorView& w = *written.find(t.name);
        mlx::QuantizedMatrix q;
        q.shape = t.shape;
        q.group_size = kGroup;
        q.bits = static_cast<int>(w.shape.back() * 32 / t.shape.back());
        q.dtype = SideType::f32;
        q.words.resize(w.numel());
        for (std::size_t i = 0; i < q.words.size(); ++i) q.words[i] = io::detail::load_le<std::uint32_t>(w.bytes.data() + 4 * i);
        q.scales = s->to_float();
        q.biases = written.find(module + ".biases")->to_float();
        ref.add(t.name, t.shape, mlx::dequantize(q));
    }
    ref.write(argv[3]);
    std::printf("quantized %zu modules, kept %zu, achieved_bpw %.4f, effective_bpw %.4f\n", r.quantized.size(),
                r.unquantized.size(), r.achieved_bpw, r.effective_bpw);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}

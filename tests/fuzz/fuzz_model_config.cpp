// libFuzzer target: the HF config.json reader (model::config_from_hf_json) on arbitrary text, and
// the MLX quantization parameters the loader reads from the same file. A config either loads or
// throws optiq::error; a loaded one has sizes inside kMaxConfigSize, a weight count that fits in
// 64 bits and finite rotary frequencies.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "optiq/model/config.hpp"
#include "optiq/model/loader.hpp"

namespace model = optiq::model;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    try {
        const model::ModelConfig c = model::config_from_hf_json(j, "fuzz/config.json");
        if (c.dim > model::kMaxConfigSize || c.vocab_size > model::kMaxConfigSize || c.head_dim > model::kMaxConfigSize ||
            !c.weight_elements() || c.head_dim == 0 || c.n_heads % c.n_kv_heads != 0)
            std::abort();
        if (c.head_dim <= 4096)  // the table has head_dim / 2 entries
            for (const float f : c.rope_inv_freq())
                if (!std::isfinite(f) || !(f > 0.0f)) std::abort();
        for (const int id : c.eos_token_ids)
            if (id < 0) std::abort();
    } catch (const optiq::error&) {
    }
    // "quantization" as load_safetensors_dir reads it: defaults, then per-module overrides.
    if (j.is_object()) {
        for (const char* key : {"quantization", "quantization_config"}) {
            const auto q = j.find(key);
            if (q == j.end() || !q->is_object()) continue;
            for (const auto& item : q->items()) {
                try {
                    (void)model::detail::mlx_quant_params(*q, item.key(), "fuzz/config.json");
                } catch (const optiq::error&) {
                }
            }
        }
    }
    return 0;
}

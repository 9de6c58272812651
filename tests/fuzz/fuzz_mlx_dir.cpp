// libFuzzer target: an MLX model directory's config.json and model.safetensors.index.json, read as
// model::load_safetensors_dir reads them: the model config, the "quantization" parameters of every
// module, and the index resolved against real shards (io::SafetensorsModel::open).
//
// Input: config.json text, a NUL byte, then the index text. The index is written into a scratch
// directory holding two small fixed shards (an MLX-quantized q_proj in one, f32 tensors in the
// other) and a subdirectory; anything the index names must resolve inside that directory or be an
// optiq::error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "optiq/io/safetensors.hpp"
#include "optiq/model/config.hpp"
#include "optiq/model/loader.hpp"

namespace fs = std::filesystem;
namespace io = optiq::io;

namespace {

fs::path scratch;

void remove_scratch() {
    std::error_code ec;
    fs::remove_all(scratch, ec);
}

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
    std::vector<std::byte> b(v.size() * sizeof(T));
    for (std::size_t i = 0; i < v.size(); ++i) io::detail::store_le<T>(b.data() + i * sizeof(T), v[i]);
    return b;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    scratch = fs::temp_directory_path() / ("optiq_fuzz_mlx_dir_" + std::to_string(::getpid()));
    fs::create_directories(scratch / "sub");
    std::atexit(remove_scratch);
    io::SafetensorsWriter a;
    a.set_metadata("format", "mlx");
    a.add("model.layers.0.self_attn.q_proj.weight", io::DType::u32, {4, 1}, bytes_of(std::vector<std::uint32_t>{1, 2, 3, 4}));
    a.add("model.layers.0.self_attn.q_proj.scales", io::DType::f16, {4, 1},
          bytes_of(std::vector<std::uint16_t>{0x3C00, 0x3C00, 0x3C00, 0x3C00}));
    a.add("model.layers.0.self_attn.q_proj.biases", io::DType::f16, {4, 1}, bytes_of(std::vector<std::uint16_t>{0, 0, 0, 0}));
    a.write(scratch / "model-00001-of-00002.safetensors");
    io::SafetensorsWriter b;
    b.add("model.embed_tokens.weight", {2, 2}, std::vector<float>{1, 2, 3, 4});
    b.add("model.norm.weight", {2}, std::vector<float>{1, 1});
    b.write(scratch / "model-00002-of-00002.safetensors");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t nul = input.find('\0');
    const std::string_view config_text = input.substr(0, nul);
    const std::string_view index_text = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);

    nlohmann::json quant;
    const auto cfg = nlohmann::json::parse(config_text.begin(), config_text.end(), nullptr, /*allow_exceptions=*/false);
    if (!cfg.is_discarded()) {
        try {
            (void)optiq::model::config_from_hf_json(cfg, "fuzz/config.json");
        } catch (const optiq::error&) {
        }
        if (cfg.is_object()) {
            if (auto it = cfg.find("quantization"); it != cfg.end() && it->is_object()) quant = *it;
            else if (auto it2 = cfg.find("quantization_config"); it2 != cfg.end() && it2->is_object()) quant = *it2;
        }
    }

    try {
        (void)io::SafetensorsIndex::parse(index_text, "fuzz/model.safetensors.index.json");
    } catch (const optiq::error&) {
    }
    {
        std::ofstream out(scratch / "model.safetensors.index.json", std::ios::binary | std::ios::trunc);
        out.write(index_text.data(), static_cast<std::streamsize>(index_text.size()));
    }
    try {
        const auto m = io::SafetensorsModel::open(scratch);
        for (const auto& t : m.tensors()) {
            if (t.bytes.size() != t.numel() * io::dtype_size(t.dtype)) std::abort();
            (void)t.to_float();
            const std::string_view name = t.name;
            if (name.size() > 7 && name.substr(name.size() - 7) == ".scales") {
                try {
                    (void)optiq::model::detail::mlx_quant_params(quant, std::string(name.substr(0, name.size() - 7)),
                                                                 "fuzz/config.json");
                } catch (const optiq::error&) {
                }
            }
        }
    } catch (const optiq::error&) {
    }
    return 0;
}

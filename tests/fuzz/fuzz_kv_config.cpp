// libFuzzer target: kv_config.json (kv::parse_kv_config) on arbitrary text. A file either parses or
// throws optiq::error; a parsed one writes out (kv::to_json) and reads back to the same config.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "optiq/kv/kv_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const auto cfg = optiq::kv::parse_kv_config(text, "fuzz/kv_config.json");
        for (const auto& l : cfg.layers) {
            if (l.layer_idx < 0 || l.key_bits() < 0 || l.key_bits() > optiq::kv::kv_max_bits || l.value_bits() < 0 ||
                l.value_bits() > optiq::kv::kv_max_bits || l.group_size == 0)
                std::abort();
        }
        (void)cfg.mean_bits();
        if (optiq::kv::parse_kv_config(optiq::kv::to_json(cfg), "round trip") != cfg) std::abort();
    } catch (const optiq::error&) {
    }
    return 0;
}

// libFuzzer target: optiq::io::GgufFile on arbitrary bytes, then metadata accessors and
// dequantization of every (small enough) tensor. Only optiq::error may escape the parser.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "optiq/io/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> copy(size);
    for (std::size_t i = 0; i < size; ++i) copy[i] = std::byte{data[i]};
    try {
        const auto f = optiq::io::GgufFile::from_bytes(std::move(copy), "fuzz.gguf");
        const auto& all = f.metadata();
        for (const auto& [key, value] : all.entries()) {
            try {
                (void)all.get_int(key);
            } catch (const optiq::error&) {
            }
            if (const auto* a = std::get_if<optiq::io::GgufArray>(&value)) (void)a->size();
        }
        (void)f.architecture();
        double sum = 0;
        for (const auto& t : f.tensors()) {
            const auto tr = optiq::io::ggml_type_traits(static_cast<std::uint32_t>(t.type));
            if (!tr || !tr->dequantizable || t.numel() > (1u << 16)) continue;
            for (float x : t.to_float()) sum += static_cast<double>(x);
        }
        return sum == 12345.0 ? 0 : 0;
    } catch (const optiq::error&) {
        return 0;
    }
}

// libFuzzer target: optiq::io::GgufFile on arbitrary bytes, then metadata accessors and
// dequantization of every tensor. Only optiq::error may escape the parser. Dims of any size are
// allowed (2^62 elements included): the parser must prove each tensor's bytes lie in the file, so a
// parsed tensor holds exactly numel / block_size * type_size bytes and dequantizing it allocates
// at most a few times the input's size. A tensor that claims more elements than its bytes hold
// aborts here before anything is allocated for it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
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
            if (!tr) std::abort();  // the parser accepted an unknown type
            const auto need = optiq::io::ggml_row_bytes(t.type, t.numel());
            if (!need || *need != t.bytes.size() || t.numel() / tr->block_size > size) std::abort();
            if (!tr->dequantizable) continue;
            for (float x : t.to_float()) sum += static_cast<double>(x);
        }
        return sum == 12345.0 ? 0 : 0;
    } catch (const optiq::error&) {
        return 0;
    }
}

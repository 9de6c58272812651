// Dequantizes GGUF data with optiq for check_gguf_dequant.py.
//
// usage: optiq_gguf_dequant_dump FILE.gguf
//          every tensor in file order, to stdout: uint32 name length, name, uint64 element count,
//          the elements as little-endian float32 (row-major, HF order of dims)
//        optiq_gguf_dequant_dump --raw TYPE_ID COUNT
//          stdin: raw blocks of ggml type TYPE_ID; stdout: COUNT float32
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "optiq/io/gguf.hpp"

namespace {

void put(const void* p, std::size_t n) {
    if (n != 0 && std::fwrite(p, 1, n, stdout) != n) throw std::runtime_error("write to stdout failed");
}

int dump_file(const char* path) {
    const auto f = optiq::io::GgufFile::open(path);
    std::vector<float> buf;
    for (const auto& t : f.tensors()) {
        buf.resize(t.numel());
        t.to_float(buf);
        const auto len = static_cast<std::uint32_t>(t.name.size());
        const std::uint64_t count = buf.size();
        put(&len, 4);
        put(t.name.data(), t.name.size());
        put(&count, 8);
        put(buf.data(), buf.size() * 4);
    }
    return 0;
}

int dump_raw(const char* type_id, const char* count) {
    std::vector<char> in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::vector<float> out(std::stoull(count));
    const auto type = static_cast<optiq::io::GgmlType>(std::stoul(type_id));
    optiq::io::dequantize(type, std::as_bytes(std::span(in)), out);
    put(out.data(), out.size() * 4);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        std::ios::sync_with_stdio(false);
        if (argc == 2) return dump_file(argv[1]);
        if (argc == 4 && std::strcmp(argv[1], "--raw") == 0) return dump_raw(argv[2], argv[3]);
        std::fprintf(stderr, "usage: %s FILE.gguf | --raw TYPE_ID COUNT\n", argv[0]);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "optiq_gguf_dequant_dump: %s\n", e.what());
        return 1;
    }
}

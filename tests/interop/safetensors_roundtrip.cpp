// Reads a safetensors file with optiq and writes it back with optiq's writer, for
// check_safetensors_mlx.py. Prints one JSON line per tensor: name, dtype, shape, values as floats.
//
// usage: optiq_safetensors_roundtrip IN.safetensors OUT.safetensors
#include <cstdio>
#include <exception>
#include <iostream>

#include <nlohmann/json.hpp>

#include "optiq/io/safetensors.hpp"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s IN.safetensors OUT.safetensors\n", argv[0]);
        return 2;
    }
    try {
        const auto in = optiq::io::SafetensorsFile::open(argv[1]);
        optiq::io::SafetensorsWriter w;
        for (const auto& [k, v] : in.metadata()) w.set_metadata(k, v);
        for (const auto& t : in.tensors()) {
            w.add(t);
            nlohmann::json j = {{"name", t.name},
                                {"dtype", optiq::io::dtype_name(t.dtype)},
                                {"shape", t.shape},
                                {"values", t.to_float()}};
            std::cout << j.dump() << "\n";
        }
        w.write(argv[2]);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "optiq_safetensors_roundtrip: %s\n", e.what());
        return 1;
    }
}

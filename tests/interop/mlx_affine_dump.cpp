// Runs optiq::mlx::quantize / dequantize on raw matrices for check_mlx_quantize.py.
//
// usage: optiq_mlx_affine_dump MANIFEST
// Each manifest line: NAME DTYPE SHAPE BITS GROUP INPUT OUTPUT
//   DTYPE  f32 | f16 | bf16; SHAPE comma-separated dims (e.g. 2,3,256);
//   INPUT  raw little-endian matrix in DTYPE (f16/bf16 as 16-bit patterns);
//   OUTPUT receives words (uint32) | scales | biases | dequantized, back to back, the last three in DTYPE.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "optiq/core/error.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"

namespace {

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class T>
std::vector<T> as_vector(const std::vector<char>& bytes) {
    if (bytes.size() % sizeof(T) != 0) throw std::runtime_error("input size is not a whole number of elements");
    std::vector<T> v(bytes.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
}

template <class T>
void put(std::ofstream& out, const std::vector<T>& v) {
    out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

void put_values(std::ofstream& out, const std::vector<float>& v, optiq::SideType t) {
    if (t == optiq::SideType::f32) {
        put(out, v);
    } else {
        put(out, optiq::mlx::to_bits16(v, t));
    }
}

void run_line(const std::string& line) {
    std::istringstream ls(line);
    std::string name, dtype, shape_s, in_path, out_path;
    int bits = 0;
    std::size_t group = 0;
    if (!(ls >> name >> dtype >> shape_s >> bits >> group >> in_path >> out_path))
        throw std::runtime_error("malformed manifest line: " + line);
    std::vector<std::size_t> shape;
    std::istringstream ss(shape_s);
    for (std::string d; std::getline(ss, d, ',');) shape.push_back(static_cast<std::size_t>(std::stoull(d)));

    optiq::SideType t = optiq::SideType::f32;
    if (dtype == "f16") t = optiq::SideType::f16;
    else if (dtype == "bf16") t = optiq::SideType::bf16;
    else if (dtype != "f32") throw std::runtime_error("unknown dtype " + dtype);

    const auto bytes = read_file(in_path);
    const optiq::mlx::QuantizedMatrix q = t == optiq::SideType::f32
        ? optiq::mlx::quantize(as_vector<float>(bytes), shape, group, bits)
        : optiq::mlx::quantize(as_vector<std::uint16_t>(bytes), t, shape, group, bits);
    const auto deq = optiq::mlx::dequantize(q);

    std::ofstream out(out_path, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write " + out_path);
    put(out, q.words);
    put_values(out, q.scales, t);
    put_values(out, q.biases, t);
    put_values(out, deq, t);
    if (!out) throw std::runtime_error("write failed: " + out_path);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " MANIFEST\n";
        return 2;
    }
    std::ifstream manifest(argv[1]);
    if (!manifest) {
        std::cerr << "cannot open manifest " << argv[1] << "\n";
        return 2;
    }
    std::size_t n = 0;
    for (std::string line; std::getline(manifest, line);) {
        if (line.empty()) continue;
        try {
            run_line(line);
            ++n;
        } catch (const std::exception& e) {
            std::cerr << "optiq_mlx_affine_dump: " << e.what() << "\n  in line: " << line << "\n";
            return 1;
        }
    }
    std::cout << "optiq_mlx_affine_dump: " << n << " cases\n";
    return 0;
}

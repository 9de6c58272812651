// A user's program: builds against optiq through find_package or add_subdirectory.
#include <optiq/optiq.hpp>

#include <cstdio>
#include <vector>

int main() {
    optiq::Rng rng(1);
    std::vector<float> x(64);
    for (auto& v : x) v = static_cast<float>(rng.normal());
    // A custom combination: sphere-law Lloyd-Max, randomized Hadamard, MLX bit stream, 3 bits.
    optiq::Quantizer q(optiq::LloydMax(optiq::SphereCoordinateDensity(64), 3), optiq::RandomizedHadamard(64, 7),
                       optiq::MlxStream<3>());
    const auto enc = q.encode(x);
    std::vector<float> y(64);
    q.decode(enc, y);
    double err = 0, norm = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        err += (x[i] - y[i]) * (x[i] - y[i]);
        norm += x[i] * x[i];
    }
    std::printf("relative error %.4f\n", err / norm);
    return err / norm < 0.1 ? 0 : 1;
}

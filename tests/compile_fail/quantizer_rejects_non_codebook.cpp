// A Quantizer whose first slot is not a Codebook must be rejected by the concept at the call site.
// expect: Codebook
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/identity.hpp"
#include "optiq/quant/quantizer.hpp"
#include "optiq/codebook/sign.hpp"

#ifdef OPTIQ_COMPILE_FAIL_CONTROL
using Slot = optiq::Sign;
#else
struct NotACodebook {
    int bits() const { return 4; }
};
using Slot = NotACodebook;
#endif

int main() {
    optiq::Quantizer<Slot, optiq::Identity, optiq::MlxStream<1>>* q = nullptr;
    return q == nullptr ? 0 : 1;
}

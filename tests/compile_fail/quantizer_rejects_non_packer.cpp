// A Quantizer whose third slot is not a Packer must be rejected by the concept.
// expect: Packer
#include "optiq/codebook/sign.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/identity.hpp"
#include "optiq/quant/quantizer.hpp"

#ifdef OPTIQ_COMPILE_FAIL_CONTROL
using Slot = optiq::MlxStream<1>;
#else
using Slot = optiq::Identity;  // a preconditioner in the packer's slot
#endif

int main() {
    optiq::Quantizer<optiq::Sign, optiq::Identity, Slot>* q = nullptr;
    return q == nullptr ? 0 : 1;
}

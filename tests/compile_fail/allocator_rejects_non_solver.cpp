// An Allocator whose solver slot is not a Solver must be rejected by the concept at the call site.
// expect: Solver
#include "optiq/alloc/allocator.hpp"
#include "optiq/alloc/sensitivity/key_norm.hpp"
#include "optiq/alloc/solver/waterfill.hpp"

#ifdef OPTIQ_COMPILE_FAIL_CONTROL
using Slot = optiq::alloc::ReverseWaterFilling;
#else
using Slot = optiq::alloc::KeyNormSensitivity;  // a sensitivity in the solver's slot
#endif

int main() {
    optiq::alloc::Allocator<optiq::alloc::KeyNormSensitivity, Slot>* a = nullptr;
    return a == nullptr ? 0 : 1;
}

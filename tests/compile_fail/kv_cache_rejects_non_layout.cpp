// A KVCache whose layout slot is not a KVLayout must be rejected by the concept at the call site.
// expect: KVLayout
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/layouts/paged.hpp"
#include "optiq/kv/policies.hpp"

#ifdef OPTIQ_COMPILE_FAIL_CONTROL
using Slot = optiq::kv::PagedLayout;
#else
using Slot = optiq::kv::FullPrecisionPolicy<optiq::SideType::f32>;  // a policy in the layout's slot
#endif

int main() {
    optiq::kv::KVCache<optiq::kv::FullPrecisionPolicy<optiq::SideType::f32>, Slot>* c = nullptr;
    return c == nullptr ? 0 : 1;
}

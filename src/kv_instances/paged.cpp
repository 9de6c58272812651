// make_kv_cache<PagedLayout> compiled once for optiq's own programs (see the end of
// include/optiq/kv/any_kv_cache.hpp); they build with OPTIQ_KV_EXTERN_TEMPLATES.
#include "optiq/kv/any_kv_cache.hpp"

OPTIQ_KV_INSTANTIATE_MAKE_KV_CACHE(optiq::kv::PagedLayout)

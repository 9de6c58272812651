#pragma once
// KV-attention kernels for every architecture tag (arch.hpp): kv_scalar.hpp (the reference and
// the fallback of codings a tag has no kernel for), kv_avx2.hpp, kv_avx512.hpp, kv_neon.hpp. A caller picks
// the tag once per attention call (arch::dispatch) and calls
//   dot_run(tag, coding, records, token_scale, q, n, out, out_stride, add)
//   axpy_run(tag, coding, records, token_scale, w, w_stride, n, acc, acc_stride)
//   softmax_row(tag, row, n, scale)
// overload resolution finds the nearest tag with a kernel (derived-to-base along the tag chain).
// kv_types.hpp describes the record codings.
#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/simd/kv_avx2.hpp"
#include "optiq/backend/simd/kv_avx512.hpp"
#include "optiq/backend/simd/kv_neon.hpp"
#include "optiq/backend/simd/kv_scalar.hpp"
#include "optiq/backend/simd/kv_types.hpp"

#pragma once
// Every KV policy: the generic Policy<KeyCodec, ValueCodec> and the named codecs/policies.
#include "optiq/kv/policies/full_precision.hpp"
#include "optiq/kv/policies/kivi.hpp"
#include "optiq/kv/policies/mlx_affine.hpp"
#include "optiq/kv/policies/polar.hpp"
#include "optiq/kv/policies/policy.hpp"
#include "optiq/kv/policies/qjl.hpp"
#include "optiq/kv/policies/quantizer_codec.hpp"
#include "optiq/kv/policies/rvq.hpp"
#include "optiq/kv/policies/turboquant.hpp"

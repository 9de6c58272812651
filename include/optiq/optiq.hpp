#pragma once
// optiq umbrella header: the whole public library. Include single headers instead to keep
// compile times down; each one is self-contained.

// core
#include "optiq/core/error.hpp"
#include "optiq/core/half.hpp"
#include "optiq/core/progress.hpp"
#include "optiq/core/rng.hpp"
#include "optiq/core/threads.hpp"

// backends
#include "optiq/backend/simd/arch.hpp"
#include "optiq/backend/tags.hpp"

// policy slots
#include "optiq/codebook/affine.hpp"
#include "optiq/codebook/concepts.hpp"
#include "optiq/codebook/densities.hpp"
#include "optiq/codebook/lloyd_max.hpp"
#include "optiq/codebook/sign.hpp"
#include "optiq/pack/aligned.hpp"
#include "optiq/pack/concepts.hpp"
#include "optiq/pack/mlx_stream.hpp"
#include "optiq/precondition/concepts.hpp"
#include "optiq/precondition/haar.hpp"
#include "optiq/precondition/hadamard.hpp"
#include "optiq/precondition/identity.hpp"

// quantizers and the method zoo
#include "optiq/quant/any_quantizer.hpp"
#include "optiq/quant/concepts.hpp"
#include "optiq/quant/encoded.hpp"
#include "optiq/quant/evaluate.hpp"
#include "optiq/quant/factory.hpp"
#include "optiq/quant/methods/kivi.hpp"
#include "optiq/quant/methods/mlx_affine.hpp"
#include "optiq/quant/methods/polar.hpp"
#include "optiq/quant/methods/qjl.hpp"
#include "optiq/quant/methods/rvq.hpp"
#include "optiq/quant/methods/turboquant.hpp"
#include "optiq/quant/quantizer.hpp"

// file formats
#include "optiq/io/dtype.hpp"
#include "optiq/io/ggml_quants.hpp"
#include "optiq/io/gguf.hpp"
#include "optiq/io/llama2c.hpp"
#include "optiq/io/mmap.hpp"
#include "optiq/io/safetensors.hpp"

// KV cache
#include "optiq/kv/any_kv_cache.hpp"
#include "optiq/kv/attention.hpp"
#include "optiq/kv/concepts.hpp"
#include "optiq/kv/evaluate.hpp"
#include "optiq/kv/kv_cache.hpp"
#include "optiq/kv/kv_config.hpp"
#include "optiq/kv/policies.hpp"

// tokenizers and chat templates
#include "optiq/tokenizer/any_tokenizer.hpp"
#include "optiq/tokenizer/bpe.hpp"
#include "optiq/tokenizer/chat_template.hpp"
#include "optiq/tokenizer/sentencepiece.hpp"

// model runtime
#include "optiq/model/config.hpp"
#include "optiq/model/generate.hpp"
#include "optiq/model/loader.hpp"
#include "optiq/model/perplexity.hpp"
#include "optiq/model/sampling.hpp"
#include "optiq/model/transformer.hpp"
#include "optiq/model/weights.hpp"

// allocation
#include "optiq/alloc/allocator.hpp"
#include "optiq/alloc/concepts.hpp"
#include "optiq/alloc/sensitivity/key_norm.hpp"
#include "optiq/alloc/sensitivity/weight_mse.hpp"
#include "optiq/alloc/solver/exact.hpp"
#include "optiq/alloc/solver/greedy.hpp"
#include "optiq/alloc/solver/waterfill.hpp"
#include "optiq/alloc/table.hpp"
#include "optiq/io/mlx_format.hpp"

#pragma once
// Flags every model-running driver shares (optiq-generate, optiq-eval, optiq-kv-cache, optiq-serve):
// how GGUF block matrices are held and which activation rule the matmul uses. Declared once here.
#include <CLI/CLI.hpp>

#include <string>

#include <optiq/model/loader.hpp>

namespace optiq_drivers {

struct EngineFlags {
    std::string gguf_weights = "in-place", activations = "auto";
    bool keep_quantized = false;  ///< deprecated spelling of --gguf-weights mlx

    /// Adds --gguf-weights, --activations and (when `deprecated`) --keep-quantized to `app`.
    void add(CLI::App& app, bool deprecated = true) {
        app.add_option("--gguf-weights", gguf_weights,
                       "GGUF block-type matrices: in-place (used where they lie in the file), f32 (dequantized at "
                       "load), mlx (Q4_0/Q4_1/Q8_0 as MLX affine)")
            ->check(CLI::IsMember({"in-place", "f32", "mlx"}));
        app.add_option("--activations", activations,
                       "matmul activations: auto (int8 for GGUF blocks), exact (f32, the reference), int8")
            ->check(CLI::IsMember({"auto", "exact", "int8"}));
        if (deprecated) app.add_flag("--keep-quantized", keep_quantized, "deprecated: --gguf-weights mlx");
    }

    /// Sets the load options these flags control.
    void apply(optiq::model::LoadOptions& lo) const {
        lo.gguf_weights = keep_quantized ? optiq::model::GgufWeights::mlx_affine
                                         : optiq::model::gguf_weights_from_name(gguf_weights, "--gguf-weights");
        lo.transformer.activations = optiq::model::activations_from_name(activations, "--activations");
    }
};

}  // namespace optiq_drivers

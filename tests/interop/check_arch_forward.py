#!/usr/bin/env python3
"""optiq's runtime against mlx-lm's own model classes on tiny random-weight models, one per
architecture feature that no real checkpoint in the other interop tests covers cheaply:

  qwen3        per-head q/k RMSNorm before RoPE, head_dim != hidden/heads, GQA, untied head
  qwen2        q/k/v projection biases, GQA, tied head
  llama3rope   Llama with rope_scaling {"rope_type": "llama3"} (original_max_position small enough
               that some frequencies are divided by `factor`, some smoothed, some kept)

Each model is written in HF layout (config.json + model.safetensors, f32, via mx.save_safetensors)
from seeded NumPy weights; mlx-lm builds it with ModelArgs.from_dict + Model + load_weights and
gives the logits of every position of a few token sequences. optiq (--dump, arch_forward_dump.cpp)
loads the same directory and gives those logits twice: a chunked prefill, and a prefill of one
token followed by decode steps through its KV cache. Both must match mlx-lm to
max |error| < 1e-4 x (logit range) at every position.

Exit 77 (skip) when numpy, mlx or mlx-lm is missing; under CI=true a missing package is a failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import mlx.core as mx
    from mlx.utils import tree_flatten
    import mlx_lm.models.llama as mlx_llama
    import mlx_lm.models.qwen2 as mlx_qwen2
    import mlx_lm.models.qwen3 as mlx_qwen3
except ImportError as e:
    print(f"{e}: skipping")
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

TOL = 1e-4

COMMON = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=96, num_attention_heads=4,
              num_key_value_heads=2, rms_norm_eps=1e-6, vocab_size=97, max_position_embeddings=256)

CONFIGS = {
    "qwen3": (mlx_qwen3, dict(COMMON, model_type="qwen3", head_dim=32, rope_theta=1000000.0,
                              tie_word_embeddings=False)),
    "qwen2": (mlx_qwen2, dict(COMMON, model_type="qwen2", rope_theta=10000.0, tie_word_embeddings=True)),
    "llama3rope": (mlx_llama, dict(COMMON, model_type="llama", rope_theta=10000.0, tie_word_embeddings=False,
                                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 64})),
}

SEQUENCES = [[1, 5, 9, 33, 2, 96, 0, 17, 44, 3, 70, 8, 61],
             [7],
             [50, 50, 50, 12, 81, 4, 4, 90, 31, 66, 5, 23, 77, 19, 2, 88, 40, 9, 13, 55, 71]]


def build(name, module, cfg, out_dir, seed):
    """Random weights for mlx-lm's parameter tree, saved in HF layout; returns the mlx model."""
    args = module.ModelArgs.from_dict(cfg)
    model = module.Model(args)
    rng = np.random.default_rng(seed)
    weights = {}
    for key, p in tree_flatten(model.parameters()):
        shape = tuple(p.shape)
        if key.endswith("norm.weight"):
            w = 1.0 + 0.2 * rng.standard_normal(shape)  # RMSNorm gains near 1, not all equal
        elif key.endswith(".bias"):
            w = 0.5 * rng.standard_normal(shape)
        else:
            w = rng.standard_normal(shape) / np.sqrt(shape[-1])
        weights[key] = mx.array(w.astype(np.float32))
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    os.makedirs(out_dir, exist_ok=True)
    # With metadata, as mlx-lm's own save_weights writes it: without, mx.save_safetensors writes
    # "__metadata__": null, which optiq's reader rejects (reported; the Rust reference accepts it).
    mx.save_safetensors(os.path.join(out_dir, "model.safetensors"), weights, metadata={"format": "mlx"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return model


def mlx_logits(model, ids):
    out = model(mx.array([ids]))
    mx.eval(out)
    return np.array(out[0].astype(mx.float32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="optiq_arch_forward_dump")
    a = ap.parse_args()
    failures = checks = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (module, cfg)) in enumerate(CONFIGS.items()):
            d = os.path.join(tmp, name)
            model = build(name, module, cfg, d, seed=1234 + i)
            for j, ids in enumerate(SEQUENCES):
                want = mlx_logits(model, ids)
                out = os.path.join(tmp, f"{name}_{j}.f32")
                chunk = 1 + (j % 4)  # chunked prefill of 1..4 tokens per step
                r = subprocess.run([a.dump, d, ",".join(map(str, ids)), str(chunk), out], capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"FAIL {name} seq {j}: dump exited {r.returncode}: {r.stderr.strip()}")
                    failures += 2
                    checks += 2
                    continue
                got = np.fromfile(out, dtype=np.float32).reshape(2, len(ids), cfg["vocab_size"])
                rng_ = float(want.max() - want.min())
                for k, what in enumerate(["prefill", "decode"]):
                    err = float(np.abs(got[k] - want).max()) / rng_
                    ok = err < TOL
                    failures += not ok
                    checks += 1
                    print(f"{'ok  ' if ok else 'FAIL'} {name:10s} seq {j} ({len(ids):2d} tokens, chunk {chunk}) {what:7s}: "
                          f"max|err|/range = {err:.2e} (range {rng_:.2f}; {r.stdout.strip()})")
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

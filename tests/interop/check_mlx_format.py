#!/usr/bin/env python3
"""optiq::io::write_mlx_model against stock mlx-lm.

optiq_mlx_format_write turns stories260K (llama2.c; q/k rows restored to HF rotate-half order) into a
mixed 4/8-bit MLX model directory (bits from optiq::alloc weight-MSE + greedy knapsack at 5.0 bpw;
group 32; down_proj stays float: 172 % 32 != 0), plus a float32
file of optiq's dequantized weights. Then:
1. mlx_lm.utils.load_model loads the directory (strict): every module listed in config.json
   "quantization" with a dict is an nn.QuantizedLinear / QuantizedEmbedding with those bits and group
   size, modules at the default bits are quantized at the default, `false` ones stay float, and
   weight / scales / biases equal the bytes optiq wrote;
2. mx.dequantize of the loaded tensors equals optiq::mlx::dequantize bit for bit;
3. the loaded model's logits on a few token sequences match a NumPy float32 forward pass (HF
   LlamaForCausalLM, rotate-half RoPE, tied head) over optiq's dequantized weights.

Exit 77 (skip) when mlx-lm is missing; under CI=true a missing package is a failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.utils import load_model
except ImportError as e:
    print(f"{e}: skipping (pip install 'mlx-lm[cpu]')")
    sys.exit(1 if os.environ.get("CI") == "true" else 77)


def np_forward(w, cfg, ids):
    d, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", d // nh)
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    T = len(ids)

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):  # [H, T, hd], rotate-half
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    x = w["model.embed_tokens.weight"][ids].astype(np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nh, hd).transpose(1, 0, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(T, nh * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writer", required=True)
    ap.add_argument("--stories", required=True)
    args = ap.parse_args()
    if not Path(args.stories).exists():
        print(f"{args.stories} not found: skipping")
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        out, ref_path = Path(tmp) / "stories260K-mlx", Path(tmp) / "reference.safetensors"
        r = subprocess.run([args.writer, args.stories, str(out), str(ref_path)], capture_output=True, text=True)
        print(r.stdout.strip(), r.stderr.strip())
        if r.returncode != 0:
            print("writer failed")
            return 1
        cfg = json.loads((out / "config.json").read_text())
        qc = cfg["quantization"]
        default = (qc["bits"], qc["group_size"])
        file_w = {}
        for f in sorted(out.glob("model*.safetensors")):
            file_w.update(mx.load(str(f)))
        ref = {k: np.array(v) for k, v in mx.load(str(ref_path)).items()}

        model, _ = load_model(out, strict=True)
        n_q = n_f = 0
        for name, m in model.named_modules():
            if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
                n_q += 1
                want = qc.get(name, None)
                exp = default if want is None else (want["bits"], want["group_size"])
                if want is False:
                    failures.append(f"{name}: override false but loaded quantized")
                if (m.bits, m.group_size) != exp:
                    failures.append(f"{name}: bits/group {(m.bits, m.group_size)} != {exp}")
                for t in ("weight", "scales", "biases"):
                    a, b = np.array(getattr(m, t)), np.array(file_w[f"{name}.{t}"])
                    if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                        failures.append(f"{name}.{t}: loaded tensor differs from the file")
                deq = np.array(mx.dequantize(m.weight, m.scales, m.biases, group_size=m.group_size, bits=m.bits))
                if not np.array_equal(deq, ref[f"{name}.weight"]):
                    err = np.abs(deq - ref[f"{name}.weight"]).max()
                    failures.append(f"{name}: mx.dequantize != optiq::mlx::dequantize (max err {err})")
            elif isinstance(m, (nn.Linear, nn.Embedding)):
                n_f += 1
                if qc.get(name, None) is not False:
                    failures.append(f"{name}: loaded float but not marked false in config")
                if not np.array_equal(np.array(m.weight), ref[f"{name}.weight"]):
                    failures.append(f"{name}: float weight differs")
        for key, val in qc.items():
            if key in ("bits", "group_size", "mode"):
                continue
            if key.endswith(".weight") or f"{key}.weight" not in file_w:
                failures.append(f"override key {key} is not a module path of the file")
        print(f"mlx-lm loaded {n_q} quantized and {n_f} float Linear/Embedding modules; "
              f"{len(qc) - 3} overrides in config.json")

        rng = np.random.default_rng(0)
        seqs = [[1], [1, 403, 407, 261, 378], list(rng.integers(0, cfg["vocab_size"], 40))]
        worst = 0.0
        for ids in seqs:
            ids = [int(i) for i in ids]
            got = np.array(model(mx.array([ids]))[0].astype(mx.float32))
            want = np_forward(ref, cfg, np.array(ids))
            err = np.abs(got - want).max() / (want.max() - want.min())
            worst = max(worst, err)
            agree = int((got.argmax(-1) == want.argmax(-1)).sum())
            print(f"T={len(ids)}: max |logit err| / range = {err:.3g}, argmax agree {agree}/{len(ids)}")
            if err > 1e-4:
                failures.append(f"logits T={len(ids)}: relative error {err:.3g} > 1e-4")

        # 4. The q/k row permutation: the quantized model against llama2.c's own float forward
        # (interleaved RoPE on the file's rows). Without the permutation the argmax agreement collapses.
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from check_model_forward import RunC, load_llama2c
        fcfg, fw = load_llama2c(args.stories)
        run = RunC(fcfg, fw)
        ids = [int(i) for i in seqs[2]]
        want = np.stack([run.forward(t, p) for p, t in enumerate(ids)])
        got = np.array(model(mx.array([ids]))[0].astype(mx.float32))
        err = np.abs(got - want).max() / (want.max() - want.min())
        agree = int((got.argmax(-1) == want.argmax(-1)).sum())
        print(f"vs llama2.c float forward (T={len(ids)}): max |logit err| / range = {err:.3g}, argmax agree {agree}/{len(ids)}")
        # Measured: err 0.113, 30/40 with the permutation (4-bit noise on a 260K model); without it
        # the writer's output is a different model (see the q/k row check below for the direct test).
        if agree < 0.6 * len(ids) or err > 0.25:
            failures.append(f"quantized model too far from the float llama2.c forward: err {err:.3g}, agree {agree}")
        # Direct: optiq's dequantized q/k rows are near the file's rows in HF order, not in file order.
        hd = fcfg["dim"] // fcfg["n_heads"]
        for l in range(fcfg["n_layers"]):
            for proj, heads, key in (("q_proj", fcfg["n_heads"], "wq"), ("k_proj", fcfg["n_kv"], "wk")):
                raw = np.asarray(fw[key][l], dtype=np.float32)
                out_dim, in_dim = raw.shape
                hf = raw.reshape(heads, hd // 2, 2, in_dim).swapaxes(1, 2).reshape(out_dim, in_dim)
                deq = ref[f"model.layers.{l}.self_attn.{proj}.weight"]
                near, far = np.abs(deq - hf).max(), np.abs(deq - raw).max()
                if not near < 0.25 * far:
                    failures.append(f"layer {l} {proj}: rows not in HF order (err {near:.3g} vs unpermuted {far:.3g})")
    for f in failures:
        print("FAIL", f)
    print("OK" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

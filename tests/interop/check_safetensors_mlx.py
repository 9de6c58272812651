#!/usr/bin/env python3
"""Cross-check optiq's safetensors reader and writer against MLX's (mx.save_safetensors / mx.load).

MLX writes a file with tensors of every dtype it has and metadata {"format": "mlx"}; optiq reads it
(tests/interop/safetensors_roundtrip.cpp), reports each tensor's values as floats, and writes every
tensor back with optiq's writer; MLX then loads optiq's file. Checked: names, dtypes, shapes and
bytes survive both directions exactly, the metadata too, and optiq's float conversion of each dtype
equals numpy's.

Exit codes: 0 all equal; 1 a mismatch or error; 77 mlx / numpy not importable (skip), unless
CI=true, where that is a failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77


def skip(msg):
    if os.environ.get("CI") == "true":
        print(f"check_safetensors_mlx: {msg} (CI=true, so this is a failure)", file=sys.stderr)
        sys.exit(1)
    print(f"check_safetensors_mlx: {msg} -- skipping", file=sys.stderr)
    sys.exit(SKIP)


try:
    import numpy as np
    import mlx.core as mx
except ImportError:
    skip("mlx or numpy is not importable; install them with: pip install 'mlx[cpu]' numpy")

DTYPE_NAMES = {
    mx.bool_: "BOOL", mx.uint8: "U8", mx.int8: "I8", mx.uint16: "U16", mx.int16: "I16",
    mx.float16: "F16", mx.bfloat16: "BF16", mx.uint32: "U32", mx.int32: "I32", mx.float32: "F32",
    mx.uint64: "U64", mx.int64: "I64",
}


def arrays():
    rng = np.random.default_rng(7)
    a = {
        "model.layers.0.self_attn.q_proj.weight": mx.array(rng.normal(0, 0.02, (8, 16)).astype(np.float32)),
        "model.layers.0.self_attn.q_proj.scales": mx.array(rng.normal(0, 1, (8, 2)).astype(np.float16)),
        "model.layers.0.self_attn.q_proj.biases": mx.array(rng.normal(0, 1, (8, 2)).astype(np.float32)).astype(mx.bfloat16),
        "model.layers.0.self_attn.q_proj.packed": mx.array(rng.integers(0, 2**32, (8, 2), dtype=np.uint32)),
        "i8": mx.array(rng.integers(-128, 128, (5,), dtype=np.int8)),
        "u8": mx.array(rng.integers(0, 256, (3, 1), dtype=np.uint8)),
        "i16": mx.array(np.array([-32768, 7], dtype=np.int16)),
        "u16": mx.array(np.array([65535, 1], dtype=np.uint16)),
        "i32": mx.array(np.array([-(2**31), 3], dtype=np.int32)),
        "i64": mx.array(np.array([-(2**40), 3], dtype=np.int64)),
        "u64": mx.array(np.array([2**40, 3], dtype=np.uint64)),
        "mask": mx.array([True, False, True]),
        "scalar": mx.array(2.5),
        "empty": mx.zeros((0, 4)),
    }
    return a


def as_numpy(x):
    if x.dtype == mx.bfloat16:
        return np.array(x.astype(mx.float32))
    return np.array(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roundtrip", required=True, help="path of optiq_safetensors_roundtrip")
    args = ap.parse_args()
    failures = []
    src = arrays()
    with tempfile.TemporaryDirectory() as tmp:
        a_path = os.path.join(tmp, "mlx.safetensors")
        b_path = os.path.join(tmp, "optiq.safetensors")
        mx.save_safetensors(a_path, src, metadata={"format": "mlx"})
        run = subprocess.run([args.roundtrip, a_path, b_path], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"FAIL optiq could not read/write: {run.stderr}")
            return 1
        seen = {}
        for line in run.stdout.splitlines():
            j = json.loads(line)
            seen[j["name"]] = j
        if sorted(seen) != sorted(src):
            failures.append(f"names: optiq {sorted(seen)} vs mlx {sorted(src)}")
        for name, x in src.items():
            j = seen.get(name)
            if j is None:
                continue
            if j["dtype"] != DTYPE_NAMES[x.dtype]:
                failures.append(f"{name}: dtype {j['dtype']} vs {DTYPE_NAMES[x.dtype]}")
            if tuple(j["shape"]) != tuple(x.shape):
                failures.append(f"{name}: shape {j['shape']} vs {x.shape}")
            want = as_numpy(x).astype(np.float32).reshape(-1)
            got = np.array(j["values"], dtype=np.float32).reshape(-1)
            if not np.array_equal(want, got):
                failures.append(f"{name}: float values differ, optiq {got[:4]} vs numpy {want[:4]}")
        back, meta = mx.load(b_path, return_metadata=True)
        if meta != {"format": "mlx"}:
            failures.append(f"metadata after optiq's writer: {meta}")
        if sorted(back) != sorted(src):
            failures.append(f"names after optiq's writer: {sorted(back)}")
        for name, x in src.items():
            y = back.get(name)
            if y is None:
                continue
            if y.dtype != x.dtype or tuple(y.shape) != tuple(x.shape):
                failures.append(f"{name}: mlx reads {y.dtype} {y.shape} from optiq's file, wrote {x.dtype} {x.shape}")
            elif not np.array_equal(as_numpy(x), as_numpy(y)):  # same dtype, so equal values = equal bytes
                failures.append(f"{name}: values differ after optiq's writer")
        with open(b_path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
        if n % 8 != 0:
            failures.append(f"optiq's header length {n} is not a multiple of 8")
    for f in failures:
        print("FAIL " + f)
    print(f"check_safetensors_mlx: {len(src)} tensors, {'FAILED' if failures else 'all equal both ways'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

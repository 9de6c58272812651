#!/usr/bin/env python3
"""Cross-check optiq::mlx::quantize / dequantize against MLX's own mx.quantize / mx.dequantize.

For every test matrix (float32, float16, bfloat16) and every (bits, group_size) MLX supports, runs
mx.quantize on MLX's CPU stream and optiq through tests/interop/mlx_affine_dump.cpp on the same
bytes, then compares packed words, scales and biases byte for byte, and mx.dequantize against
optiq's dequantize byte for byte.

The CPU stream is used on purpose: MLX's Metal kernel rounds with round() instead of rint() and
starts its running max at 0 (reference-spec D, "Caveats"), so it is not the reference here.

Exit codes: 0 all equal; 1 a mismatch or error; 77 mlx is not importable (skip), unless the
environment variable CI is "true", where a missing mlx is an error.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

SKIP = 77


def missing_dependency(what):
    msg = f"check_mlx_quantize: {what} is not importable; install it with: pip install 'mlx[cpu]' numpy"
    if os.environ.get("CI") == "true":
        print(msg + " (CI=true, so this is a failure)", file=sys.stderr)
        sys.exit(1)
    print(msg + " -- skipping", file=sys.stderr)
    sys.exit(SKIP)


try:
    import numpy as np
except ImportError:
    missing_dependency("numpy")
try:
    import mlx.core as mx
except ImportError:
    missing_dependency("mlx")

BITS = (1, 2, 3, 4, 5, 6, 8)
GROUPS = (32, 64, 128)
DTYPES = {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}


def matrices():
    """Named float32 test matrices; every last dimension is a multiple of 128."""
    rng = np.random.default_rng(20240611)
    m = {}
    m["weights"] = rng.normal(0.0, 0.02, (16, 512))
    out = rng.normal(0.0, 1.0, (8, 1024))
    mask = rng.random(out.shape) < 0.01
    out[mask] *= 50.0
    m["outliers"] = out
    m["all_negative"] = -np.abs(rng.normal(0.0, 1.0, (6, 256))) - 0.1
    m["all_positive"] = np.abs(rng.normal(0.0, 3.0, (6, 256))) + 0.5
    const = np.empty((6, 128))
    for i, c in enumerate((0.0, 3.0, -2.5, 1e-9, -7.25e-3, 100.0)):
        const[i] = c
    m["constant_rows"] = const
    m["zeros"] = np.zeros((4, 384))
    mixed = np.empty((6, 256))
    mixed[0] = rng.normal(0.0, 1e-8, 256)  # spread below the 1e-7 scale floor
    mixed[1] = rng.normal(0.0, 1e4, 256)
    mixed[2] = np.round(rng.normal(0.0, 4.0, 256) * 2.0) / 2.0  # halves: exact rint ties
    mixed[3] = rng.uniform(-1.0, 1.0, 256)
    mixed[3, ::32] = 0.0
    mixed[4] = np.where(rng.random(256) < 0.5, -1.0, 1.0)  # two values: |min| == |max|
    mixed[5] = rng.standard_t(2.0, 256)  # heavy tails
    m["mixed"] = mixed
    m["batched_3d"] = rng.normal(0.0, 0.5, (2, 3, 256))
    m["uniform_wide"] = rng.uniform(-2.0, 1.0, (32, 640))
    return {k: v.astype(np.float32) for k, v in m.items()}


def raw(a):
    """The bytes of an mx.array, as numpy (16-bit types through a uint16 view)."""
    if a.dtype in (mx.float16, mx.bfloat16):
        return np.array(a.view(mx.uint16))
    return np.array(a)


def describe_mismatch(what, ref, got, case):
    as_bits = {1: np.uint8, 2: np.uint16, 4: np.uint32}[ref.dtype.itemsize]
    ref = ref.reshape(-1).view(as_bits)
    got = got.reshape(-1).view(as_bits)
    if ref.size != got.size:
        return f"{case}: {what} sizes differ: mlx {ref.size}, optiq {got.size}"
    bad = np.nonzero(ref != got)[0]
    i = int(bad[0])
    return (f"{case}: {what} differ at {bad.size} of {ref.size} positions; first at flat index {i}: "
            f"mlx 0x{int(ref[i]):x}, optiq 0x{int(got[i]):x}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", required=True, help="path of the optiq_mlx_affine_dump program")
    ap.add_argument("--keep", help="keep the exchange files in this directory")
    args = ap.parse_args()

    start = time.time()
    cpu = mx.cpu
    with tempfile.TemporaryDirectory(prefix="optiq_mlx_") as tmp:
        work = args.keep or tmp
        os.makedirs(work, exist_ok=True)
        cases = []  # (case, dtype_name, expected arrays)
        lines = []
        for name, base in matrices().items():
            for dname, dtype in DTYPES.items():
                w = mx.array(base).astype(dtype)
                inp = os.path.join(work, f"{name}_{dname}.in")
                raw(w).tofile(inp)
                shape = ",".join(str(d) for d in w.shape)
                for bits in BITS:
                    for g in GROUPS:
                        case = f"{name}_{dname}_b{bits}_g{g}"
                        wq, scales, biases = mx.quantize(w, group_size=g, bits=bits, stream=cpu)
                        deq = mx.dequantize(wq, scales, biases, group_size=g, bits=bits, stream=cpu)
                        mx.eval(wq, scales, biases, deq)
                        expect = (np.array(wq), raw(scales), raw(biases), raw(deq))
                        outp = os.path.join(work, case + ".out")
                        lines.append(f"{case} {dname} {shape} {bits} {g} {inp} {outp}")
                        cases.append((case, outp, expect))
        manifest = os.path.join(work, "manifest.txt")
        with open(manifest, "w") as f:
            f.write("\n".join(lines) + "\n")

        run = subprocess.run([args.dump, manifest], capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout, run.stderr, sep="\n", file=sys.stderr)
            print(f"check_mlx_quantize: {args.dump} failed with exit code {run.returncode}", file=sys.stderr)
            return 1

        failures = []
        checked = 0
        for case, outp, expect in cases:
            blob = np.fromfile(outp, dtype=np.uint8)
            pos = 0
            for what, ref in zip(("words", "scales", "biases", "dequantized"), expect):
                n = ref.nbytes
                got = blob[pos:pos + n].view(ref.dtype)
                pos += n
                if got.size != ref.size or not np.array_equal(got.reshape(ref.shape), ref):
                    failures.append(describe_mismatch(what, ref, got, case))
                checked += 1
            if pos != blob.size:
                failures.append(f"{case}: optiq wrote {blob.size} bytes, expected {pos}")

    elapsed = time.time() - start
    print(f"check_mlx_quantize: mlx {mx.__version__}, {len(cases)} (matrix, dtype, bits, group) cases, "
          f"{checked} arrays compared byte for byte in {elapsed:.1f} s")
    if failures:
        for f in failures[:40]:
            print("MISMATCH " + f, file=sys.stderr)
        print(f"check_mlx_quantize: {len(failures)} mismatching arrays", file=sys.stderr)
        return 1
    print("check_mlx_quantize: all equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())

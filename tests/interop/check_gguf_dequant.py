#!/usr/bin/env python3
"""Cross-check optiq's GGUF reader and dequantizers against the PyPI `gguf` package, bit for bit.

1. Random blocks of every block type optiq dequantizes (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
   Q4_K, Q5_K, Q6_K, plus F16 / BF16 / F32): gguf.quants.dequantize vs optiq::io::dequantize
   (tests/interop/gguf_dequant_dump.cpp --raw), compared as uint32 bit patterns.
2. The real SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch_models.sh puts it in
   ${OPTIQ_CACHE:-~/.cache/optiq}): every tensor, read with gguf.GGUFReader and dequantized by the
   package, vs optiq::io::GgufFile + GgufTensor::to_float — names, order, shapes and every value.

Exit codes: 0 all equal; 1 a mismatch or error; 77 skip (gguf / numpy not importable, or the model
file absent), except under CI=true, where a skip reason is a failure.
"""
import argparse
import os
import struct
import subprocess
import sys
import time

SKIP = 77


def skip(msg):
    if os.environ.get("CI") == "true":
        print(f"check_gguf_dequant: {msg} (CI=true, so this is a failure)", file=sys.stderr)
        sys.exit(1)
    print(f"check_gguf_dequant: {msg} -- skipping", file=sys.stderr)
    sys.exit(SKIP)


try:
    import numpy as np
except ImportError:
    skip("numpy is not importable; install it with: pip install numpy gguf")
try:
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.constants import GGML_QUANT_SIZES
except ImportError:
    skip("gguf is not importable; install it with: pip install gguf")

# Byte offsets of each block type's f16 scale fields (kept finite so NaN payloads never matter).
F16_FIELDS = {
    "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,),
    "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
}


def bits_equal(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def first_mismatch(ref, got):
    ref = np.asarray(ref, dtype=np.float32).reshape(-1)
    got = np.asarray(got, dtype=np.float32).reshape(-1)
    if ref.shape != got.shape:
        return f"shape {got.shape} vs gguf {ref.shape}"
    i = int(np.nonzero(ref.view(np.uint32) != got.view(np.uint32))[0][0])
    n = int(np.count_nonzero(ref.view(np.uint32) != got.view(np.uint32)))
    return f"{n} values differ; first at {i}: optiq {got[i]!r} vs gguf {ref[i]!r}"


def check_random_blocks(dump, rng):
    failures = 0
    for name, fields in F16_FIELDS.items():
        qtype = T[name]
        block, size = GGML_QUANT_SIZES[qtype]
        n_blocks = 257
        raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
        scales = (rng.normal(0, 0.02, size=(n_blocks, len(fields)))).astype(np.float16).view(np.uint8)
        for k, off in enumerate(fields):
            raw[:, off:off + 2] = scales[:, 2 * k:2 * k + 2]
        ref = gguf.quants.dequantize(raw.reshape(-1), qtype)
        run = subprocess.run([dump, "--raw", str(int(qtype)), str(n_blocks * block)],
                             input=raw.tobytes(), capture_output=True)
        if run.returncode != 0:
            print(f"FAIL random {name}: dump exited {run.returncode}: {run.stderr.decode()}")
            failures += 1
            continue
        got = np.frombuffer(run.stdout, dtype=np.float32)
        if bits_equal(ref, got):
            print(f"ok   random {name}: {got.size} values bit-identical")
        else:
            print(f"FAIL random {name}: {first_mismatch(ref, got)}")
            failures += 1
    # Plain types: random bit patterns, NaN and inf included (converted, not computed).
    for name, dtype in (("F16", np.uint16), ("BF16", np.uint16), ("F32", np.uint32)):
        qtype = T[name]
        raw = rng.integers(0, np.iinfo(dtype).max, size=4096, dtype=dtype, endpoint=True)
        raw_u8 = raw.view(np.uint8)
        if name == "F32":
            ref = raw.view(np.float32)
        elif name == "F16":
            ref = raw.view(np.float16).astype(np.float32)
        else:
            ref = gguf.quants.dequantize(raw_u8, qtype)
        run = subprocess.run([dump, "--raw", str(int(qtype)), str(raw.size)], input=raw_u8.tobytes(), capture_output=True)
        got = np.frombuffer(run.stdout, dtype=np.float32)
        if run.returncode == 0 and bits_equal(ref, got):
            print(f"ok   random {name}: {got.size} values bit-identical")
        else:
            print(f"FAIL random {name}: {run.stderr.decode() or first_mismatch(ref, got)}")
            failures += 1
    return failures


def read_exact(stream, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError(f"dump output ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def check_model(dump, path):
    reader = gguf.GGUFReader(path)
    proc = subprocess.Popen([dump, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    failures = 0
    total = 0
    try:
        for t in reader.tensors:
            (name_len,) = struct.unpack("<I", read_exact(proc.stdout, 4))
            name = read_exact(proc.stdout, name_len).decode()
            (count,) = struct.unpack("<Q", read_exact(proc.stdout, 8))
            got = np.frombuffer(read_exact(proc.stdout, 4 * count), dtype=np.float32)
            if name != t.name:
                print(f"FAIL tensor order: optiq gave '{name}', gguf '{t.name}'")
                return failures + 1
            ref = gguf.quants.dequantize(t.data, t.tensor_type)
            expect_shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            if tuple(ref.shape) != expect_shape or count != ref.size:
                print(f"FAIL {name}: gguf shape {ref.shape}, ne {t.shape.tolist()}, optiq count {count}")
                failures += 1
            elif not bits_equal(ref, got):
                print(f"FAIL {name} ({t.tensor_type.name}): {first_mismatch(ref, got)}")
                failures += 1
            total += count
        if proc.stdout.read(1):
            print("FAIL optiq dumped more tensors than gguf lists")
            failures += 1
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode()
        rc = proc.wait()
    if rc != 0:
        print(f"FAIL dump exited {rc}: {err}")
        failures += 1
    if failures == 0:
        print(f"ok   {os.path.basename(path)}: {len(reader.tensors)} tensors, {total} values bit-identical")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="path of optiq_gguf_dequant_dump")
    ap.add_argument("--model", help="GGUF file (default: $OPTIQ_CACHE/SmolLM2-135M-Instruct.Q4_1.gguf)")
    args = ap.parse_args()
    t0 = time.time()
    failures = check_random_blocks(args.dump, np.random.default_rng(20251124))
    model = args.model
    if model is None:
        cache = os.environ.get("OPTIQ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "optiq")
        model = os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        if failures:
            return 1
        skip(f"{model} is missing; run scripts/fetch_models.sh (the random-block checks passed)")
    failures += check_model(args.dump, model)
    print(f"check_gguf_dequant: {'FAILED' if failures else 'all equal'} in {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

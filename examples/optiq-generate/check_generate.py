#!/usr/bin/env python3
"""Checks optiq-generate end to end on stories260K (llama2.c checkpoint + tok512.bin):
greedy text from a prompt, raw ids, seeded sampling reproducibility, stop strings, perplexity,
a per-layer --kv-config, and errors that name the missing or malformed file.
usage: check_generate.py BINARY MODELS_DIR   (MODELS_DIR holds stories260K/)"""
import json
import os
import subprocess
import sys
import tempfile

STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def main():
    binary, models = sys.argv[1], sys.argv[2]
    model = os.path.join(models, "stories260K", "stories260K.bin")
    tok = os.path.join(models, "stories260K", "tok512.bin")
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    rc, out, err = run(binary, "--model", model, "--tokenizer", tok, "--prompt", "Once upon a time", "--max-tokens", "40")
    check(rc == 0 and out.startswith(STORY), f"greedy text starts with the reference story: {out[:100]!r}")
    check("prompt:" in err and "decode:" in err and "tok/s" in err, "speeds on stderr")

    rc, out, err = run(binary, "--model", model, "--prompt-ids", "1", "--max-tokens", "5", "--raw-ids")
    ids = out.split()
    check(rc == 0 and len(ids) == 5 and all(i.isdigit() for i in ids), f"raw ids: {out.strip()!r}")

    a = run(binary, "--model", model, "--tokenizer", tok, "--prompt", "Lily", "--temp", "0.9", "--seed", "5",
            "--max-tokens", "30")
    b = run(binary, "--model", model, "--tokenizer", tok, "--prompt", "Lily", "--temp", "0.9", "--seed", "5",
            "--max-tokens", "30")
    check(a[0] == 0 and a[1] == b[1], "same seed, same text")

    rc, out, err = run(binary, "--model", model, "--tokenizer", tok, "--prompt", "Once upon a time", "--max-tokens",
                       "100", "--stop", "Lily")
    check(rc == 0 and out.rstrip("\n") == "Once upon a time, there was a little girl named " and "stop string" in err,
          f"stop string cuts the text: {out!r}")

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write((STORY + " One day, she saw a big, red ball. She wanted to play with it.\n") * 20)
        text = f.name
    try:
        rc, out, err = run(binary, "--model", model, "--tokenizer", tok, "--perplexity", text, "--ctx", "128")
        ppl = float(out.split()[1]) if rc == 0 and out.startswith("perplexity") else float("nan")
        # A repeated in-distribution story: the second half of each chunk is nearly predictable.
        check(1.0 < ppl < 3.0, f"perplexity of a repeated story: {out.strip()!r}")
    finally:
        os.unlink(text)

    # A mixed per-layer KV config (kv_config.json, mlx-optiq's format; head_dim 8, so affine groups of 8):
    # 8-bit caches keep the greedy story; a malformed file is named in the error.
    with tempfile.TemporaryDirectory() as tmp:
        kv = os.path.join(tmp, "kv_config.json")
        with open(kv, "w") as f:
            json.dump([{"layer_idx": i, "bits": 8 if i in (0, 4) else 4, "group_size": 8} for i in range(5)], f)
        rc, out, err = run(binary, "--model", model, "--tokenizer", tok, "--prompt", "Once upon a time", "--max-tokens",
                           "20", "--kv-config", kv)
        check(rc == 0 and out.startswith("Once upon a time,") and len(out.split()) > 8,
              f"--kv-config with 4/8-bit layers generates: {out[:100]!r} {err.strip()[-200:]!r}")
        with open(kv, "w") as f:
            f.write('[{"layer_idx": 0, "bits": 4, "method": "int4"}]')
        rc, out, err = run(binary, "--model", model, "--tokenizer", tok, "--prompt", "Once", "--kv-config", kv)
        check(rc == 1 and "kv_config.json" in err and "int4" in err, f"bad --kv-config named: {err.strip()!r}")

    rc, out, err = run(binary, "--model", os.path.join(models, "no-such-model.bin"), "--prompt-ids", "1")
    check(rc == 1 and "no-such-model.bin" in err, f"missing model named in the error: {err.strip()!r}")
    print("OK" if not failures else f"{len(failures)} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks optiq-eval end to end on stories260K: its perplexity equals optiq-generate --perplexity
(the same llama.cpp protocol), the model against itself gives KL 0 exactly, a quantized KV cache
gives KL > 0 with the reference perplexity unchanged, the JSON keys the quality tables read, and
errors that name the bad input.
usage: check_eval.py EVAL_BINARY GENERATE_BINARY MODELS_DIR   (MODELS_DIR holds stories260K/)"""
import json
import os
import subprocess
import sys
import tempfile

STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
         "she saw a big, red ball. She wanted to play with it. Tom came to the park with his dog. The dog was "
         "brown and had a long tail. They played with the ball all day, and then they went home to eat dinner.\n")


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def main():
    eval_bin, gen_bin, models = sys.argv[1], sys.argv[2], sys.argv[3]
    model = os.path.join(models, "stories260K", "stories260K.bin")
    tok = os.path.join(models, "stories260K", "tok512.bin")
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    def as_json(rc, out, err, what):
        try:
            return json.loads(out)
        except ValueError:
            check(False, f"{what}: JSON on stdout (rc {rc}): {out[:200]!r} {err.strip()[-300:]!r}")
            return {}

    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write(STORY * 10)
        args = [eval_bin, "--model", model, "--tokenizer", tok, "--text", text, "--ctx", "128", "-q"]

        rc, out, err = run(*args, "--json")
        plain = as_json(rc, out, err, "f32 run")
        check(rc == 0 and set(plain) >= {"ppl", "ref_ppl", "kl_mean", "tokens"} and plain.get("ref_ppl", 0) is None
              and plain.get("kl_mean", 0) is None, f"JSON keys, no reference without --quantized/--kl: {plain}")
        rc, gout, gerr = run(gen_bin, "--model", model, "--tokenizer", tok, "--perplexity", text, "--ctx", "128")
        gppl = float(gout.split()[1]) if rc == 0 and gout.startswith("perplexity") else float("nan")
        check(abs(plain.get("ppl", 0) - gppl) < 1e-4 * gppl, f"ppl {plain.get('ppl')} equals optiq-generate's {gppl}")
        n_chunks = plain.get("chunks", 0)
        check(n_chunks >= 2 and plain.get("tokens") == n_chunks * 63, f"63 scored tokens per chunk of 128: {plain}")

        rc, out, err = run(*args, "--quantized", model, "--json")
        same = as_json(rc, out, err, "model against itself")
        check(same.get("kl_mean") == 0.0 and same.get("ppl") == same.get("ref_ppl") == plain.get("ppl"),
              f"model against itself: KL 0, equal perplexities: {same}")

        kv = os.path.join(tmp, "kv_config.json")
        with open(kv, "w") as f:
            json.dump([{"layer_idx": i, "bits": 2, "group_size": 8} for i in range(5)], f)
        rc, out, err = run(*args, "--kv-config", kv, "--kl", "--json")
        q = as_json(rc, out, err, "2-bit KV")
        check(q.get("kl_mean", 0) > 1e-4 and abs(q.get("ref_ppl", 0) - plain.get("ppl", 1)) < 1e-9 * plain.get("ppl", 1)
              and q.get("ppl", 0) != plain.get("ppl"), f"2-bit affine KV: KL > 0, reference is the f32 model: {q}")
        with open(kv, "w") as f:
            json.dump([{"layer_idx": i, "bits": 8, "group_size": 8} for i in range(5)], f)
        rc, out, err = run(*args, "--kv-config", kv, "--kl", "--json")
        q8 = as_json(rc, out, err, "8-bit KV")
        check(0 < q8.get("kl_mean", 0) < q.get("kl_mean", 0), f"8-bit KV: KL below 2-bit's: {q8}")

        rc, out, err = run(*args, "--kv-config", kv, "--kl")
        check(rc == 0 and "perplexity" in out and "KL mean" in out and "ref ppl" in out, f"table: {out!r}")

        rc, _, err = run(eval_bin, "--model", model, "--tokenizer", tok, "--text", os.path.join(tmp, "nope.txt"))
        check(rc != 0 and "nope.txt" in err, f"missing text named: {err.strip()!r}")
        with open(kv, "w") as f:
            f.write('[{"layer_idx": 0, "bits": 99}]')
        rc, _, err = run(*args, "--kv-config", kv)
        check(rc != 0 and "kv_config.json" in err and "bits" in err, f"bad kv_config named: {err.strip()!r}")
        rc, _, err = run(eval_bin, "--model", model, "--tokenizer", tok, "--text", text, "--ctx", "100000")
        check(rc != 0 and "chunk" in err, f"text shorter than a chunk: {err.strip()!r}")

    print("OK" if not failures else f"{len(failures)} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

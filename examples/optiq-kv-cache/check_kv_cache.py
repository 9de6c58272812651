#!/usr/bin/env python3
"""Checks optiq-kv-cache end to end on stories260K: kv_config.json (read back by optiq's own reader
through optiq-generate --kv-config), the greedy mean-bits rule, every layer present, a well-formed
kv_sensitivity.json consistent with the allocation, the SVG, reuse of the cost table, the exact
solver's ceiling, and errors that name the bad input.
usage: check_kv_cache.py KV_CACHE_BINARY GENERATE_BINARY MODELS_DIR   (MODELS_DIR holds stories260K/)"""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

N_LAYERS = 5  # stories260K
STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
         "she saw a big, red ball. She wanted to play with it. Tom came to the park with his dog. The dog was "
         "brown and had a long tail. They played with the ball all day, and then they went home to eat dinner.\n")


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def main():
    kv_bin, gen_bin, models = sys.argv[1], sys.argv[2], sys.argv[3]
    model = os.path.join(models, "stories260K", "stories260K.bin")
    tok = os.path.join(models, "stories260K", "tok512.bin")
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        calib = os.path.join(tmp, "calib.txt")
        with open(calib, "w") as f:
            f.write(STORY * 12)
        out = os.path.join(tmp, "kv")
        # head_dim is 8: affine groups of 8; KL over all positions keeps the ordering test stable.
        common = [kv_bin, model, "--tokenizer", tok, "--n-calibration", "3", "--seq-len", "96", "-q"]
        base = common + ["--group-size", "8", "--candidate-bits", "4,8", "--calibration", calib]
        rc, stdout, stderr = run(*base, "--target-bits", "5", "--kl-positions", "all", "-o", out)
        check(rc == 0, f"greedy run exits 0: {stderr.strip()[-300:]!r}")

        cfg = json.load(open(os.path.join(out, "kv_config.json")))
        layers = sorted(e["layer_idx"] for e in cfg)
        check(layers == list(range(N_LAYERS)), f"every layer has one entry: {layers}")
        check(all(e["bits"] in (4, 8) and e["group_size"] == 8 and "method" not in e for e in cfg),
              f"entries are mlx-optiq's affine form: {cfg}")
        mean = sum(e["bits"] for e in cfg) / len(cfg)
        # The greedy target is a floor reached one 4 -> 8 upgrade at a time: one fewer would miss it.
        check(mean >= 5 and mean - 4 / N_LAYERS < 5, f"mean bits {mean} is the first >= 5")

        sens = json.load(open(os.path.join(out, "kv_sensitivity.json")))
        check(list(sens) == [str(i) for i in range(N_LAYERS)], f"kv_sensitivity.json has layers 0..4 in order: {list(sens)}")
        well_formed = all(set(v) == {"4", "8"} and all(isinstance(x, float) and x >= 0 for x in v.values())
                          for v in sens.values())
        check(well_formed, "kv_sensitivity.json: {layer: {bits: KL >= 0}}")
        if well_formed:
            check(all(v["4"] > v["8"] for v in sens.values()), "KL at 4 bits above KL at 8 bits in every layer")
            drop = {int(k): v["4"] - v["8"] for k, v in sens.items()}
            up = [e["layer_idx"] for e in cfg if e["bits"] == 8]
            low = [e["layer_idx"] for e in cfg if e["bits"] == 4]
            check(all(drop[u] >= drop[l] for u in up for l in low), f"upgraded layers {up} gain the most KL")

        svg = ET.parse(os.path.join(out, "kv_sensitivity.svg")).getroot()
        rects = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
        check(len(rects) == 2 * N_LAYERS, f"SVG has a bar per layer and width: {len(rects)}")
        check("spread at 4 bits" in stdout and "the median" in stdout and "layer" in stdout,
              f"table and spread on stdout: {stdout[-200:]!r}")

        rc, stdout2, stderr2 = run(*base, "--target-bits", "5", "--kl-positions", "all", "-o", out)
        check(rc == 0 and "from kv_cost_table.json" in stderr2, "second run reuses the cost table")
        check(json.load(open(os.path.join(out, "kv_config.json"))) == cfg, "same table, same kv_config.json")
        check(not any(n.endswith(".tmp") for n in os.listdir(out)), f"no temp files left: {os.listdir(out)}")

        out_exact = os.path.join(tmp, "exact")
        rc, _, stderr = run(*base, "--target-bits", "5.5", "--solver", "exact", "--method", "tq_mse", "-o", out_exact)
        ex = json.load(open(os.path.join(out_exact, "kv_config.json"))) if rc == 0 else []
        ex_mean = sum(e["bits"] for e in ex) / max(1, len(ex))
        check(rc == 0 and len(ex) == N_LAYERS and ex_mean <= 5.5 and all(e.get("method") == "tq_mse" for e in ex),
              f"exact solver keeps the mean <= 5.5 ({ex_mean}) with method tq_mse: {stderr.strip()[-200:]!r}")

        # optiq's reader, through the runtime: generation with the mixed config runs.
        rc, text, err = run(gen_bin, "--model", model, "--tokenizer", tok, "--prompt", "Once upon a time",
                            "--max-tokens", "30", "--kv-config", os.path.join(out, "kv_config.json"))
        check(rc == 0 and text.startswith("Once upon a time") and len(text.split()) > 8,
              f"optiq-generate --kv-config runs: {text[:80]!r} {err.strip()[-200:]!r}")

        rc, _, err = run(*common, "--group-size", "8", "--calibration", calib, "--target-bits", "5", "--candidate-bits", "4,x",
                         "-o", out)
        check(rc != 0 and "'x'" in err, f"bad --candidate-bits named: {err.strip()!r}")
        rc, _, err = run(*base, "--target-bits", "5", "--method", "int4", "-o", out)
        check(rc != 0 and "int4" in err, f"bad --method named: {err.strip()!r}")
        rc, _, err = run(*base, "--target-bits", "9", "-o", out)
        check(rc != 0 and "--target-bits" in err, f"target outside the candidates: {err.strip()!r}")
        rc, _, err = run(*common, "--group-size", "8", "--calibration", os.path.join(tmp, "missing.txt"), "--target-bits", "5",
                         "-o", out)
        check(rc != 0 and "missing.txt" in err, f"missing calibration file named: {err.strip()!r}")
        rc, _, err = run(*common, "--calibration", calib, "--target-bits", "5", "--group-size", "64", "--no-cache",
                         "-o", out)
        check(rc != 0 and "group_size" in err, f"group size that does not divide head_dim: {err.strip()!r}")

    print("OK" if not failures else f"{len(failures)} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""optiq-convert on stories260K without any Python package: the output directory's files, the
metadata and config it writes, the sensitivity cache, and the refusal to overwrite.
Usage: check_convert_cli.py OPTIQ_CONVERT STORIES_DIR"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main():
    exe, stories = sys.argv[1], Path(sys.argv[2])
    failures = []

    def check(ok, msg):
        if not ok:
            print("FAIL", msg)
            failures.append(msg)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        calib = tmp / "calib.txt"
        calib.write_text("Once upon a time, there was a little girl named Lily. She loved to play outside. " * 40)
        base = [exe, str(stories / "stories260K.bin"), "--tokenizer", str(stories / "tok512.bin"), "-q"]
        opt = base + ["--calibration", str(calib), "--n-calibration", "2", "--seq-len", "48",
                      "--cache-dir", str(tmp / "cache")]
        out = tmp / "opt"
        r = subprocess.run(opt + ["--target-bpw", "5", "-o", str(out)], capture_output=True, text=True)
        check(r.returncode == 0, f"optiq method failed: {r.stderr[-500:]}")
        for f in ("model.safetensors", "config.json", "optiq_metadata.json", "optiq_report.svg", "tokenizer.json",
                  "tokenizer_config.json"):
            check((out / f).exists(), f"{f} missing")
        check(not any(p.name.endswith((".optiq-tmp", ".optiq-old")) for p in tmp.iterdir()), "temporary directory left")
        meta = json.loads((out / "optiq_metadata.json").read_text())
        cfg = json.loads((out / "config.json").read_text())
        check(abs(meta["achieved_bpw"] - 5.0) <= 0.05, f"achieved {meta['achieved_bpw']} for a 5.0 target")
        check(sorted(meta["unquantized"]) == [f"model.layers.{i}.mlp.down_proj" for i in range(5)],
              f"unquantized {meta['unquantized']}")
        check(all("kl" in v for k, v in meta["per_layer"].items() if v["bits"] != 16), "a quantized unit has no kl")
        check(cfg["quantization"] == cfg["quantization_config"], "quantization_config differs")
        check(all(not k.endswith(".weight") for k in cfg["quantization"]), "override key spelled as a tensor")
        check("<svg" in (out / "optiq_report.svg").read_text(), "report is not an SVG")
        check("sensitivity" not in r.stdout, "progress leaked to stdout")
        check("model.layers.4.self_attn.q_proj" in r.stdout, "per-unit table missing from stdout")

        # The second run reads the cached table (same model, settings and calibration).
        r = subprocess.run(opt + ["--target-bpw", "4.5", "-o", str(tmp / "opt2")], capture_output=True, text=True)
        check(r.returncode == 0 and "from the cache" in r.stderr, f"cache not used: {r.stderr[-300:]}")

        # Refuses to overwrite; --force replaces.
        r = subprocess.run(base + ["--method", "uniform", "--bits", "8", "-o", str(out)], capture_output=True, text=True)
        check(r.returncode != 0 and "refusing" in r.stderr, "overwrote without --force")
        check(json.loads((out / "optiq_metadata.json").read_text())["method"] != "uniform", "old output damaged")
        r = subprocess.run(base + ["--method", "uniform", "--bits", "8", "--force", "-o", str(out)], capture_output=True,
                           text=True)
        check(r.returncode == 0, f"--force failed: {r.stderr[-300:]}")
        meta = json.loads((out / "optiq_metadata.json").read_text())
        check(meta["method"] == "uniform" and meta["achieved_bpw"] == 8.0, f"uniform 8: {meta['method']} {meta['achieved_bpw']}")

        # optiq needs calibration text.
        r = subprocess.run(base + ["-o", str(tmp / "nocal")], capture_output=True, text=True)
        check(r.returncode != 0 and "--calibration" in r.stderr and not (tmp / "nocal").exists(), "ran without calibration")
    print("OK" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

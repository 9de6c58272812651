#!/usr/bin/env python3
"""Checks optiq-quant-report against TurboQuant's published distortion (reference-spec numbers 2 and 4).

Runs the real program, parses its JSON, and asserts:
  * every row has the documented keys;
  * TurboQuant-MSE at d=128 on 20k unit vectors: D_mse within 2% of the exact-law values, both rotations;
  * storage accounting: b bits per coordinate plus a 16-bit norm per vector;
  * TurboQuant-Prod: |bias| < 3 standard errors and d*Var within 10% of (pi/2)*D_mse(b-1);
  * an unknown method fails with a message naming it.
"""
import json
import math
import subprocess
import sys

exe = sys.argv[1]
KEYS = {"method", "bits", "bits_per_coord", "mse", "ip_bias", "ip_rmse", "cosine", "encode_ns", "decode_ns"}
EXACT_D128 = {1: 0.36089, 2: 0.11600, 3: 0.033966, 4: 0.009315}
failures = []


def run(*args):
    out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        raise SystemExit(f"{exe} {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout)


rows = run("--dim", "128", "--bits", "1,2,3,4", "--vectors", "20000", "--queries", "16", "--seed", "42",
           "--methods", "tq_mse,tq_prod,tq_mse:1:haar,tq_mse:2:haar,tq_mse:3:haar,tq_mse:4:haar", "--json")
by = {}
for r in rows:
    missing = KEYS - r.keys()
    if missing:
        failures.append(f"row {r.get('method')} lacks keys {sorted(missing)}")
    by[r["method"]] = r

for b, want in EXACT_D128.items():
    for spec in (f"tq_mse:{b}", f"tq_mse:{b}:haar"):
        got = by[spec]["mse"]
        if abs(got / want - 1) > 0.02:
            failures.append(f"{spec}: D_mse {got:.6f}, exact law {want} (>2% off)")
        bpc = by[spec]["bits_per_coord"]
        if abs(bpc - (b + 16 / 128)) > 1e-9:
            failures.append(f"{spec}: bits_per_coord {bpc}, expected {b + 16 / 128}")

for b in (2, 3, 4):
    r = by[f"tq_prod:{b}"]
    n = 20000 * 16
    se = r["ip_rmse"] / math.sqrt(n)  # an upper bound on the standard error (errors correlate across queries)
    if abs(r["ip_bias"]) > 3 * se * math.sqrt(16):
        failures.append(f"tq_prod:{b}: bias {r['ip_bias']:.3e} exceeds 3 standard errors ({se:.3e})")
    want = math.pi / 2 * EXACT_D128[b - 1]
    if abs(r["ip_var_d"] / want - 1) > 0.10:
        failures.append(f"tq_prod:{b}: d*Var {r['ip_var_d']:.4f}, expected (pi/2)*D_mse(b-1) = {want:.4f}")

bad = subprocess.run([exe, "--methods", "nosuchmethod", "--vectors", "10"], capture_output=True, text=True)
if bad.returncode == 0 or "nosuchmethod" not in bad.stderr:
    failures.append(f"unknown method: exit {bad.returncode}, stderr {bad.stderr!r}")

for f in failures:
    print("FAIL:", f)
print(f"{len(rows)} rows checked, {len(failures)} failures")
sys.exit(1 if failures else 0)

#!/usr/bin/env python3
"""Checks optiq-kv-report: runs the real program (small sizes, no timing), parses its JSON, asserts:
  * every row has the documented keys, one row per requested method, in order;
  * storage: f16 is 4d bytes per token (key + value), TurboQuant-MSE b bits is 2(d*b/8 + 2) bytes
    (codes + an f16 norm each), compression_vs_f16 = 4d / bytes_per_token;
  * f16 reproduces full-precision attention (error < 0.005, top-1 agreement 1, needle found);
  * TurboQuant-MSE error falls with bits (2 > 3 > 4) and 4 bits finds the needle;
  * tq_mse:4+int8 (int8 attention arithmetic) stores the same bytes as tq_mse:4, finds the needle and
    adds under 10% to its attention error;
  * an unknown method fails with a message naming it.
"""
import json
import subprocess
import sys

exe = sys.argv[1]
KEYS = {"method", "dim", "bytes_per_token", "compression_vs_f16", "attn_rel_error", "top1_agreement",
        "score_rel_rmse", "needle_rate", "needle_tokens", "decode_us", "decode_context"}
failures = []
methods = ["f16", "tq_mse:2", "tq_mse:3", "tq_mse:4", "tq_mse:4+int8", "kivi:2", "affine:4"]
d = 64
out = subprocess.run([exe, "--dim", str(d), "--tokens", "512", "--queries", "16", "--needle-tokens", "4096",
                      "--needle-trials", "2", "--needle-margin", "2", "--no-timing", "--methods", ",".join(methods),
                      "--json"], capture_output=True, text=True, timeout=240)
if out.returncode != 0:
    raise SystemExit(f"optiq-kv-report failed ({out.returncode}):\n{out.stderr}")
rows = json.loads(out.stdout)
if [r["method"] for r in rows] != methods:
    failures.append(f"methods {[r['method'] for r in rows]} != {methods}")
by = {}
for r in rows:
    missing = KEYS - r.keys()
    if missing:
        failures.append(f"row {r.get('method')} lacks keys {sorted(missing)}")
    by[r["method"]] = r
    if abs(r["compression_vs_f16"] - 4 * d / r["bytes_per_token"]) > 1e-9:
        failures.append(f"{r['method']}: compression {r['compression_vs_f16']} != 4d/bytes")
    if r["decode_us"] is not None:
        failures.append(f"{r['method']}: --no-timing still reported decode_us")

f16 = by["f16"]
if f16["bytes_per_token"] != 4 * d:
    failures.append(f"f16 bytes_per_token {f16['bytes_per_token']} != {4 * d}")
if not (f16["attn_rel_error"] < 0.005 and f16["top1_agreement"] == 1.0 and f16["needle_rate"] == 1.0):
    failures.append(f"f16 is not exact enough: {f16}")
for b in (2, 3, 4):
    want = 2 * (d * b / 8 + 2)
    if by[f"tq_mse:{b}"]["bytes_per_token"] != want:
        failures.append(f"tq_mse:{b} bytes_per_token {by[f'tq_mse:{b}']['bytes_per_token']} != {want}")
e = [by[f"tq_mse:{b}"]["attn_rel_error"] for b in (2, 3, 4)]
if not (e[0] > e[1] > e[2]):
    failures.append(f"tq_mse attention error does not fall with bits: {e}")
if by["tq_mse:4"]["needle_rate"] != 1.0:
    failures.append(f"tq_mse:4 lost the needle: {by['tq_mse:4']['needle_rate']}")
i8, e4 = by["tq_mse:4+int8"], by["tq_mse:4"]
if i8["bytes_per_token"] != e4["bytes_per_token"] or i8["needle_rate"] != 1.0:
    failures.append(f"tq_mse:4+int8: {i8}")
if not i8["attn_rel_error"] < 1.1 * e4["attn_rel_error"]:
    failures.append(f"tq_mse:4+int8 error {i8['attn_rel_error']} vs tq_mse:4 {e4['attn_rel_error']}")

bad = subprocess.run([exe, "--methods", "nope:3", "--no-timing", "--json"], capture_output=True, text=True, timeout=60)
if bad.returncode == 0 or "nope" not in bad.stderr:
    failures.append(f"unknown method: rc {bad.returncode}, stderr {bad.stderr!r}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"optiq-kv-report: {len(rows)} rows OK")

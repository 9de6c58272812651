#!/usr/bin/env python3
"""Load benchmark for optiq-serve (not a test): N concurrent streaming clients for D seconds.

Each client loops: POST /v1/completions with "stream": true (a prompt from a fixed list, sampled
at temperature 0.8 with a per-request seed, stream_options.include_usage), reads the SSE stream to
"data: [DONE]" and records the time to the first text chunk. Reports completed requests per second,
generated tokens per second (from the usage chunks), p50 / p99 time-to-first-token, errors and
streams that ended without finish_reason + usage + [DONE]. Exit status 1 when any request failed.

  python3 bench/serve_load.py --server build/examples/optiq-serve \\
      --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin
  python3 bench/serve_load.py --url http://127.0.0.1:8080 --model-name stories260K   (a running server)
"""
import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

PROMPTS = ["Once upon a time", "Lily wanted to", "The little dog", "One day, Tom went to the park and",
           "The sun was shining", "Sara had a red ball", "Ben and his mom", "There was a big tree"]


def start_server(a):
    cmd = [a.server, "--model", a.model, "--port", "0", "--max-concurrent", str(a.max_concurrent), "--threads",
           str(a.threads), "--model-name", a.model_name]
    if a.tokenizer:
        cmd += ["--tokenizer", a.tokenizer]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        sys.stderr.write(line)
        m = re.search(r"listening on (http://[\d.]+:\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    raise RuntimeError("optiq-serve did not start")


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def client(idx, url, a, deadline, results, lock):
    u = urllib.parse.urlparse(url)
    n = 0
    while time.monotonic() < deadline:
        body = json.dumps({"model": a.model_name, "prompt": PROMPTS[(idx + n) % len(PROMPTS)], "max_tokens": a.max_tokens,
                           "temperature": 0.8, "seed": idx * 100000 + n, "stream": True,
                           "stream_options": {"include_usage": True}})
        n += 1
        t0 = time.monotonic()
        rec = {"ttft": None, "ok": False, "tokens": 0, "error": None}
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
            conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                rec["error"] = f"HTTP {resp.status}: {resp.read()[:200]!r}"
            else:
                finished = done = False
                for raw in resp:
                    line = raw.decode().rstrip("\n")
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        done = True
                        break
                    j = json.loads(data)
                    if "error" in j:
                        rec["error"] = str(j["error"])
                        break
                    for ch in j.get("choices", []):
                        if ch.get("text") and rec["ttft"] is None:
                            rec["ttft"] = time.monotonic() - t0
                        if ch.get("finish_reason"):
                            finished = True
                    if j.get("usage"):
                        rec["tokens"] = j["usage"]["completion_tokens"]
                rec["ok"] = finished and done and rec["tokens"] > 0 and rec["error"] is None
                if not rec["ok"] and rec["error"] is None:
                    rec["error"] = "stream ended early"
            conn.close()
        except Exception as e:  # noqa: BLE001 - every failure is counted
            rec["error"] = repr(e)
        rec["end"] = time.monotonic()
        with lock:
            results.append(rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="optiq-serve binary (started on a free port)")
    ap.add_argument("--url", help="a running server instead")
    ap.add_argument("--model")
    ap.add_argument("--tokenizer")
    ap.add_argument("--model-name", default="stories260K")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-concurrent", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    proc = None
    url = a.url
    if not url:
        if not (a.server and a.model):
            ap.error("give --server and --model, or --url")
        proc, url = start_server(a)
    results, lock = [], threading.Lock()
    start = time.monotonic()
    deadline = start + a.duration
    threads = [threading.Thread(target=client, args=(i, url, a, deadline, results, lock)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start  # includes the requests in flight at the deadline
    if proc:
        proc.terminate()
        proc.wait(30)
    ok = [r for r in results if r["ok"]]
    errors = [r for r in results if not r["ok"]]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    tokens = sum(r["tokens"] for r in ok)
    print(f"clients {a.clients}, {elapsed:.1f} s, max_tokens {a.max_tokens}, server --max-concurrent {a.max_concurrent}")
    print(f"requests completed {len(ok)}  ({len(ok) / elapsed:.2f} req/s), generated tokens {tokens} "
          f"({tokens / elapsed:.0f} tok/s)")
    print(f"time to first token: p50 {percentile(ttft, 0.5) * 1000:.1f} ms, p99 {percentile(ttft, 0.99) * 1000:.1f} ms, "
          f"max {max(ttft, default=float('nan')) * 1000:.1f} ms")
    print(f"errors / incomplete streams: {len(errors)}")
    for r in errors[:5]:
        print("  ", r["error"])
    return 1 if errors or not ok else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""llama.cpp vs optiq, same run: prompt processing (pp128) and decode (tg64) tok/s on the same GGUF
with the same thread count, the two engines run one after the other, several alternations (issue 17).

It builds nothing. llama.cpp's llama-bench comes from `bash scripts/build_llama_cpp.sh` (or
`bash scripts/setup.sh --llama-cpp`), which builds llama.cpp as vendored in PyPI's llama-cpp-python
0.3.36 into ${OPTIQ_CACHE:-~/.cache/optiq}/llama.cpp-0.3.36/build/bin; optiq's side is
optiq_bench_model (bench/model_bench.cpp) with its `gguf/<file stem>/{pp128,tg64}` rows.

What is measured, per model and thread count, in each alternation:
  llama.cpp  llama-bench -m GGUF -t T -p 128 -n 64 -r R -o json, with --repack 0 and --repack 1 (the
             default) as two runs where the binary has that flag; otherwise llama.cpp's defaults.
             pp128: one 128-token batch from an empty cache; tg64: 64 one-token steps from an empty
             cache. Its tok/s is the mean over its R repetitions.
  optiq      optiq_bench_model --gguf GGUF --threads T --benchmark_filter=^gguf/ with R repetitions,
             the same two measurements through model::load's default options; tok/s is the mean.
The engines swap order every alternation. The table shows, per engine, the best alternation (the
least disturbed on a shared machine) and the range; llama.cpp's column is the better of repack on /
off, named. The CPU model, its SIMD flags and the load average go with it, so every row says which
machine it came from.

    python3 bench/llama_cpp_compare.py --optiq-bench build/bench/optiq_bench_model
    python3 bench/llama_cpp_compare.py -m model.gguf --threads 2,4 --alternations 5 --json out.json
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time

VERSION = "0.3.36"
PROMPT, DECODE = 128, 64
TESTS = (f"pp{PROMPT}", f"tg{DECODE}")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cache_dir():
    return os.environ.get("OPTIQ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "optiq")


def default_models():
    return [os.path.join(cache_dir(), f) for f in
            ("SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")]


def machine():
    """CPU model and the SIMD features the kernels of either engine choose from."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and not name:
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
              "amx_tile", "amx_int8", "asimddp", "i8mm", "sve")
    return {
        "cpu": name or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "simd": [f for f in wanted if f in flags],
        "kernel": platform.release(),
    }


def run(cmd):
    """Runs cmd, echoing it to stderr; returns (rc, stdout, stderr)."""
    print("+ " + shlex.join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def why(rc, err):
    tail = err.strip().splitlines()[-1] if err.strip() else ""
    if rc < 0:
        return f"killed by signal {-rc}" + (f" ({tail})" if tail else "")
    return f"exit {rc}" + (f": {tail}" if tail else "")


def llama_version(llama_bench):
    rc, out, err = run([llama_bench, "--version"])
    lines = [l for l in (out + err).splitlines() if l.startswith("version:")]
    return lines[0].split(":", 1)[1].strip() if rc == 0 and lines else "unknown version"


def has_repack_flag(llama_bench):
    rc, out, err = run([llama_bench, "--help"])
    return "--repack" in out + err


def busy_cores(seconds=1.0):
    """Cores kept busy by other processes over the next `seconds` (from /proc/stat; else the
    1-minute load average): how disturbed the next measurement starts."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))


def settle(below, limit_s=600):
    """Busy cores now; with `below`, first waits (at most limit_s) until fewer than that are busy."""
    deadline = time.monotonic() + limit_s
    busy = busy_cores()
    while below is not None and busy >= below and time.monotonic() < deadline:
        busy = busy_cores(2.0)
    return busy


def llama_bench_once(llama_bench, model, threads, reps, repack, extra):
    """{test: tok/s} from one llama-bench run (pp and tg in one process; when that process fails,
    each test alone, so a crash in one does not lose the other), and {test: error}."""
    base = [llama_bench, "-m", model, "-t", str(threads), "-r", str(reps), "-o", "json"] + extra
    if repack is not None:
        base += ["--repack", str(repack)]
    rates, errors, info = {}, {}, {}

    def parse(out):
        for row in json.loads(out):
            test = f"pp{row['n_prompt']}" if row["n_gen"] == 0 else f"tg{row['n_gen']}"
            rates[test] = float(row["avg_ts"])
            info.update({k: row.get(k) for k in ("build_commit", "build_number", "cpu_info", "model_type",
                                                 "n_batch", "n_ubatch", "flash_attn", "poll")})

    def ok(rc, out):
        if rc != 0:
            return False
        try:
            parse(out)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            return False
        return True

    rc, out, err = run(base + ["-p", str(PROMPT), "-n", str(DECODE)])
    if ok(rc, out):
        return rates, errors, info
    for test, args in ((TESTS[0], ["-p", str(PROMPT), "-n", "0"]), (TESTS[1], ["-p", "0", "-n", str(DECODE)])):
        rc, out, err = run(base + args)
        if not ok(rc, out):
            errors[test] = why(rc, err) if rc != 0 else "unreadable JSON output"
            print(f"llama_cpp_compare: llama-bench {test} repack={repack}: {errors[test]}", file=sys.stderr)
    return rates, errors, info


def optiq_once(optiq_bench, model, threads, reps):
    """{test: tok/s} (mean over the repetitions) from optiq_bench_model's gguf rows, and {test: error}."""
    cmd = [optiq_bench, "--gguf", model, "--threads", str(threads), "--benchmark_filter=^gguf/",
           f"--benchmark_repetitions={reps}", "--benchmark_format=json"]
    rc, out, err = run(cmd)
    rates, errors, info = {}, {}, {}
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        return rates, {t: why(rc, err) for t in TESTS}, info
    info = {k: data.get("context", {}).get(k) for k in ("optiq_matmul_arch", "optiq_threads")}
    for b in data.get("benchmarks", []):
        test = b["run_name"].split("/")[2]  # gguf/<stem>/<test>/real_time
        if b.get("error_occurred"):
            errors[test] = b.get("error_message", "error")
        elif reps == 1 or (b.get("run_type") == "aggregate" and b.get("aggregate_name") == "mean"):
            rates[test] = float(b["tok/s"])
    if rc != 0:
        for t in TESTS:
            if t not in rates:
                errors.setdefault(t, why(rc, err))
    return rates, errors, info


def best(values):
    return max(values) if values else None


def fmt(v):
    return "—" if v is None else f"{v:.1f}"


def fmt_range(values):
    if not values:
        return "—"
    lo, hi = min(values), max(values)
    return f"{hi:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{hi:.1f} ({lo:.1f}–{hi:.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", "-m", dest="models", action="append", default=[], metavar="GGUF",
                    help="a GGUF file, repeatable (default: SmolLM2-135M Q4_1 and Qwen2.5-Coder-0.5B Q4_K_M "
                         "in $OPTIQ_CACHE, those present)")
    ap.add_argument("--threads", "-t", action="append", default=[], metavar="N[,N...]",
                    help="thread counts, repeatable or comma-separated (default: 2 and all cores)")
    ap.add_argument("--alternations", type=int, default=3, help="llama.cpp / optiq alternations (default 3)")
    ap.add_argument("--repetitions", "-r", type=int, default=3,
                    help="repetitions inside each engine's run (llama-bench -r, --benchmark_repetitions)")
    ap.add_argument("--llama-bench", default=os.path.join(cache_dir(), f"llama.cpp-{VERSION}", "build", "bin",
                                                          "llama-bench"))
    ap.add_argument("--optiq-bench", default=os.path.join(REPO, "build", "bench", "optiq_bench_model"))
    ap.add_argument("--llama-bench-args", default="", metavar="ARGS",
                    help="extra llama-bench arguments, one shell-quoted string (e.g. '--poll 0'); default none, "
                         "llama.cpp's defaults")
    ap.add_argument("--quiet-below", type=float, metavar="CORES",
                    help="before each engine run, wait (up to 10 min) until other processes keep fewer than "
                         "CORES cores busy (a shared machine; e.g. 0.2)")
    ap.add_argument("--json", metavar="OUT", help="also write every measurement and the summary here")
    a = ap.parse_args()

    if not os.access(a.llama_bench, os.X_OK):
        sys.exit(f"llama_cpp_compare: {a.llama_bench} not found: bash scripts/build_llama_cpp.sh builds it")
    if not os.access(a.optiq_bench, os.X_OK):
        sys.exit(f"llama_cpp_compare: {a.optiq_bench} not found: build the optiq_bench_model target "
                 "(or pass --optiq-bench)")
    if a.models:
        models = a.models
        for m in models:
            if not os.path.isfile(m):
                sys.exit(f"llama_cpp_compare: {m} not found")
    else:
        models = [m for m in default_models() if os.path.isfile(m)]
        for m in default_models():
            if m not in models:
                print(f"llama_cpp_compare: {m} not found, skipped (scripts/fetch_models.sh [--qwen])", file=sys.stderr)
        if not models:
            sys.exit("llama_cpp_compare: no model found")
    try:
        threads = sorted({int(n) for arg in a.threads for n in arg.split(",")}) or sorted({2, os.cpu_count() or 2})
    except ValueError:
        sys.exit(f"llama_cpp_compare: --threads takes integers, got {a.threads}")
    if a.alternations < 1 or a.repetitions < 1 or min(threads) < 1:
        sys.exit("llama_cpp_compare: --alternations, --repetitions and --threads must be at least 1")

    host = machine()
    repacks = [0, 1] if has_repack_flag(a.llama_bench) else [None]
    llama_ver = llama_version(a.llama_bench)
    started = datetime.datetime.now().astimezone()
    load_start = os.getloadavg()
    raw, summary, llama_info, optiq_info = [], [], {}, {}
    for model in models:
        for t in threads:
            # per engine setting and test: the tok/s of each alternation
            got = {("llama.cpp", r, test): [] for r in repacks for test in TESTS}
            got.update({("optiq", None, test): [] for test in TESTS})
            errors = {}
            for alt in range(a.alternations):
                def run_llama():
                    for r in repacks:
                        busy = settle(a.quiet_below)
                        rates, errs, info = llama_bench_once(a.llama_bench, model, t, a.repetitions, r,
                                                             shlex.split(a.llama_bench_args))
                        llama_info.update(info)
                        raw.append({"engine": "llama.cpp", "model": model, "threads": t, "alternation": alt,
                                    "repack": r, "tok_s": rates, "errors": errs, "busy_before": busy,
                                    "loadavg": os.getloadavg()[0]})
                        for test, v in rates.items():
                            if test in TESTS:
                                got[("llama.cpp", r, test)].append(v)
                        for test, e in errs.items():
                            errors[(f"llama.cpp repack {r if r is not None else 'default'}", test)] = e

                def run_optiq():
                    busy = settle(a.quiet_below)
                    rates, errs, info = optiq_once(a.optiq_bench, model, t, a.repetitions)
                    optiq_info.update(info)
                    raw.append({"engine": "optiq", "model": model, "threads": t, "alternation": alt,
                                "tok_s": rates, "errors": errs, "busy_before": busy, "loadavg": os.getloadavg()[0]})
                    for test, v in rates.items():
                        if test in TESTS:
                            got[("optiq", None, test)].append(v)
                    for test, e in errs.items():
                        errors[("optiq", test)] = e

                for step in ((run_llama, run_optiq) if alt % 2 == 0 else (run_optiq, run_llama)):
                    step()
            row = {"model": os.path.basename(model), "threads": t, "llama.cpp": {}, "optiq": {}, "ratio": {},
                   "per_setting": {}, "errors": {f"{e} {k}": v for (e, k), v in errors.items()}}
            for test in TESTS:
                per_repack = {r: best(got[("llama.cpp", r, test)]) for r in repacks}
                ok = {r: v for r, v in per_repack.items() if v is not None}
                lr = max(ok, key=ok.get) if ok else None
                lbest = ok.get(lr) if ok else None
                obest = best(got[("optiq", None, test)])
                row["llama.cpp"][test] = {"tok_s": lbest, "repack": lr}
                row["optiq"][test] = {"tok_s": obest}
                row["ratio"][test] = obest / lbest if obest and lbest else None
                for r in repacks:
                    row["per_setting"][f"llama.cpp repack {r if r is not None else 'default'}/{test}"] = \
                        got[("llama.cpp", r, test)]
                row["per_setting"][f"optiq/{test}"] = got[("optiq", None, test)]
            summary.append(row)
    load_end = os.getloadavg()

    def repack_name(r):
        return "" if r is None else f" (repack {r})"

    simd = ", ".join(host["simd"]) or "none of avx2 / avx512 / vnni"
    print(f"\n### llama.cpp vs optiq, same run ({started:%Y-%m-%d %H:%M %Z})\n")
    print(f"Machine: {host['cpu']} ({host['arch']}, {host['cores']} cores; {simd}); "
          f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end.")
    print(f"llama.cpp: {a.llama_bench} ({llama_ver}; llama-cpp-python {VERSION}'s vendored source "
          "unless built otherwise); "
          f"optiq: {a.optiq_bench} ({optiq_info.get('optiq_matmul_arch')} kernels).")
    print(f"Best of {a.alternations} alternations, each the mean of {a.repetitions} repetitions; "
          f"pp{PROMPT} = one {PROMPT}-token prompt, tg{DECODE} = {DECODE} one-token steps, both from an empty cache.")
    busy = [r["busy_before"] for r in raw]
    print(f"Cores kept busy by other processes in the second before each engine run: "
          f"{min(busy):.2f}–{max(busy):.2f} of {host['cores']}.")
    print(f"Command: {shlex.join([sys.executable] + sys.argv)}\n")
    print(f"| model | threads | llama.cpp pp{PROMPT} tok/s | optiq pp{PROMPT} tok/s | pp optiq/llama.cpp "
          f"| llama.cpp tg{DECODE} tok/s | optiq tg{DECODE} tok/s | tg optiq/llama.cpp |")
    print("|---|---|---|---|---|---|---|---|")
    for row in summary:
        cells = [row["model"], str(row["threads"])]
        for test in TESTS:
            l, o, r = row["llama.cpp"][test], row["optiq"][test], row["ratio"][test]
            cells += [fmt(l["tok_s"]) + (repack_name(l["repack"]) if l["tok_s"] is not None else ""),
                      fmt(o["tok_s"]), "—" if r is None else f"{r:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    print(f"\nEvery setting, best (range) over the alternations:\n")
    print(f"| model | threads | engine | pp{PROMPT} tok/s | tg{DECODE} tok/s |")
    print("|---|---|---|---|---|")
    for row in summary:
        settings = sorted({k.rsplit("/", 1)[0] for k in row["per_setting"]})
        for s in settings:
            print(f"| {row['model']} | {row['threads']} | {s} | "
                  + " | ".join(fmt_range(row["per_setting"][f"{s}/{test}"]) for test in TESTS) + " |")
    print()
    for row in summary:
        for k, v in row["errors"].items():
            print(f"failed: {row['model']}, {row['threads']} threads, {k}: {v}")
    # A failed llama.cpp setting (repack on an AMX machine whose VM hides AMX) is reported above; the
    # run fails only when a cell of the main table has no number.
    failed = any(row[e][test]["tok_s"] is None for row in summary for e in ("llama.cpp", "optiq") for test in TESTS)

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"started": started.isoformat(), "command": [sys.executable] + sys.argv, "machine": host,
                       "loadavg_start": load_start, "loadavg_end": load_end, "llama_cpp_version": llama_ver,
                       "llama_cpp": llama_info, "optiq": optiq_info, "alternations": a.alternations,
                       "repetitions": a.repetitions, "summary": summary, "runs": raw}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""llama.cpp vs optiq: prefill and decode tok/s on the same GGUF, the same thread count, the same
prompt and decode lengths as bench/model_bench.cpp (a benchmark, not a CI test).

llama.cpp runs through PyPI llama-cpp-python, built from its sdist (it compiles llama.cpp with CMake;
several minutes on 2 cores; pip keeps the built wheel in its cache, so a second install is instant):

    CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \\
        pip install llama-cpp-python

What is measured (mirrors model_bench.cpp):
  prefill  one 128-token prompt, token i = (i*7919 + 13) % vocab, from an empty KV cache
           (llama.cpp evaluates it in one batch of n_batch = 128)     tok/s = 128 / time
  decode   64 single-token steps after that prompt, greedy (argmax)  tok/s = 64 / time
Each is repeated (--repetitions) and the median reported. With --optiq-bench (the optiq_bench_model
binary) the same script runs optiq's SmolLM2 rows (--benchmark_repetitions) and prints both side by
side; optiq's f32 row is the GGUF dequantized to f32 at load, its affine rows are that f32 model
requantized to MLX 4/8-bit (group 64), llama.cpp runs the file's own Q4_1 blocks.

    python3 bench/llama_cpp_compare.py --threads 2 \\
        --optiq-bench build/bench/optiq_bench_model
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROMPT, DECODE = 128, 64


def default_gguf():
    cache = os.environ.get("OPTIQ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "optiq")
    return os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")


def llama_cpp_rates(path, threads, reps):
    try:
        import numpy as np
        from llama_cpp import Llama
    except ImportError as e:
        sys.exit(f"{e}: install llama-cpp-python as this script's docstring says")
    llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=PROMPT + DECODE + 16,
                n_batch=PROMPT, logits_all=False, verbose=False)
    vocab = llm.n_vocab()
    prompt = [(i * 7919 + 13) % vocab for i in range(PROMPT)]
    def argmax_last():
        # Without logits_all, Llama.eval keeps no scores: read llama.cpp's buffer, which holds the
        # one output row of the last batch (its last token).
        return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))))

    prefill, decode = [], []
    for _ in range(reps + 1):  # the first round warms caches and page-faults the weights in
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        tok = argmax_last()
        t2 = time.perf_counter()
        for _ in range(DECODE):
            llm.eval([tok])
            tok = argmax_last()
        t3 = time.perf_counter()
        prefill.append(PROMPT / (t1 - t0))
        decode.append(DECODE / (t3 - t2))
    import llama_cpp
    return statistics.median(prefill[1:]), statistics.median(decode[1:]), llama_cpp.__version__


def optiq_rates(binary, reps):
    """Median tok/s of optiq_bench_model's SmolLM2 rows: {(weights, phase): rate}."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [binary, "--benchmark_filter=^SmolLM2", f"--benchmark_repetitions={reps}", "--benchmark_min_time=0.5",
           f"--benchmark_out={out}", "--benchmark_out_format=json"]
    print("optiq:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        data = json.load(f)
    os.unlink(out)
    rates = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "aggregate" or b.get("aggregate_name") != "median":
            continue
        parts = b["run_name"].split("/")  # SmolLM2-135M/<weights>/<phase>/real_time
        rates[(parts[1], parts[2])] = b["tok/s"]
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=default_gguf())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--optiq-bench", help="path of optiq_bench_model, to run optiq's rows in the same session")
    a = ap.parse_args()
    if not os.path.isfile(a.gguf):
        sys.exit(f"{a.gguf} not found (scripts/fetch_models.sh)")
    load = os.getloadavg()[0]
    lp, ld, version = llama_cpp_rates(a.gguf, a.threads, a.repetitions)
    rows = [(f"llama.cpp {version} (Q4_1 blocks)", lp, ld)]
    if a.optiq_bench:
        o = optiq_rates(a.optiq_bench, a.repetitions)
        for w in ("f32", "affine4_g64", "affine8_g64"):
            if (w, "prefill") in o:
                rows.append((f"optiq {w}", o[(w, "prefill")], o.get((w, "decode"), float("nan"))))
    print(f"\n{os.path.basename(a.gguf)}, {a.threads} threads, prompt {PROMPT}, decode {DECODE}; "
          f"medians of {a.repetitions}; load average {load:.1f} at start\n")
    print(f"| engine / weights | prefill tok/s | vs llama.cpp | decode tok/s | vs llama.cpp |")
    print(f"|---|---|---|---|---|")
    for name, p, d in rows:
        print(f"| {name} | {p:.1f} | {p / lp:.2f}x | {d:.1f} | {d / ld:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Quality of optiq-convert and optiq-kv-cache outputs, the tables of docs/results.md.
#   bench/quality.sh [BUILD_DIR] [weights|kv|all]     (default: build all)
# Held-out protocol: calibration is the LAST 390,547 bytes of WikiText-2 test; evaluation is
# llama.cpp's perplexity on the FIRST chunks of the same file (512 tokens each, second half
# scored; about 25 KB of text), so no calibration token is ever scored. KL is the mean
# KL(reference || evaluated) of the next-token distributions at the scored positions, the
# reference being the unquantized model with f32 caches. Outputs go to $OPTIQ_CACHE/quality
# (default ~/.cache/optiq/quality); sensitivity tables are cached, so a rerun only evaluates.
# One JSON object per line on stdout: {"model", "config", "ppl", "ref_ppl", "kl_mean", "bpw"}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
what=${2:-all}
shared=$(cd "$root/../shared" && pwd)
cache=${OPTIQ_CACHE:-$HOME/.cache/optiq}
out=$cache/quality
mkdir -p "$out"
wiki=$shared/data/wikitext-2-raw-test.txt
calib=$out/calib-wikitext-test-tail.txt
tail -c 390547 "$wiki" > "$calib"
smol=$cache/SmolLM2-135M-Instruct.Q4_1.gguf
stories=$shared/models/stories260K/stories260K.bin
stories_tok=$shared/models/stories260K/tok512.bin
convert=$build/examples/optiq-convert
kvcache=$build/examples/optiq-kv-cache
evaluate=$build/examples/optiq-eval
chunks=${OPTIQ_QUALITY_CHUNKS:-10}

# emit MODEL CONFIG BPW EVAL-ARGS...: one JSON line from optiq-eval --json.
emit() {
    local model=$1 config=$2 bpw=$3
    shift 3
    local r
    r=$("$evaluate" "$@" --text "$wiki" --ctx 512 --chunks "$chunks" --json -q)
    python3 -c 'import json,sys; r=json.loads(sys.argv[4]); r={"model":sys.argv[1],"config":sys.argv[2],"bpw":float(sys.argv[3]),**r}; print(json.dumps(r))' \
        "$model" "$config" "$bpw" "$r"
}

# achieved bpw of a converted directory (over its quantized modules).
bpw_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/optiq_metadata.json"))["achieved_bpw"])' "$1"; }

# mean bits per cached coordinate of a kv_config.json (keys and values; bits 0 = f16).
kv_bits_of() {
    python3 -c 'import json,sys
e=json.load(open(sys.argv[1])); b=lambda x: x or 16
print(sum(b(x.get("k_bits",x["bits"]))+b(x.get("v_bits",x["bits"])) for x in e)/(2*len(e)))' "$1"
}

weights() {
    local name=$1 model=$2
    shift 2
    local tok=("$@")  # --tokenizer F for llama2.c checkpoints
    local d
    for bits in 4 8; do
        d=$out/$name-u$bits
        [ -d "$d" ] || "$convert" "$model" "${tok[@]}" --method uniform --bits "$bits" -q -o "$d" > /dev/null
        emit "$name" "uniform $bits-bit" "$(bpw_of "$d")" --model "$model" "${tok[@]}" --quantized "$d"
    done
    # Uniform 4-bit in groups of 32 stores as many bytes (scales and biases included) as optiq's
    # 4.5 bpw in groups of 64: the equal-size comparison.
    d=$out/$name-u4-g32
    [ -d "$d" ] || "$convert" "$model" "${tok[@]}" --method uniform --bits 4 --group-size 32 -q -o "$d" > /dev/null
    emit "$name" "uniform 4-bit g32" "$(bpw_of "$d")" --model "$model" "${tok[@]}" --quantized "$d"
    for cand in 4,8 4,5,6,8; do
        d=$out/$name-optiq-4.5-c${cand//,/}
        [ -d "$d" ] || "$convert" "$model" "${tok[@]}" --target-bpw 4.5 --candidate-bits "$cand" \
            --calibration "$calib" -q -o "$d" > /dev/null
        emit "$name" "optiq 4.5 bpw, bits {$cand}" "$(bpw_of "$d")" --model "$model" "${tok[@]}" --quantized "$d"
    done
}

# uniform_kv FILE METHOD BITS [GROUP] [K_BITS V_BITS]: a kv_config.json with one entry per layer.
uniform_kv() {
    python3 - "$@" <<'EOF'
import json, sys
path, method, bits = sys.argv[1], sys.argv[2], int(sys.argv[3])
group = int(sys.argv[4]) if len(sys.argv) > 4 else 64
e = [{"layer_idx": i, "bits": bits, "group_size": group, "method": method} for i in range(30)]
if len(sys.argv) > 6:
    for x in e: x["k_bits"], x["v_bits"] = int(sys.argv[5]), int(sys.argv[6])
json.dump(e, open(path, "w"))
EOF
}

kv() {
    local name=smollm2 cfg
    emit "$name" "f32 KV" 32 --model "$smol"
    for spec in "affine 8 64" "affine 4 64" "affine 4 32" "tq_mse 4" "tq_mse 3" "kivi 4 32"; do
        set -- $spec
        cfg=$out/kv-$1-$2-g${3:-64}.json
        uniform_kv "$cfg" "$1" "$2" "${3:-64}"
        emit "$name" "KV $1 $2-bit${3:+ g$3}" "$2" --model "$smol" --kv-config "$cfg" --kl
    done
    # The same 4-bit TurboQuant cache attending with int8 arithmetic (AVX-512 VNNI; elsewhere it is the row above).
    emit "$name" "KV tq_mse 4-bit +int8" 4 --model "$smol" --kv-config "$out/kv-tq_mse-4-g64.json" --kl --kv-int8
    for method in affine tq_mse; do
        d=$out/kv-$method-4.5
        [ -f "$d/kv_config.json" ] || "$kvcache" "$smol" --target-bits 4.5 --candidate-bits 4,8 --method "$method" \
            --calibration "$calib" -q -o "$d" > /dev/null
        emit "$name" "KV $method mixed {4,8} @ 4.5" "$(kv_bits_of "$d/kv_config.json")" --model "$smol" --kv-config "$d/kv_config.json" --kl
    done
    # KIVI (keys per channel: SmolLM2's keys have outlier channels), candidates {2,4,8}.
    d=$out/kv-kivi-4.5
    [ -f "$d/kv_config.json" ] || "$kvcache" "$smol" --method kivi --group-size 32 --candidate-bits 2,4,8 --target-bits 4.5 \
        --calibration "$calib" --n-calibration 3 --seq-len 256 --kl-positions all -q -o "$d" > /dev/null
    emit "$name" "KV kivi mixed {2,4,8} @ 4.5" "$(kv_bits_of "$d/kv_config.json")" --model "$smol" --kv-config "$d/kv_config.json" --kl
}

[ -f "$smol" ] || { echo "quality.sh: $smol missing (scripts/fetch_models.sh)" >&2; exit 1; }
case $what in
    weights) weights stories260K "$stories" --tokenizer "$stories_tok"; weights smollm2 "$smol" ;;
    kv) kv ;;
    all) weights stories260K "$stories" --tokenizer "$stories_tok"; weights smollm2 "$smol"; kv ;;
    *) echo "usage: bench/quality.sh [BUILD_DIR] [weights|kv|all]" >&2; exit 2 ;;
esac

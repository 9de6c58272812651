#!/usr/bin/env bash
# Long fuzz campaigns (docs/reliability.md): each optiq fuzz target for SECONDS under ASan + UBSan,
# all in parallel (one core each), from the seed corpora plus whatever OUT_DIR/corpus already holds
# (so a campaign can be resumed). Logs, grown corpora and any crash inputs go to OUT_DIR; the last
# lines print one summary line per target.
#   usage: tests/fuzz/campaign.sh BIN_DIR SEED_DIR SECONDS OUT_DIR [TARGET...]
#   BIN_DIR: where the optiq_fuzz_* programs are (build-fuzz/tests/fuzz); SEED_DIR: what
#   optiq_fuzz_make_seeds wrote (build-fuzz/tests/fuzz/seeds, serve/ included by CMake).
set -euo pipefail
bin=$1 seeds=$2 secs=$3 out=$4
shift 4
src=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors gguf llama2c serve_request tokenizer_json model_config kv_config chat_template mlx_dir)
mkdir -p "$out"
for t in "${targets[@]}"; do
    case $t in
        safetensors | gguf | llama2c) seed=$seeds/$t len=4096 ;;
        serve_request) seed=$seeds/serve len=4096 ;;
        *) seed=$src/corpus/$t len=8192 ;;
    esac
    mkdir -p "$out/corpus/$t"
    "$bin/optiq_fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=$len -print_final_stats=1 \
        -artifact_prefix="$out/$t-" "$out/corpus/$t" "$seed" >"$out/$t.log" 2>&1 &
done
status=0
wait || status=$?
for t in "${targets[@]}"; do
    runs=$(sed -n 's/^stat::number_of_executed_units: //p' "$out/$t.log")
    cov=$(grep -o 'DONE *cov: [0-9]*' "$out/$t.log" | grep -o '[0-9]*$' || true)
    found=$(find "$out" -maxdepth 1 -name "$t-*" | wc -l)
    echo "$t: ${runs:-?} executions, cov ${cov:-?}, corpus $(find "$out/corpus/$t" -type f | wc -l) files, findings $found"
done
exit $status

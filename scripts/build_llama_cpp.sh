#!/usr/bin/env bash
# Builds llama.cpp's measuring tools (llama-bench, llama-batched-bench, llama-perplexity, llama-server)
# from the llama.cpp copy vendored in PyPI's llama-cpp-python 0.3.36 source package, for the same-run
# comparison in bench/llama_cpp_compare.py (issue 17). Nothing lands in the clone: the sdist, the
# extracted source and the build live in the cache. Idempotent: tools already built are not rebuilt.
#   bash scripts/build_llama_cpp.sh              # the four tools
#   bash scripts/build_llama_cpp.sh --no-server  # without llama-server (the slowest target to compile)
#   bash scripts/setup.sh --llama-cpp            # the same, from the setup step
# Cache: ${OPTIQ_CACHE:-$HOME/.cache/optiq}/llama.cpp-0.3.36/{llama_cpp_python-0.3.36.tar.gz,src,build}.
# Prints the folder holding the binaries (build/bin) on stdout; everything else goes to stderr.
#
# Build: Release, -DGGML_NATIVE=ON (-march=native: the binaries are for this machine only), CPU backend
# only (no CUDA / Metal / Vulkan), no curl / OpenSSL (models are local files), static libraries, no web
# UI in llama-server. On an AMX-capable Xeon whose VM does not grant AMX, such a native build crashes
# in batched prompt processing unless weight repacking is off (`llama-bench --repack 0`, `-nr`); see
# ../shared/models/README.md. On AMD EPYC (Zen 4: AVX-512 + VNNI, no AMX) both settings run.
set -euo pipefail

VERSION=0.3.36
# The sdist's sha256 as PyPI publishes it (https://pypi.org/simple/llama-cpp-python/).
SDIST_SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
CACHE=${OPTIQ_CACHE:-$HOME/.cache/optiq}
ROOT=$CACHE/llama.cpp-$VERSION
SDIST=$ROOT/llama_cpp_python-$VERSION.tar.gz
SRC=$ROOT/src
BUILD=$ROOT/build
PYTHON=${PYTHON:-python3}

targets=(llama-bench llama-batched-bench llama-perplexity llama-server)
for arg in "$@"; do
    case "$arg" in
        --no-server) targets=(llama-bench llama-batched-bench llama-perplexity) ;;
        *) echo "build_llama_cpp: unknown argument '$arg' (known: --no-server)" >&2; exit 2 ;;
    esac
done

missing=()
for t in "${targets[@]}"; do
    [ -x "$BUILD/bin/$t" ] || missing+=("$t")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "build_llama_cpp: ${targets[*]} present in $BUILD/bin" >&2
    echo "$BUILD/bin"
    exit 0
fi

mkdir -p "$ROOT"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ ! -f "$SDIST" ] || [ "$(sha_of "$SDIST")" != "$SDIST_SHA" ]; then
    echo "build_llama_cpp: pip download llama-cpp-python==$VERSION (source package, ~77 MB)" >&2
    rm -f "$SDIST"
    tmp=$(mktemp -d "$ROOT/download.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$tmp" >&2
    [ -f "$tmp/llama_cpp_python-$VERSION.tar.gz" ] ||
        { echo "build_llama_cpp: pip did not produce llama_cpp_python-$VERSION.tar.gz" >&2; exit 1; }
    mv "$tmp/llama_cpp_python-$VERSION.tar.gz" "$SDIST"
fi
got=$(sha_of "$SDIST")
if [ "$got" != "$SDIST_SHA" ]; then
    echo "build_llama_cpp: sha256 mismatch for $SDIST: got $got, want $SDIST_SHA" >&2
    exit 1
fi

if [ ! -f "$SRC/CMakeLists.txt" ]; then
    echo "build_llama_cpp: extracting vendor/llama.cpp into $SRC" >&2
    rm -rf "$SRC" "$SRC.part"
    mkdir -p "$SRC.part"
    tar -xzf "$SDIST" -C "$SRC.part" --strip-components=3 "llama_cpp_python-$VERSION/vendor/llama.cpp"
    mv "$SRC.part" "$SRC"
fi

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$SRC" -B "$BUILD" "${generator[@]}" \
        -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON \
        -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >&2
fi
echo "build_llama_cpp: building ${missing[*]} in $BUILD (-j$(nproc))" >&2
cmake --build "$BUILD" --target "${missing[@]}" -j "$(nproc)" >&2
for t in "${targets[@]}"; do
    [ -x "$BUILD/bin/$t" ] || { echo "build_llama_cpp: $BUILD/bin/$t was not built" >&2; exit 1; }
done
echo "build_llama_cpp: built ${missing[*]} in $BUILD/bin" >&2
echo "$BUILD/bin"

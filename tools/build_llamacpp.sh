#!/usr/bin/env bash
# Builds llama.cpp's llama-bench, llama-perplexity, llama-quantize, llama-server and llama-mtmd-cli from the llama.cpp sources
# carried by llama-cpp-python's source distribution (our speed and correctness peer), with
# native CPU flags, into $LLAMACPP_DIR (default ~/.cache/gemma-engine/llama.cpp). Nothing of
# llama.cpp enters this repository. Prints the bin directory.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
DIR="${LLAMACPP_DIR:-$HOME/.cache/gemma-engine/llama.cpp}"
mkdir -p "$DIR"
if [ ! -x "$DIR/build/bin/llama-bench" ] || [ ! -x "$DIR/build/bin/llama-server" ] ||
  [ ! -x "$DIR/build/bin/llama-mtmd-cli" ]; then
  if [ ! -d "$DIR/src" ]; then
    python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$DIR/sdist"
    tar -xzf "$DIR/sdist/llama_cpp_python-$VERSION.tar.gz" -C "$DIR/sdist"
    mv "$DIR/sdist/llama_cpp_python-$VERSION/vendor/llama.cpp" "$DIR/src"
  fi
  # AMX stays off: on Xeons with AMX-INT8 this llama.cpp's AMX matmul dies with SIGILL at its first
  # tileloadd (the tile configuration it loads is a stack object the compiler drops; upstream
  # llama.cpp PR 26954), so with AMX the peer would not run at all. Its AVX-512 VNNI/BF16 paths
  # and weight repacking stay on. The macros are what its AMX code is guarded by.
  NO_AMX="-U__AMX_INT8__ -U__AMX_TILE__ -U__AMX_BF16__"
  cmake -S "$DIR/src" -B "$DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON >/dev/null
  cmake --build "$DIR/build" -j"${JOBS:-2}" --target llama-bench llama-perplexity llama-quantize llama-server \
    llama-mtmd-cli >/dev/null
fi
echo "$DIR/build/bin"

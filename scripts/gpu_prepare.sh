#!/usr/bin/env bash
# Prepares, on this CPU machine, everything scripts/gpu_check.sh needs on a lent GPU machine (which
# reaches no network and takes at most 64 MiB of carried files besides the working tree):
#   build-gpu/carry/bin      gemma and cuda_backend_tests, built with -DGEMMA_CUDA=ON for sm_90
#   build-gpu/carry/lib      the shared libraries they need that a CUDA image may lack (fmt, zstd,
#                            cpp-httplib, brotli); glibc, libstdc++, zlib, OpenSSL, cuBLAS and the
#                            CUDA runtime are the machine's own
#   build-gpu/carry/py       the pure-Python `gguf` package, for scripts/gpu_models.py
#   build-gpu/carry/tok.npz  Gemma 3's tokenizer (from the 270M GGUF), for the random-weight models
#   build-gpu/carry/llama    llama.cpp's CUDA llama-bench, when LLAMACPP_CUDA_BIN names a built one
#                            (tools/build_llamacpp.sh's sources built with -DGGML_CUDA=ON
#                            -DCMAKE_CUDA_ARCHITECTURES=90) and it fits
# Then, with the device tool: run(command="bash scripts/gpu_check.sh", carry=["build-gpu/carry"]).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"
C=build-gpu/carry
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
nice -n 15 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEMMA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DGEMMA_BUILD_BENCH=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache >/dev/null
nice -n 15 cmake --build build-gpu -j"$JOBS" --target gemma cuda_backend_tests
rm -rf "$C" && mkdir -p "$C/bin" "$C/lib" "$C/py"
cp build-gpu/gemma build-gpu/tests/kernels/cuda_backend_tests "$C/bin/"
strip "$C/bin/"*
# Libraries outside glibc, the C++ runtime and CUDA's own (the GPU image has those, newer).
for b in "$C/bin/"*; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*|libz|libssl|libcrypto|libcuda|libcudart|libcublas[^/]*|libcublasLt)\.so' |
  while read -r lib; do cp -L "$lib" "$C/lib/"; done
cp -r "$(python3 -c 'import gguf, os; print(os.path.dirname(gguf.__file__))')" "$C/py/gguf"
find "$C/py" -name __pycache__ -prune -exec rm -rf {} +
python3 scripts/gpu_models.py export-tokenizer "$C/tok.npz"
# The tests find their fixtures at the absolute path they were built with: gpu_check.sh links it
# to the fixtures of the copy it runs in.
echo "$PWD/tests/fixtures" >"$C/fixtures_dir"
if [ -n "${LLAMACPP_CUDA_BIN:-}" ] && [ -x "$LLAMACPP_CUDA_BIN/llama-bench" ]; then
  mkdir -p "$C/llama"
  cp -L "$LLAMACPP_CUDA_BIN/llama-bench" "$LLAMACPP_CUDA_BIN"/lib*.so* "$C/llama/" 2>/dev/null || true
  strip "$C/llama/"* 2>/dev/null || true
fi
du -sh "$C"
bytes=$(du -sb "$C" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
if [ $((bytes + tree)) -gt $((64 << 20)) ]; then
  echo "gpu_prepare: carry ($bytes bytes) + tree ($tree bytes) exceed the device's 64 MiB; drop build-gpu/carry/llama" >&2
  exit 1
fi
echo "gpu_prepare: ready: run(command=\"bash scripts/gpu_check.sh\", carry=[\"build-gpu/carry\"], timeout_s=600)"

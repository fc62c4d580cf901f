#!/usr/bin/env bash
# Runs the whole test suite: the format check (.clang-format), the Release build's tests (parity,
# tokenizer, kernels, CLI, real model), then the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer on the
# small fixtures (tests labelled "heavy" are skipped there: they run the real model for long),
# then every libFuzzer target for FUZZ_SECONDS (default 15) each.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"

bash scripts/check_format.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEMMA_PYTHON=ON -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")
# The Python package's suite (tests/python) on the extension just built: the package's .py files
# from python/, the extension from build/python. Then the wheel as `pip wheel .` makes it (a second
# build of the library with fmt compiled in: ~3 min on 2 cores the first time, seconds with ccache
# after; GEMMA_TEST_WHEEL=0 skips it), installed into a scratch folder: the package tests (stubs,
# ldd: only system libraries), the tiny-model tests and the README's one-liner run on that.
if ! ls build/python/gemma_engine/_core*.so >/dev/null 2>&1; then
  echo "test: the Python extension was not built (cmake's GEMMA_PYTHON warning says why)"
  exit 1
fi
PYTHONPATH="$PWD/python:$PWD/build/python" python3 -m pytest -q -p no:cacheprovider tests/python
if [ "${GEMMA_TEST_WHEEL:-1}" = "1" ]; then
  rm -rf build-python/dist build-python/site
  python3 -m pip wheel . --no-deps -w build-python/dist
  python3 -m pip install -q --no-deps --target build-python/site build-python/dist/gemma_engine-*.whl
  (cd tests/python && PYTHONPATH="$PWD/../../build-python/site" python3 -m pytest -q -p no:cacheprovider \
    test_package.py test_tiny.py test_server_ext.py test_real_model.py::test_readme_one_liner)
fi

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGEMMA_SANITIZE=ON -DGEMMA_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-O1" >/dev/null
cmake --build build-asan -j"$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$JOBS" -LE heavy)
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash scripts/fuzz.sh
echo "test: all passed"

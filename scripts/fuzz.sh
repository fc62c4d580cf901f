#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 20) from its seed
# corpus (tests/fixtures). Longer runs on demand: FUZZ_SECONDS=3600 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMMA_FUZZ=ON \
  -DGEMMA_BUILD_TESTS=OFF -DGEMMA_BUILD_BENCH=OFF >/dev/null
TARGETS="gguf safetensors sentencepiece tokenizer_json"
for f in fuzz/*.target; do [ -e "$f" ] && TARGETS="$TARGETS $(basename "$f" .target)"; done
cmake --build build-fuzz -j"${JOBS:-2}" --target $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done)

# Seed corpora: small real files of each kind (the working corpus grows in build-fuzz/).
for t in $TARGETS; do
  mkdir -p "build-fuzz/corpus/$t"
  if [ -d "fuzz/corpus/$t" ]; then cp -f fuzz/corpus/$t/* "build-fuzz/corpus/$t/" 2>/dev/null || true; fi
done
cp -f tests/fixtures/quant/quant_types.gguf tests/fixtures/models/gemma3_tiny_scaled/model.f32.gguf build-fuzz/corpus/gguf/
cp -f tests/fixtures/models/gemma3_tiny_scaled/model.safetensors build-fuzz/corpus/safetensors/

for t in $TARGETS; do
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s"
  log="build-fuzz/fuzz_$t.log"
  status=0
  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 "./fuzz/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" \
    -rss_limit_mb=4096 -max_len=1048576 -print_final_stats=1 "corpus/$t") >"$log" 2>&1 || status=$?
  grep -E "^stat::number_of_executed_units" "$log" || true
  if [ "$status" -ne 0 ]; then
    grep -E "ERROR|SUMMARY|Test unit written" "$log"
    echo "fuzz: $t FAILED (crash input saved in build-fuzz/, full log $log)"
    exit 1
  fi
done
echo "fuzz: all targets clean"

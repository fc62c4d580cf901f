#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 20) from its seed
# corpus (tests/fixtures). Longer runs on demand: FUZZ_SECONDS=3600 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMMA_FUZZ=ON \
  -DGEMMA_BUILD_TESTS=OFF -DGEMMA_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target fuzz_gguf fuzz_safetensors fuzz_sentencepiece fuzz_tokenizer_json

# Seed corpora: small real files of each kind (the working corpus grows in build-fuzz/).
mkdir -p build-fuzz/corpus/{gguf,safetensors,sentencepiece,tokenizer_json}
cp -f tests/fixtures/quant/quant_types.gguf tests/fixtures/models/gemma3_tiny_scaled/model.f32.gguf build-fuzz/corpus/gguf/
cp -f tests/fixtures/models/gemma3_tiny_scaled/model.safetensors build-fuzz/corpus/safetensors/
cp -f fuzz/corpus/sentencepiece/* build-fuzz/corpus/sentencepiece/
cp -f fuzz/corpus/tokenizer_json/* build-fuzz/corpus/tokenizer_json/

for t in gguf safetensors sentencepiece tokenizer_json; do
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

#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 20) from its seed
# corpus (tests/fixtures). Longer runs on demand: FUZZ_SECONDS=3600 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMMA_FUZZ=ON \
  -DGEMMA_BUILD_TESTS=OFF -DGEMMA_BUILD_BENCH=OFF >/dev/null
TARGETS="gguf safetensors sentencepiece tokenizer_json model_load cli_args"
for f in fuzz/*.target; do [ -e "$f" ] && TARGETS="$TARGETS $(basename "$f" .target)"; done
cmake --build build-fuzz -j"${JOBS:-2}" --target $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done)

# Seed corpora: small real files of each kind (the working corpus grows in build-fuzz/).
for t in $TARGETS; do
  mkdir -p "build-fuzz/corpus/$t"
  if [ -d "fuzz/corpus/$t" ]; then cp -f fuzz/corpus/$t/* "build-fuzz/corpus/$t/" 2>/dev/null || true; fi
done
cp -f tests/fixtures/quant/quant_types.gguf tests/fixtures/models/gemma3_tiny_scaled/model.f32.gguf build-fuzz/corpus/gguf/
cp -f tests/fixtures/models/gemma3_tiny_scaled/model.safetensors build-fuzz/corpus/safetensors/
# Whole models: the tiny Gemma 3 in each GGUF type, and as safetensors (loaded beside its config.json).
for f in tests/fixtures/models/gemma3_tiny*/model*.gguf tests/fixtures/models/gemma3_tiny/model.safetensors; do
  cp -f "$f" "build-fuzz/corpus/model_load/$(basename "$(dirname "$f")")_$(basename "$f")"
done
# Command lines: a subcommand byte (index into cli_args_fuzz.cpp's list), then NUL-separated arguments.
seed() { printf "$2" >"build-fuzz/corpus/cli_args/$1"; }
seed run '\000-m\000x.gguf\000-p\000hi\000-n\00016\000--temp\0000.7\000--top-k\00040\000--kv-type\000q8_0'
seed chat '\001--model=x.gguf\000--system\000be brief\000-t\0004\000--mmap'
seed tokenize '\002--tokenizer\000t.json\000--bos\000--jsonl'
seed detokenize '\003-m\000x.gguf\0002\00010\000106'
seed inspect '\004x.gguf\000-c\000512\000--parallel\0004\000--kv-type\000f32'
seed perplexity '\005-m\000x.gguf\000-f\000wiki.txt\000--ctx\000512'
seed bench '\006-p\000128,512\000-n\00032\000-t\0001,2\000-o\000json'
seed convert '\007in.safetensors\000out.gguf\000--quant\000q8_0'
seed help '\010run\000--help'

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

#!/usr/bin/env bash
# Every GPU test and benchmark of the CUDA backend in one run on a lent H100/H200 (issue 18), its
# results under $OUT (at most 8 files). Prepared on the CPU machine by scripts/gpu_prepare.sh and run
# with the device tool: run(command="bash scripts/gpu_check.sh", carry=["build-gpu/carry"]).
# Steps, most important first, each under its own timeout, all within GPU_CHECK_BUDGET_S (default
# 540 s of the 600 s a command may take); what does not fit is logged as skipped:
#   1. nvidia-smi; the CUDA tests (cuda_backend_tests: every op against the CPU, the tiny fixtures'
#      greedy tokens; the real 270M is not carried: 253 MB > 64 MiB, so that case skips)
#   2. the HBM probe (scripts/hbm_probe.cu): device-to-device copy and read-only reduction, GB/s
#   3. random-weight Gemma 3 models (scripts/gpu_models.py) of the 270M, 4B and 1B shapes in Q4_0,
#      Q8_0 and BF16: `gemma bench --device cuda` (pp512, tg128) and, when carried, llama.cpp's
#      CUDA llama-bench on the same file
#   4. summary.md: tokens/s and decode's share of the measured read bandwidth (bytes a token reads
#      ~ the weights' bytes, the tied embedding read once as the output projection)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
C="${GPU_CARRY:-build-gpu/carry}"
BUDGET="${GPU_CHECK_BUDGET_S:-540}"
START=$(date +%s)
LOG="$OUT/gpu_check.log"
log() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
# run_step SECONDS CMD...: runs when that much budget is left, else logs a skip.
run_step() {
  local need=$1
  shift
  if [ "$(left)" -lt "$need" ]; then
    log "skipped (budget): $*"
    return 1
  fi
  timeout "$need" "$@"
}

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed"
CUBLAS_PY=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
# Only our binaries see the carried libraries (python3 keeps the machine's own).
GEMMA_LD="$PWD/$C/lib:/usr/local/cuda/lib64:${CUBLAS_PY}:${LD_LIBRARY_PATH:-}"
BIN="$C/bin"
if ! LD_LIBRARY_PATH="$GEMMA_LD" "$BIN/gemma" --help >/dev/null 2>&1; then
  log "carried binaries do not run here ($(LD_LIBRARY_PATH="$GEMMA_LD" "$BIN/gemma" --help 2>&1 | head -1)); building with nvcc"
  cmake -S . -B build-gpu-local -G Ninja -DCMAKE_BUILD_TYPE=Release -DGEMMA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DGEMMA_BUILD_BENCH=OFF >>"$LOG" 2>&1 && cmake --build build-gpu-local -j16 --target gemma cuda_backend_tests >>"$LOG" 2>&1 &&
    BIN=build-gpu-local/bin && mkdir -p "$BIN" && cp build-gpu-local/gemma build-gpu-local/tests/kernels/cuda_backend_tests "$BIN/" ||
    log "build failed: see the log"
fi

log "1. CUDA tests"
FIX=$(cat "$C/fixtures_dir" 2>/dev/null || true)
if [ -n "$FIX" ] && [ ! -e "$FIX" ]; then
  mkdir -p "$(dirname "$FIX")" && ln -s "$PWD/tests/fixtures" "$FIX" || log "   cannot link $FIX: fixture tests will fail"
fi
run_step 240 env LD_LIBRARY_PATH="$GEMMA_LD" "$BIN/cuda_backend_tests" --gtest_brief=0 >"$OUT/cuda_tests.log" 2>&1
log "   exit $? ($(grep -c '^\[       OK' "$OUT/cuda_tests.log") ok, $(grep -c '^\[  FAILED  \]' "$OUT/cuda_tests.log") failed lines)"

log "2. HBM probe"
if nvcc -O3 -arch=sm_90 scripts/hbm_probe.cu -o /tmp/hbm_probe >>"$LOG" 2>&1; then
  run_step 60 /tmp/hbm_probe 4 >"$OUT/hbm.json" 2>>"$LOG"
  cat "$OUT/hbm.json" | tee -a "$LOG"
else
  log "   nvcc failed"
fi

log "3. benchmarks"
MODELS=/tmp/gemma-gpu-models
mkdir -p "$MODELS"
LLAMA="$C/llama/llama-bench"
# GPU_CHECK_MODELS overrides the list (e.g. "12b:q4_0 27b:q4_0"), in order of priority.
for spec in ${GPU_CHECK_MODELS:-270m:q4_0 270m:q8_0 270m:bf16 4b:q4_0 4b:q8_0 4b:bf16 1b:q4_0 1b:q8_0 1b:bf16}; do
  shape=${spec%%:*} type=${spec##*:}
  f="$MODELS/gemma3-$shape-shape-$type.gguf"
  [ -f "$f" ] || run_step 150 env PYTHONPATH="$C/py" python3 scripts/gpu_models.py make --shape "$shape" --type "$type" \
    --tokenizer "$C/tok.npz" --out "$MODELS" >>"$LOG" 2>&1 || { log "   $spec: no model"; continue; }
  log "   $spec: gemma bench --device cuda"
  run_step 120 env LD_LIBRARY_PATH="$GEMMA_LD" "$BIN/gemma" bench --device cuda -m "$f" -p 512 -n 128 -r 2 -o jsonl >>"$OUT/bench.jsonl" 2>>"$LOG" ||
    log "   $spec: gemma bench failed or skipped"
  if [ -x "$LLAMA" ]; then
    run_step 120 env LD_LIBRARY_PATH="$PWD/$C/llama:$GEMMA_LD" "$LLAMA" -m "$f" -p 512 -n 128 -r 2 -ngl 99 -o jsonl \
      >>"$OUT/llama_bench.jsonl" 2>>"$LOG" || log "   $spec: llama-bench failed or skipped"
  fi
  rm -f "$f"  # disk: the 4B BF16 file alone is 8 GB
done

log "4. summary"
python3 - "$OUT" <<'PY' >"$OUT/summary.md" 2>>"$LOG"
import json, os, sys
out = sys.argv[1]
def rows(name):
    p = os.path.join(out, name)
    if not os.path.exists(p): return []
    rs = []
    for l in open(p):
        try: rs.append(json.loads(l))
        except ValueError: pass
    return rs
try: hbm = json.load(open(os.path.join(out, "hbm.json")))
except (OSError, ValueError): hbm = {}
bw = hbm.get("read_only_reduction", {}).get("median_gb_s")
print(f"HBM: {hbm.get('device', '?')}, read {bw} GB/s, copy {hbm.get('d2d_copy_read_plus_write', {}).get('median_gb_s')} GB/s\n")
print("| source | model | test | tokens/s | share of read bandwidth |\n| --- | --- | --- | --- | --- |")
for src, rs in [("gemma", rows("bench.jsonl")), ("llama.cpp", rows("llama_bench.jsonl"))]:
    for r in rs:
        model = r.get("model_filename") or r.get("model") or "?"
        n_p, n_g = r.get("n_prompt", 0), r.get("n_gen", 0)
        tps = r.get("avg_ts") or r.get("tokens_per_second") or r.get("tps")
        size = r.get("model_size") or r.get("model_bytes")
        share = f"{tps * size / 1e9 / bw:.0%}" if (n_g and not n_p and tps and size and bw) else ""
        print(f"| {src} | {os.path.basename(str(model))} | {'pp' + str(n_p) if n_p else 'tg' + str(n_g)} | {tps} | {share} |")
PY
cat "$OUT/summary.md" | tee -a "$LOG"
log "done"

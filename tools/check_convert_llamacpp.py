#!/usr/bin/env python3
"""Does llama.cpp run what `gemma convert` writes?

Converts tiny reference models (HF safetensors: Gemma 2 and Gemma 3; Gemma 1 too) to GGUF with
`build/gemma convert` (F32 and --quant q8_0), loads each file in llama.cpp through its C API (the
llama-cpp-python ctypes bindings, see tools/fixtures_llamacpp.py), and compares llama.cpp's greedy
32 tokens and logits with the HF reference of the source checkpoint.

Usage: python3 tools/check_convert_llamacpp.py [--gemma build/gemma]
The vocabulary for llama.cpp comes from the fixture's own GGUF (`--tokenizer model.f32.gguf`).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_llamacpp import LlamaRunner, read_logits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gemma", default=str(ROOT / "build" / "gemma"))
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ["gemma3_tiny", "gemma3_tiny_scaled", "gemma2_tiny", "gemma1_tiny"]:
            d = MODELS / model
            ref = json.loads((d / "ref" / "safetensors_f32.json").read_text())
            want = read_logits(d / "ref" / ref["logits"], (len(ref["prompt_ids"]), ref["vocab"]))
            for quant in [None, "q8_0"]:
                out = Path(tmp) / f"{model}-{quant or 'f32'}.gguf"
                cmd = [a.gemma, "convert", str(d / "model.safetensors"), str(out), "--tokenizer", str(d / "model.f32.gguf")]
                if quant:
                    cmd += ["--quant", quant]
                subprocess.run(cmd, check=True, capture_output=True)
                with LlamaRunner(out, n_ctx=128, kv_f32=True) as r:
                    logits, greedy, _ = r.run(ref["prompt_ids"], len(ref["greedy_ids"]))
                rel = float(np.max(np.abs(logits - want)) / np.max(np.abs(want)))
                same = next((i for i, (x, y) in enumerate(zip(greedy, ref["greedy_ids"])) if x != y), len(greedy))
                rows.append((model, quant or "f32", rel, same, len(greedy)))
                print(f"{model:20s} {quant or 'f32':5s} llama.cpp vs HF reference: max |Δlogit|/scale {rel:.2e}, "
                      f"greedy identical for {same}/{len(greedy)} tokens", flush=True)
    ok = all(q != "f32" or same == n for _, q, _, same, n in rows)
    print("all F32 conversions give llama.cpp the reference's greedy tokens" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

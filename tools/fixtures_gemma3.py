#!/usr/bin/env python3
"""Tiny random-weight Gemma 3 reference models for the C++ parity tests.

Usage (from the repository root; CPU only, about a minute on 2 cores):

    python3 tools/fixtures_gemma3.py                      # all models
    python3 tools/fixtures_gemma3.py gemma3_tiny          # one model
    LLAMA_QUANTIZE=/path/to/llama-quantize python3 tools/fixtures_gemma3.py gemma3_tiny_kquant

Needs: torch, transformers (5.x), gguf (gguf-py), numpy, safetensors, the `zstd` CLI, and for the
K-quant model llama.cpp's `llama-quantize` (default /work/llamacpp/build/bin/llama-quantize,
override with $LLAMA_QUANTIZE).  Everything is deterministic: weights and prompts come from fixed
numpy seeds, quantization is deterministic, so re-running rewrites identical files (the JSON
"reference" strings carry the tool versions).

Writes, for each model, tests/fixtures/models/<name>/:
    config.json, model.safetensors          HF save_pretrained, float32     (if the model has it)
    bf16/                                   HF save_pretrained in bfloat16, >= 2 shards + index
    model.<fmt>.gguf                        GGUF in llama.cpp's conventions (see fixtures_common)
    ref/<fmt>.json, ref/<fmt>.logits.f32.zst
        {"checkpoint": path relative to the model dir, "prompt_ids": 64 ids (first = 2 = BOS),
         "greedy_ids": 32 argmax tokens after the prompt, "logits": file name, "vocab": V,
         "reference": what produced it, "notes": ...}
        logits = raw little-endian float32 [64, V] for every prompt position, zstd-compressed.

References: HF transformers Gemma3ForCausalLM, float32, eager attention, on the weights *as
stored in that checkpoint*: GGUF tensors are dequantized with gguf.quants.dequantize and the +1
is removed from the norms; the bf16 checkpoint is read back and widened to f32, and its embedding
scale is sqrt(D) rounded to bf16 (the engine's documented rule; exact sqrt(D) for f32 and GGUF).
Greedy decoding re-runs the full sequence each step (no KV cache).  Every f32 reference is
cross-checked against an independent float64 forward written from the spec.

Models (dimensions chosen so that all committed fixtures stay around 5 MB):
  gemma3_tiny        D=96 (sqrt(96) -> bf16 9.8125, so the bf16 embed-scale rule is visible),
                     4 q heads x 32 (q width 128 != D), 2 kv heads (GQA), F=64, 2 layers
                     [local, global], window 16 (64-token prompt wraps it 4x), RoPE 1e4 / 1e6,
                     vocab 288.  GGUF pattern key: uint 2.
                     safetensors f32 + bf16 (sharded); GGUF F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1
  gemma3_tiny_scaled D=32, otherwise as tiny, linear RoPE x8 on the global layer only.
                     GGUF pattern key: bool array.  safetensors f32 + GGUF F32.
  gemma3_tiny_kquant D=256, 2 q heads x 128, 1 kv head (MQA), F=256, 1 layer (local, window 16;
                     GGUF pattern key: bool array [true]), vocab 288: every ne[0] is a multiple
                     of 256; embedding std 0.2/sqrt(D) (else the tied head predicts the input
                     token).  GGUF Q4_K, Q5_K, Q6_K (llama-quantize --pure) and Q4_K_M
                     (llama-quantize default mix; per-tensor types in the JSON).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_common as fc  # noqa: E402

MODELS = {
    "gemma3_tiny": dict(
        seed=3003, hidden=96, heads=4, kv_heads=2, head_dim=32, ffn=64, layers=2, vocab=288,
        window=16, layer_types=[fc.LOCAL, fc.GLOBAL], gguf_pattern="2",
        rope_local=10000.0, rope_global=1000000.0, rope_linear_factor=None, max_pos=512,
        safetensors=True, bf16=True,
        gguf=["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"], kquant=[],
    ),
    "gemma3_tiny_scaled": dict(
        seed=3104, hidden=32, heads=4, kv_heads=2, head_dim=32, ffn=64, layers=2, vocab=288,
        window=16, layer_types=[fc.LOCAL, fc.GLOBAL], gguf_pattern="bool_array",
        rope_local=10000.0, rope_global=1000000.0, rope_linear_factor=8.0, max_pos=512,
        safetensors=True, bf16=False, gguf=["f32"], kquant=[],
    ),
    "gemma3_tiny_kquant": dict(
        seed=3204, emb_std=0.2, hidden=256, heads=2, kv_heads=1, head_dim=128, ffn=256, layers=1, vocab=288,
        window=16, layer_types=[fc.LOCAL], gguf_pattern="bool_array",
        rope_local=10000.0, rope_global=1000000.0, rope_linear_factor=None, max_pos=512,
        safetensors=False, bf16=False, gguf=[],
        # fmt -> (llama-quantize type, --pure)
        kquant=[("q4_k", "Q4_K_S", True), ("q5_k", "Q5_K_S", True), ("q6_k", "Q6_K", True),
                ("q4_k_m", "Q4_K_M", False)],
    ),
}


def describe(m: dict) -> str:
    lt = ["local" if t == fc.LOCAL else "global" for t in m["layer_types"]]
    s = (f"hidden {m['hidden']}, {m['heads']} q heads x head_dim {m['head_dim']} (q width "
         f"{m['heads'] * m['head_dim']}), {m['kv_heads']} kv heads, ffn {m['ffn']}, {m['layers']} layers "
         f"{lt}, sliding window {m['window']}, rope local {m['rope_local']:g} / global {m['rope_global']:g}")
    if m.get("rope_linear_factor"):
        s += f", linear rope x{m['rope_linear_factor']:g} on global layers only"
    s += (f", query_pre_attn_scalar {m['head_dim']} (= head_dim), vocab {m['vocab']}, rms eps 1e-6, "
          "tied embeddings, no softcaps")
    return s


def quantize_with_llamacpp(src: Path, dst: Path, qtype: str, pure: bool) -> str:
    exe = os.environ.get("LLAMA_QUANTIZE", "/work/llamacpp/build/bin/llama-quantize")
    cmd = [exe] + (["--pure"] if pure else []) + [str(src), str(dst), qtype, "2"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return " ".join(["llama-quantize"] + (["--pure"] if pure else []) + ["<F32 GGUF>", dst.name, qtype, "2"])


def build_model(name: str) -> None:
    import gguf
    m = MODELS[name]
    d = fc.fresh_dir(name)
    weights = fc.random_weights(m, m["seed"])
    prompt = fc.make_prompt(m)
    desc = describe(m)
    v = fc.versions()
    sqrt_d = float(m["hidden"]) ** 0.5
    print(f"== {name}: {desc}")
    fc.build_standard_refs(name, m, d, weights, prompt, desc)

    gguf_ref = ("weights = dequantized from this GGUF with gguf-py {gv} gguf.quants.dequantize, norm "
                "weights stored - 1; embedding scale exact sqrt({D}) = {s!r}")
    if m["kquant"]:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "f32.gguf"
            fc.write_gguf(src, m, weights, "f32", name)
            for fmt, qt, pure in m["kquant"]:
                path = d / f"model.{fmt}.gguf"
                cmd = quantize_with_llamacpp(src, path, qt, pure)
                w, types = fc.read_gguf_weights(path, m["layers"])
                r = gguf.GGUFReader(str(path))
                ft = int(r.fields["general.file_type"].parts[-1][0])
                logits, greedy, info = fc.run_reference(m, w, prompt, sqrt_d, False)
                summ = fc.types_summary(types)
                fc.write_ref(d, f"gguf_{fmt}", path.name, prompt, greedy, logits,
                             fc.hf_ref_string(gguf_ref.format(gv=v["gguf"], D=m["hidden"], s=sqrt_d)),
                             f"Model: {desc}. Made by `{cmd}` ({fc.llamacpp_version()}) from an F32 "
                             "GGUF written by tools/fixtures_common.write_gguf. Tensor types actually written: "
                             + "; ".join(f"{t}: {', '.join(sorted(n))}" for t, n in sorted(summ.items())),
                             {"embed_scale": sqrt_d, "tensor_types": summ, "general.file_type": ft,
                              "checks": info})
                fc.print_ref(f"gguf_{fmt}", info, greedy)
                print(f"    types: { {t: len(n) for t, n in summ.items()} }")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help=f"subset of {', '.join(MODELS)} (default: all)")
    args = ap.parse_args()
    bad = [x for x in args.models if x not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose from {list(MODELS)}")
    fc.env_threads()
    for name in args.models or list(MODELS):
        build_model(name)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tiny random-weight Gemma 1 and Gemma 2 reference models for the C++ parity tests.

Usage (from the repository root; CPU only, well under a minute on 2 cores):

    python3 tools/fixtures_gemma12.py                  # all models
    python3 tools/fixtures_gemma12.py gemma2_tiny      # one model

Needs: torch, transformers (5.x), gguf (gguf-py), numpy, safetensors, the `zstd` CLI.
Deterministic (fixed numpy seeds), like tools/fixtures_gemma3.py, whose file layout and reference
JSON format (tests/fixtures/models/README.md) these models share; the code is in
tools/fixtures_common.py.

References: HF transformers GemmaForCausalLM / Gemma2ForCausalLM, float32, eager attention, on the
weights as stored in each checkpoint (GGUF dequantized with gguf-py, norms minus 1; bf16 widened,
embedding scale sqrt(D) rounded to bf16).  Every f32 reference is cross-checked against the
independent float64 forward of fixtures_common.spec_forward_f64 (docs/spec/architecture.md §2); for
the Gemma 2 models the JSON "checks" also record how far the logits move without the attention
cap, without the final cap, with every layer global and (gemma2_tiny_qscale) with the query scale
head_dim**-0.5: each by far more than the parity tolerance.

Models (D = hidden, N x H = q heads x head_dim, K = kv heads, F = ffn; vocab 288, 2 layers):
  gemma1_tiny        GemmaForCausalLM, D=32, 4 x 16 (q width 64 != D, H != D/N = 8), K=1 (MQA),
                     F=64, every layer global, RoPE 1e4.  config: hidden_act and
                     hidden_activation gelu_pytorch_tanh, query_pre_attn_scalar 16 (= H, unused
                     by HF Gemma 1).  safetensors f32; GGUF (arch gemma) F32, Q8_0.
  gemma1_tiny_mha    GemmaForCausalLM, D=32, 2 x 32 (q width 64 != D), K=2 (MHA, like Gemma 1 7B),
                     F=64.  safetensors f32; GGUF F32.
  gemma2_tiny        Gemma2ForCausalLM, D=32, 4 x 16, K=2 (GQA), F=64, layers [local, global]
                     (layer 0 local), window 16 (the 64-token prompt wraps it 4x),
                     query_pre_attn_scalar 16 (= H), attn_logit_softcapping 5.0,
                     final_logit_softcapping 3.0 (small enough to bite on random logits),
                     post-attention and post-FFN norms.  safetensors f32, bf16 (4 shards);
                     GGUF (arch gemma2) F32, Q8_0 with gemma2.attn_logit_softcapping,
                     gemma2.final_logit_softcapping, gemma2.attention.sliding_window.
  gemma2_tiny_qscale as gemma2_tiny but query_pre_attn_scalar = D/N = 8 != H = 16 (as Gemma 2 27B:
                     144 = 4608/32, H = 128).  GGUF additionally holds our key
                     gemma2.attention.query_pre_attn_scalar (uint32 8), which llama.cpp does not
                     know (it uses H**-0.5 for anything but a 46-layer model).
                     safetensors f32; GGUF F32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_common as fc  # noqa: E402

G, L = fc.GLOBAL, fc.LOCAL

# Weight distributions: fixtures_common.random_weights, plus: Gemma 1 pre-FFN norm (HF
# post_attention_layernorm) ~ N(1.5, 0.5^2), so the MLP dominates the residual (Gemma 1 has no
# post-FFN norm to do it) and greedy decoding walks through many tokens; Gemma 2 final norm
# ~ N(0.7, 0.5^2), so the raw logits reach about the final cap (3) without saturating it (with the
# default mean 4 every top logit sits at ~2.99 and top-1/top-2 margins vanish).  Seeds were picked
# for varied greedy continuations with top-1/top-2 margins >= ~0.01.
_GEMMA1 = dict(gen=1, vocab=288, layers=2, ffn=64, window=None, layer_types=[G, G], gguf_pattern="none",
               rope_local=10000.0, rope_global=10000.0, rope_linear_factor=None, max_pos=512, bf16=False,
               safetensors=True, norm_means={"post_attention_layernorm.weight": 1.5})
_GEMMA2 = dict(gen=2, vocab=288, layers=2, ffn=64, window=16, layer_types=[L, G], gguf_pattern="default",
               rope_local=10000.0, rope_global=10000.0, rope_linear_factor=None, max_pos=512,
               safetensors=True, attn_softcap=5.0, final_softcap=3.0, final_norm_mean=0.7)

MODELS = {
    "gemma1_tiny": dict(_GEMMA1, seed=1103, hidden=32, heads=4, kv_heads=1, head_dim=16,
                        gguf=["f32", "q8_0"]),
    "gemma1_tiny_mha": dict(_GEMMA1, seed=1203, hidden=32, heads=2, kv_heads=2, head_dim=32,
                            gguf=["f32"]),
    "gemma2_tiny": dict(_GEMMA2, seed=2104, hidden=32, heads=4, kv_heads=2, head_dim=16, qscale=16,
                        bf16=True, gguf=["f32", "q8_0"]),
    "gemma2_tiny_qscale": dict(_GEMMA2, seed=2207, hidden=32, heads=4, kv_heads=2, head_dim=16, qscale=8,
                               bf16=False, gguf=["f32"]),
}


def describe(m: dict) -> str:
    gen = fc.gen_of(m)
    lt = ["local" if t == fc.LOCAL else "global" for t in m["layer_types"]]
    attn = "MQA" if m["kv_heads"] == 1 else ("MHA" if m["kv_heads"] == m["heads"] else "GQA")
    s = (f"{fc.HF_CLASS[gen]} (Gemma {gen}): hidden {m['hidden']}, {m['heads']} q heads x head_dim "
         f"{m['head_dim']} (q width {m['heads'] * m['head_dim']}), {m['kv_heads']} kv heads ({attn}), "
         f"ffn {m['ffn']}, {m['layers']} layers {lt}")
    if gen == 2:
        s += f", sliding window {m['window']}"
    qs = fc.qscale_of(m)
    s += (f", rope {m['rope_global']:g} on every layer, query_pre_attn_scalar {qs:g}"
          + (" (= head_dim)" if qs == m["head_dim"] else f" (= hidden/heads, != head_dim {m['head_dim']})"))
    if gen == 1:
        s += (", no post-norms (HF post_attention_layernorm is the pre-FFN norm = GGUF ffn_norm), "
              "no soft-caps")
    else:
        s += (f", post-attention and post-FFN norms, attn_logit_softcapping {m['attn_softcap']:g}, "
              f"final_logit_softcapping {m['final_softcap']:g}")
    s += f", vocab {m['vocab']}, rms eps 1e-6, tied embeddings, gelu_pytorch_tanh"
    return s


def build_model(name: str) -> None:
    m = MODELS[name]
    d = fc.fresh_dir(name)
    weights = fc.random_weights(m, m["seed"])
    prompt = fc.make_prompt(m)
    desc = describe(m)
    print(f"== {name}: {desc}", flush=True)
    fc.build_standard_refs(name, m, d, weights, prompt, desc)


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

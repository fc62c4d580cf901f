#!/usr/bin/env python3
"""gemma_pytorch-layout checkpoints of the tiny HF reference models, with reference logits.

Usage (from the repository root; CPU only, under a minute on 2 cores):

    python3 tools/fixtures_torch_model.py                 # every model directory it can convert
    python3 tools/fixtures_torch_model.py gemma3_tiny     # one

Needs torch, transformers (5.x), numpy, safetensors, the `zstd` CLI (tools/fixtures_common.py).

For each tests/fixtures/models/<name>/ holding config.json + model.safetensors, writes:

    model.ckpt          torch.save({'model_state_dict': sd}) in gemma_pytorch's names
                        (gemma/model.py, gemma3_model.py): embedder.weight, model.layers.L.self_attn.
                        qkv_proj.weight (q, k, v rows fused in that order), query_norm / key_norm,
                        model.norm.weight, ...; float32; plus small complex64 rope buffers
                        local_freqs_cis / global_freqs_cis as gemma_pytorch's state_dict() carries
                        (their values are never used by a loader)
    model_int8.ckpt     the same with every Linear and the embedder quantized as gemma_pytorch does
                        (gemma/xla_model_parallel.py quantize_tensor, per output row: scale =
                        max(|min|, |max|) / 127.5 clamped to >= float32 eps, q = clamp(round(w / scale),
                        -128, 127) via torch's quantize_per_channel; weight_scaler float32 [out])
    ref/torch_f32.json, ref/torch_int8.json (+ .logits.f32.zst), format as tests/fixtures/models/README.md

A gemma_pytorch checkpoint carries no config: gemma_pytorch takes it from --variant, and a loader
must infer it from the tensors. For a shape that matches no released variant the engine assumes the
generation's defaults (src/model/load_torch.cpp); the references here are computed with exactly that
configuration, which this script derives with the same rules:
    Gemma 3, text-only (embedder.weight): sliding window 512, 5 local : 1 global layer pattern
    (truncated), RoPE 10k local / 1M global without scaling, query_pre_attn_scalar = head_dim,
    no soft-caps.
So the references differ from ref/safetensors_f32 (whose config.json says window 16 and layers
[local, global]): with window 512 >= the 96 positions used, attention is effectively global and
both layers use RoPE base 10k. The reference is HF transformers (float32, eager) on the weights as
stored: float32 as is; int8 dequantized as gemma_pytorch does (int8 * weight_scaler[:, None] in
float32), embedding scale sqrt(D) in float32 (the scaler's dtype). The f32 reference is also
checked against the independent float64 forward of tools/fixtures_common.py.

Gemma 1 / Gemma 2 HF fixtures (head_dim 16/32) are skipped: without QK-norm tensors the head size
of a custom shape cannot be read from the tensors, and the engine assumes 256 (every released Gemma
1/2 but the 27B). Instead the script builds torch_gemma1_tiny and torch_gemma2_tiny of their own
with head_dim 256 (G12_MODELS).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_common as fc  # noqa: E402

N_NEW = 32

# gemma_pytorch's released shapes per generation: (hidden, q width, kv width) -> head_dim
RELEASED_G12 = {
    "gemma": {(2048, 2048, 256): 256, (3072, 4096, 4096): 256},
    "gemma2": {(2304, 2048, 1024): 256, (3584, 4096, 2048): 256, (4608, 4096, 2048): 128},
}


def gemma_pytorch_state_dict(w: dict[str, np.ndarray], n_layers: int, head_dim: int) -> "collections.OrderedDict":
    import torch
    t = lambda name: torch.from_numpy(np.ascontiguousarray(w[name]))  # noqa: E731
    sd = collections.OrderedDict()
    sd["embedder.weight"] = t("model.embed_tokens.weight")
    for l in range(n_layers):
        h, p = f"model.layers.{l}.", f"model.layers.{l}."
        sd[p + "self_attn.qkv_proj.weight"] = torch.cat(
            [t(h + "self_attn.q_proj.weight"), t(h + "self_attn.k_proj.weight"), t(h + "self_attn.v_proj.weight")], 0)
        sd[p + "self_attn.o_proj.weight"] = t(h + "self_attn.o_proj.weight")
        if h + "self_attn.q_norm.weight" in w:
            sd[p + "self_attn.query_norm.weight"] = t(h + "self_attn.q_norm.weight")
            sd[p + "self_attn.key_norm.weight"] = t(h + "self_attn.k_norm.weight")
        for part in ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            sd[p + part + ".weight"] = t(h + part + ".weight")
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            if h + norm + ".weight" in w:
                sd[p + norm + ".weight"] = t(h + norm + ".weight")
    sd["model.norm.weight"] = t("model.norm.weight")
    # gemma_pytorch registers its RoPE tables as (persistent) buffers; a few rows stand in for them.
    ang = torch.outer(torch.arange(8, dtype=torch.float32), torch.ones(head_dim // 2))
    sd["local_freqs_cis"] = torch.polar(torch.ones_like(ang), ang)
    sd["global_freqs_cis"] = torch.polar(torch.ones_like(ang), ang * 0.5)
    return sd


def quantize_rows(x):
    """gemma_pytorch xla_model_parallel.quantize_tensor with TensorQConfig(axis=0)."""
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  registers quantized_decomposed ops
    orig = x.dtype
    xf = x.to(torch.float32)
    min_val, max_val = torch.aminmax(xf, dim=1)
    min_neg = torch.min(min_val, torch.zeros_like(min_val))
    max_pos = torch.max(max_val, torch.zeros_like(max_val))
    max_pos = torch.max(-min_neg, max_pos)
    scale = max_pos / (float(127 - (-128)) / 2)
    scale = torch.max(scale, torch.zeros_like(scale).fill_(torch.finfo(torch.float32).eps))
    q = torch.ops.quantized_decomposed.quantize_per_channel(xf, scale, torch.zeros_like(scale), 0, -128, 127,
                                                            torch.int8)
    return q, scale.to(orig)


def int8_state_dict(sd: "collections.OrderedDict") -> "collections.OrderedDict":
    out = collections.OrderedDict()
    for name, v in sd.items():
        linear = name.endswith(".weight") and v.dim() == 2
        if linear:
            q, s = quantize_rows(v)
            out[name] = q
            out[name + "_scaler"] = s
        else:
            out[name] = v
    return out


def dequantized_hf_weights(sd8: "collections.OrderedDict", hf_names: dict[str, np.ndarray], m: dict):
    """HF-named float32 weights exactly as gemma_pytorch computes them from the int8 file."""
    import torch
    deq = {}
    for name, v in sd8.items():
        if name.endswith("_scaler") or "freqs_cis" in name:
            continue
        if v.dtype == torch.int8:
            deq[name] = (v * sd8[name + "_scaler"].unsqueeze(-1)).to(torch.float32)
        else:
            deq[name] = v
    w = {}
    H, N, K = m["head_dim"], m["heads"], m["kv_heads"]
    w["model.embed_tokens.weight"] = deq["embedder.weight"]
    w["model.norm.weight"] = deq["model.norm.weight"]
    for l in range(m["layers"]):
        p = f"model.layers.{l}."
        q, k, v = torch.split(deq[p + "self_attn.qkv_proj.weight"], [N * H, K * H, K * H], 0)
        w[p + "self_attn.q_proj.weight"], w[p + "self_attn.k_proj.weight"], w[p + "self_attn.v_proj.weight"] = q, k, v
        w[p + "self_attn.o_proj.weight"] = deq[p + "self_attn.o_proj.weight"]
        if p + "self_attn.query_norm.weight" in deq:
            w[p + "self_attn.q_norm.weight"] = deq[p + "self_attn.query_norm.weight"]
            w[p + "self_attn.k_norm.weight"] = deq[p + "self_attn.key_norm.weight"]
        for rest in ("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight",
                     "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight",
                     "post_feedforward_layernorm.weight"):
            if p + rest in deq:
                w[p + rest] = deq[p + rest]
    assert set(w) == set(hf_names), set(w) ^ set(hf_names)
    return {k: v.contiguous().numpy().astype(np.float32) for k, v in w.items()}


def engine_config(cfg: dict) -> dict:
    """The configuration src/model/load_torch.cpp infers for a custom-shape text-only Gemma 3."""
    L = cfg["num_hidden_layers"]
    return dict(
        vocab=cfg["vocab_size"], hidden=cfg["hidden_size"], ffn=cfg["intermediate_size"], layers=L,
        heads=cfg["num_attention_heads"], kv_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
        max_pos=cfg.get("max_position_embeddings", 512), window=512,
        layer_types=[fc.GLOBAL if (i + 1) % 6 == 0 else fc.LOCAL for i in range(L)],
        rope_local=10000.0, rope_global=1000000.0, rope_linear_factor=None)


def describe(m: dict) -> str:
    lt = ["local" if t == fc.LOCAL else "global" for t in m["layer_types"]]
    return (f"hidden {m['hidden']}, {m['heads']} q heads x head_dim {m['head_dim']}, {m['kv_heads']} kv heads, "
            f"ffn {m['ffn']}, {m['layers']} layers {lt}, sliding window {m['window']}, rope local "
            f"{m['rope_local']:g} / global {m['rope_global']:g}, query_pre_attn_scalar {m['head_dim']} (= head_dim), "
            f"vocab {m['vocab']}, rms eps 1e-6, tied embeddings, no softcaps")


def reference(m: dict, weights: dict, prompt: list[int], embed_scale: float, check_f64: bool):
    model = fc.build_hf(m, weights, embed_scale=embed_scale)
    logits = fc.hf_logits(model, prompt)
    greedy, margins = fc.hf_greedy(model, prompt, N_NEW)
    assert greedy[0] == int(np.argmax(logits[-1]))
    info = {"min_top2_margin_prompt": float(fc.top2_margins(logits).min()),
            "min_top2_margin_greedy": float(min(margins)), "logit_absmax": float(np.abs(logits).max())}
    if check_f64:
        ref64 = fc.spec_forward_f64(m, weights, prompt + greedy, embed_scale)
        full = fc.hf_logits(model, prompt + greedy)
        err = float(np.abs(full - ref64).max() / np.abs(ref64).max())
        agree = bool((full.argmax(-1) == ref64.argmax(-1)).all())
        info["f64_spec_forward_max_rel_err"] = err
        info["f64_argmax_agree"] = agree
        if err > 1e-4 or not agree:
            raise RuntimeError(f"HF disagrees with the float64 spec forward: rel {err:.3g}, argmax {agree}")
    return logits, greedy, info


# Gemma 1 / 2 models of their own (there is no HF fixture with head_dim 256 to convert): the
# engine's rule for a custom-shape gemma_pytorch checkpoint without QK-norm is head_dim 256 (every
# released Gemma 1/2 but the 27B), plus the generation's defaults that gemma_pytorch's 2b / 2b-v2
# configs use: Gemma 1 all global; Gemma 2 local/global alternating, window 4096, attention
# soft-cap 50, final soft-cap 30, query_pre_attn_scalar = head_dim.
G12_MODELS = {
    "torch_gemma1_tiny": dict(gen=1, seed=3111, vocab=288, hidden=32, heads=2, kv_heads=1, head_dim=256, ffn=64,
                              layers=2, window=None, layer_types=[fc.GLOBAL, fc.GLOBAL], rope_local=10000.0,
                              rope_global=10000.0, rope_linear_factor=None, max_pos=512,
                              norm_means={"post_attention_layernorm.weight": 1.5}),
    "torch_gemma2_tiny": dict(gen=2, seed=3202, vocab=288, hidden=32, heads=2, kv_heads=1, head_dim=256, ffn=64,
                              layers=2, window=4096, layer_types=[fc.LOCAL, fc.GLOBAL], rope_local=10000.0,
                              rope_global=10000.0, rope_linear_factor=None, max_pos=512, qscale=256,
                              attn_softcap=50.0, final_softcap=30.0),
}


def build_g12(name: str) -> None:
    import torch
    m = G12_MODELS[name]
    d = fc.fresh_dir(name)
    weights = fc.random_weights(m, m["seed"])
    prompt = fc.make_prompt(m)
    v = fc.versions()
    gen = fc.gen_of(m)
    sqrt_d = float(m["hidden"]) ** 0.5
    desc = (f"Gemma {gen}: hidden {m['hidden']}, {m['heads']} q heads x head_dim 256, {m['kv_heads']} kv head, "
            f"ffn {m['ffn']}, {m['layers']} layers {['local' if t == fc.LOCAL else 'global' for t in m['layer_types']]}"
            + (", window 4096, soft-caps 50 / 30" if gen == 2 else "") + ", query_pre_attn_scalar 256, vocab 288")
    print(f"== {name}: {desc}")
    what = (f"HF transformers {v['transformers']} {fc.HF_CLASS[gen]}, eager attention, float32 on CPU (torch "
            f"{v['torch']}, numpy {v['numpy']}); {{w}}. Prompt logits from one forward over the {len(prompt)} prompt "
            f"tokens; greedy = argmax, {N_NEW} steps, each a full re-forward without KV cache.")
    note = (f"Model: {desc}. gemma_pytorch checkpoints carry no config; this is what the engine infers for a "
            "custom-shape checkpoint of this generation (head_dim 256, the generation's defaults). Written by "
            "tools/fixtures_torch_model.py with torch.save.")
    sd = gemma_pytorch_state_dict(weights, m["layers"], m["head_dim"])
    torch.save({"model_state_dict": sd}, d / "model.ckpt")
    logits, greedy, info = reference(m, weights, prompt, sqrt_d, True)
    fc.write_ref(d, "torch_f32", "model.ckpt", prompt, greedy, logits,
                 what.format(w=f"weights as stored in model.ckpt (float32); embedding scale sqrt({m['hidden']})"),
                 note, {"embed_scale": sqrt_d, "checks": info})
    print(f"  torch_f32  greedy[:8]={greedy[:8]} margins {info['min_top2_margin_prompt']:.3g} "
          f"{info['min_top2_margin_greedy']:.3g} f64 rel {info['f64_spec_forward_max_rel_err']:.2e}")
    sd8 = int8_state_dict(sd)
    torch.save({"model_state_dict": sd8}, d / "model_int8.ckpt")
    w8 = dequantized_hf_weights(sd8, weights, m)
    logits8, greedy8, info8 = reference(m, w8, prompt, sqrt_d, False)
    fc.write_ref(d, "torch_int8", "model_int8.ckpt", prompt, greedy8, logits8,
                 what.format(w="weights = model_int8.ckpt dequantized as gemma_pytorch does (int8 * "
                               "weight_scaler[:, None] in float32)"),
                 note + " int8 per output row as gemma_pytorch's quantize_tensor.", {"embed_scale": sqrt_d,
                                                                                     "checks": info8})
    print(f"  torch_int8 greedy[:8]={greedy8[:8]} margins {info8['min_top2_margin_prompt']:.3g} "
          f"{info8['min_top2_margin_greedy']:.3g}")


def build(name: str) -> None:
    if name in G12_MODELS:
        return build_g12(name)
    import torch
    from safetensors.numpy import load_file
    d = fc.FIXTURES / "models" / name
    cfg = json.loads((d / "config.json").read_text())
    mt = cfg.get("model_type")
    if mt in RELEASED_G12:
        key = (cfg["hidden_size"], cfg["num_attention_heads"] * cfg["head_dim"],
               cfg["num_key_value_heads"] * cfg["head_dim"])
        print(f"== {name}: skipped ({mt}: widths {key} match no released variant, so a gemma_pytorch checkpoint "
              "of it has no inferable head size)" if key not in RELEASED_G12[mt] else
              f"== {name}: {mt} with released widths is not generated by this script yet")
        return
    if mt != "gemma3_text":
        print(f"== {name}: skipped (model_type {mt})")
        return
    rope = cfg.get("rope_parameters") or {}
    if any(isinstance(r, dict) and r.get("rope_type", "default") != "default" for r in rope.values()):
        print(f"== {name}: skipped (RoPE scaling: a text-only gemma_pytorch Gemma 3 checkpoint cannot express it)")
        return
    weights = load_file(str(d / "model.safetensors"))
    m = engine_config(cfg)
    prompt = json.loads((d / "ref" / "safetensors_f32.json").read_text())["prompt_ids"]
    v = fc.versions()
    desc = describe(m)
    sqrt_d = float(m["hidden"]) ** 0.5
    print(f"== {name}: {desc}")
    what = ("HF transformers {tv} Gemma3ForCausalLM, eager attention, float32 on CPU (torch {t}, numpy {n}); {w}. "
            "Prompt logits from one forward over the {p} prompt tokens; greedy = argmax, {g} steps, each a full "
            "re-forward without KV cache.")
    cfg_note = (f"Model: {desc}. gemma_pytorch checkpoints carry no config: this is the configuration the engine "
                "infers from the tensors for a custom-shape text-only Gemma 3 (gemma_pytorch 1B defaults: window "
                "512, 5:1 pattern, no RoPE scaling, query_pre_attn_scalar = head_dim), not config.json's (window 16, "
                "layers [local, global]), so the logits differ from ref/safetensors_f32.")

    sd = gemma_pytorch_state_dict(weights, m["layers"], m["head_dim"])
    torch.save({"model_state_dict": sd}, d / "model.ckpt")
    back = torch.load(d / "model.ckpt", weights_only=True)["model_state_dict"]
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    logits, greedy, info = reference(m, weights, prompt, sqrt_d, True)
    fc.write_ref(d, "torch_f32", "model.ckpt", prompt, greedy, logits,
                 what.format(tv=v["transformers"], t=v["torch"], n=v["numpy"], p=len(prompt), g=N_NEW,
                             w=f"weights = model.safetensors (float32) as stored in model.ckpt; embedding scale "
                               f"exact sqrt({m['hidden']}) = {sqrt_d!r}"),
                 cfg_note + " Written by tools/fixtures_torch_model.py with torch.save (protocol 2).",
                 {"embed_scale": sqrt_d, "checks": info})
    print(f"  torch_f32  greedy[:8]={greedy[:8]} margins {info['min_top2_margin_prompt']:.3g} "
          f"{info['min_top2_margin_greedy']:.3g} f64 rel {info['f64_spec_forward_max_rel_err']:.2e}")

    sd8 = int8_state_dict(sd)
    torch.save({"model_state_dict": sd8}, d / "model_int8.ckpt")
    w8 = dequantized_hf_weights(sd8, weights, m)
    logits8, greedy8, info8 = reference(m, w8, prompt, sqrt_d, False)
    # How far quantization moved the model (for the notes).
    drift = float(np.abs(logits8 - logits).max() / np.abs(logits).max())
    info8["rel_logit_change_vs_f32"] = drift
    fc.write_ref(d, "torch_int8", "model_int8.ckpt", prompt, greedy8, logits8,
                 what.format(tv=v["transformers"], t=v["torch"], n=v["numpy"], p=len(prompt), g=N_NEW,
                             w="weights = model_int8.ckpt dequantized as gemma_pytorch does (int8 * "
                               "weight_scaler[:, None] in float32), norms float32 as stored; embedding scale "
                               f"exact sqrt({m['hidden']}) = {sqrt_d!r} (the scaler is float32)"),
                 cfg_note + " int8: every Linear (fused qkv_proj included) and the embedder quantized per output "
                 "row with gemma_pytorch's quantize_tensor (scale = absmax / 127.5, round half to even, clamp to "
                 "[-128, 127]); weight_scaler float32.",
                 {"embed_scale": sqrt_d, "checks": info8})
    print(f"  torch_int8 greedy[:8]={greedy8[:8]} margins {info8['min_top2_margin_prompt']:.3g} "
          f"{info8['min_top2_margin_greedy']:.3g} (logits moved {drift:.3g} relative by quantization)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="model directories under tests/fixtures/models (default: all with "
                    "config.json + model.safetensors)")
    args = ap.parse_args()
    fc.env_threads()
    names = args.models or sorted(p.name for p in (fc.FIXTURES / "models").iterdir()
                                  if (p / "config.json").exists() and (p / "model.safetensors").exists())
    names = names if args.models else names + list(G12_MODELS)
    for name in names:
        build(name)


if __name__ == "__main__":
    main()

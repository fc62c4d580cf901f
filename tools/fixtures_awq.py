#!/usr/bin/env python3
"""Tiny AWQ-layout int4 Gemma 3 checkpoint (the layout of gau-nernst/gemma3-int4 convert_flax.py
--format awq, i.e. the gaunernst/gemma-3-*-it-int4-awq repositories; docs/spec/formats.md §4).

Usage (from the repository root; CPU only, under a minute on 2 cores):

    python3 tools/fixtures_awq.py
    AUTOAWQ_SRC=/path/to/autoawq-0.2.9 python3 tools/fixtures_awq.py   # also check with AutoAWQ

Needs: torch, transformers (5.x), numpy, safetensors, the `zstd` CLI.  Deterministic.
Optional: AutoAWQ's awq/utils/packing_utils.py, used only to verify the packing: taken from an
installed `awq` package, or from $AUTOAWQ_SRC (an unpacked autoawq source tree, e.g. from
`pip download autoawq==0.2.9 --no-deps`; installing autoawq would pull in old transformers pins,
and packing_utils.py is pure torch, so it is loaded by path).

Writes tests/fixtures/models/gemma3_awq_tiny/:
    config.json                      Gemma3ForCausalLM (model_type gemma3_text) config +
                                     "quantization_config": {"quant_method": "awq", "bits": 4,
                                     "group_size": 32, "zero_point": true, "version": "gemm"}
    model-00001.safetensors, model-00002.safetensors, ...   (convert_flax.py's shard naming, no
                                     "-of-"), model.safetensors.index.json
    ref/safetensors_awq.json, ref/safetensors_awq.logits.f32.zst

Model: the style of gemma3_tiny (text only, like Gemma 3 1B): hidden 96, 4 q heads x head_dim 32
(q width 128), 2 kv heads, ffn 128, layers [local, global], window 16, RoPE 1e4 / 1e6,
query_pre_attn_scalar 32, vocab 288, tied embeddings.  Random weights (fixtures_common), then, as
in a QAT checkpoint, every 2-D linear weight W [out N, in K] (q/k/v/o/gate/up/down; not the
embedding, not the norms) is snapped to a symmetric 4-bit grid per group of 32 consecutive input
elements: s = bf16(max|w| / 7.5) per (row, group), q = clip(round(w / s), -8, 7), W = q * s
(exact in float32).

Per linear <prefix> (HF name minus ".weight"), with Wt = W^T [K, N] and u = q + 8 in [0, 15]:
    <prefix>.qweight  I32  [K, N/8]   nibble i (bits 4i..4i+3) of word [k][j] holds column
                                      8j + AWQ_ORDER[i], AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
    <prefix>.qzeros   I32  [K/32, N/8] every nibble 8 (words 0x88888888)
    <prefix>.scales   BF16 [K/32, N]  s of input group g, output column n
The embedding and all norm weights are BF16 (their f32 values rounded).  No lm_head.

Checks: the packed tensors, read back from the shards, are unpacked with docs/spec/formats.md's formula
(Wt[k][n] = (((qweight[k][n/8] >> 4*AWQ_REVERSE_ORDER[n%8]) & 15) - 8) * scales[k/32][n]) and with
AutoAWQ's own dequantize_gemm (if available) and must equal the snapped weights exactly.

Reference: HF transformers Gemma3ForCausalLM, float32, eager attention, on the dequantized weights
(int4 x bf16 scale, exact in f32), the bf16 embedding and norms widened to f32, embedding scale
sqrt(96) rounded to bf16 = 9.8125 (the engine's rule for bf16 embeddings), cross-checked against the
float64 spec forward.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_common as fc  # noqa: E402

NAME = "gemma3_awq_tiny"
GROUP = 32
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]
QUANT_CONFIG = {"quant_method": "awq", "bits": 4, "group_size": GROUP, "zero_point": True, "version": "gemm"}
M = dict(seed=3505, hidden=96, heads=4, kv_heads=2, head_dim=32, ffn=128, layers=2, vocab=288,
         window=16, layer_types=[fc.LOCAL, fc.GLOBAL], gguf_pattern="2",
         rope_local=10000.0, rope_global=1000000.0, rope_linear_factor=None, max_pos=512)
N_SHARDS = 3


def is_linear(name: str) -> bool:
    return name.endswith("_proj.weight")


def bf16_array(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 (round to nearest even) -> float32."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).bfloat16().float().numpy()


def snap(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W [N, K] -> (q int8 [N, K] in [-8, 7], s float32 (bf16 values) [N, K/32])."""
    n, k = w.shape
    assert k % GROUP == 0 and n % 8 == 0, w.shape
    g = w.reshape(n, k // GROUP, GROUP)
    s = bf16_array(np.abs(g).max(-1) / np.float32(7.5))
    assert (s > 0).all()
    q = np.clip(np.rint(g / s[..., None]), -8, 7).astype(np.int8)
    return q.reshape(n, k), s


def pack(q: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
    """q [N, K], s [N, K/32] -> qweight I32 [K, N/8], qzeros I32 [K/32, N/8], scales f32 [K/32, N]."""
    n, k = q.shape
    u = (q.T.astype(np.int64) + 8).astype(np.uint32)  # [K, N]
    assert u.max() <= 15
    words = np.zeros((k, n // 8), dtype=np.uint32)
    for i, col in enumerate(AWQ_ORDER):
        words |= u[:, col::8] << np.uint32(4 * i)
    zeros = np.full((k // GROUP, n // 8), 0x88888888, dtype=np.uint32)
    return {"qweight": words.view(np.int32), "qzeros": zeros.view(np.int32),
            "scales": np.ascontiguousarray(s.T, dtype=np.float32)}


def unpack_spec(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """docs/spec/formats.md §4 dequantize_gemm, element by element formula (vectorized): Wt [K, N]."""
    k, n8 = qweight.shape
    n = n8 * 8
    qw = qweight.view(np.uint32)
    qz = qzeros.view(np.uint32)
    cols = np.arange(n)
    shift = (4 * np.array(AWQ_REVERSE_ORDER)[cols % 8]).astype(np.uint32)
    u = (qw[:, cols // 8] >> shift) & np.uint32(15)
    z = (qz[np.arange(k) // GROUP][:, cols // 8] >> shift) & np.uint32(15)
    return ((u.astype(np.float32) - z.astype(np.float32)) * scales[np.arange(k) // GROUP]).astype(np.float32)


def autoawq_packing_utils():
    """AutoAWQ's awq/utils/packing_utils.py module, or None."""
    try:
        from awq.utils import packing_utils  # type: ignore
        return packing_utils, "installed awq package"
    except Exception:  # noqa: BLE001 - missing or incompatible with this transformers
        pass
    src = os.environ.get("AUTOAWQ_SRC")
    if src:
        path = Path(src) / "awq" / "utils" / "packing_utils.py"
        spec = importlib.util.spec_from_file_location("awq_packing_utils", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod, f"{path} (AUTOAWQ_SRC)"
    return None, None


def write_checkpoint(d: Path, tensors: dict[str, "np.ndarray | object"]) -> list[str]:
    """Shard by size in name order into N_SHARDS files + index; returns the shard names."""
    from safetensors.torch import save_file
    names = sorted(tensors)
    sizes = {k: tensors[k].numel() * tensors[k].element_size() for k in names}
    total = sum(sizes.values())
    target = total / N_SHARDS
    shards, cur, acc = [], [], 0
    for k in names:
        if cur and acc + sizes[k] > target * (len(shards) + 1) and len(shards) < N_SHARDS - 1:
            shards.append(cur)
            cur = []
        cur.append(k)
        acc += sizes[k]
    shards.append(cur)
    files = [f"model-{i + 1:05d}.safetensors" for i in range(len(shards))]
    wmap = {}
    for f, ks in zip(files, shards):
        save_file({k: tensors[k].contiguous() for k in ks}, str(d / f), metadata={"format": "pt"})
        wmap.update({k: f for k in ks})
    (d / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": wmap}, indent=2) + "\n")
    assert len(files) >= 2
    return files


def read_checkpoint(d: Path) -> dict[str, "object"]:
    from safetensors.torch import load_file
    index = json.loads((d / "model.safetensors.index.json").read_text())
    out = {}
    for f in sorted(set(index["weight_map"].values())):
        for k, v in load_file(str(d / f)).items():
            assert index["weight_map"][k] == f
            out[k] = v
    assert set(out) == set(index["weight_map"])
    return out


def main() -> None:
    import argparse
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    import torch
    fc.env_threads()
    d = fc.fresh_dir(NAME)
    w = fc.random_weights(M, M["seed"])

    # --- QAT-like snapping and AWQ packing
    tensors, snapped, qs = {}, {}, {}
    for name in fc.hf_tensor_names(M["layers"]):
        x = w[name]
        if is_linear(name):
            q, s = snap(x)
            snapped[name] = (q.astype(np.float32) * np.repeat(s, GROUP, axis=1)).astype(np.float32)
            qs[name] = (q, s)
            p = pack(q, s)
            prefix = name[: -len(".weight")]
            tensors[prefix + ".qweight"] = torch.from_numpy(p["qweight"])
            tensors[prefix + ".qzeros"] = torch.from_numpy(p["qzeros"])
            tensors[prefix + ".scales"] = torch.from_numpy(p["scales"]).bfloat16()
            assert torch.equal(tensors[prefix + ".scales"].float(), torch.from_numpy(p["scales"]))
        else:
            tensors[name] = torch.from_numpy(x).bfloat16()
    files = write_checkpoint(d, tensors)

    cfg = fc.hf_config(M)
    cfg.architectures = ["Gemma3ForCausalLM"]
    cfg.use_cache = True
    obj = json.loads(cfg.to_json_string())
    obj["dtype"] = "bfloat16"
    obj["quantization_config"] = QUANT_CONFIG
    (d / "config.json").write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")

    # --- read back, dequantize two ways
    back = read_checkpoint(d)
    awq_mod, awq_where = autoawq_packing_utils()
    weights, n_lin, n_vals = {}, 0, 0
    for name in fc.hf_tensor_names(M["layers"]):
        if is_linear(name):
            prefix = name[: -len(".weight")]
            qw, qz, sc = back[prefix + ".qweight"], back[prefix + ".qzeros"], back[prefix + ".scales"]
            assert qw.dtype == torch.int32 and qz.dtype == torch.int32 and sc.dtype == torch.bfloat16
            n, k = w[name].shape
            assert tuple(qw.shape) == (k, n // 8) and tuple(qz.shape) == (k // GROUP, n // 8)
            assert tuple(sc.shape) == (k // GROUP, n)
            assert (qz.numpy().view(np.uint32) == 0x88888888).all()
            wt = unpack_spec(qw.numpy(), qz.numpy(), sc.float().numpy())
            assert np.array_equal(wt.T, snapped[name]), f"{name}: spec unpacking differs"
            if awq_mod is not None:
                # scales widened to f32 so the product is exact (with bf16 scales torch rounds it to bf16)
                wt2 = awq_mod.dequantize_gemm(qw, qz, sc.float(), 4, GROUP).float().numpy()
                assert np.array_equal(wt2, wt), f"{name}: AutoAWQ dequantize_gemm differs"
                wt3 = awq_mod.dequantize_gemm(qw, qz, sc, 4, GROUP).float().numpy()
                assert np.array_equal(wt3, bf16_array(wt)), f"{name}: AutoAWQ bf16 dequantize_gemm differs"
            q, s = qs[name]
            n_lin += 1
            n_vals += q.size
            weights[name] = wt.T.copy()
        else:
            assert back[name].dtype == torch.bfloat16
            weights[name] = back[name].float().numpy()
    hist = np.bincount(np.concatenate([qs[k][0].ravel() for k in qs]).astype(np.int64) + 8, minlength=16)
    print(f"  {n_lin} linears, {n_vals} int4 values; q histogram -8..7: {hist.tolist()}")
    print("  spec unpacking: exact; AutoAWQ dequantize_gemm: "
          + (f"exact ({awq_where})" if awq_mod is not None else "skipped (no awq package, AUTOAWQ_SRC unset)"))

    # --- reference
    prompt = fc.make_prompt(M)
    sqrt_d = float(M["hidden"]) ** 0.5
    es = fc.bf16_round(sqrt_d)
    logits, greedy, info = fc.run_reference(M, weights, prompt, es, True)
    info["int4_histogram_q_minus8_to_7"] = hist.tolist()
    info["autoawq_dequantize_gemm_checked"] = awq_mod is not None
    v = fc.versions()
    desc = (f"Gemma3ForCausalLM (text, like Gemma 3 1B): hidden {M['hidden']}, {M['heads']} q heads x head_dim "
            f"{M['head_dim']} (q width {M['heads'] * M['head_dim']}), {M['kv_heads']} kv heads, ffn {M['ffn']}, "
            f"layers [local, global], window {M['window']}, rope 1e4 local / 1e6 global, query_pre_attn_scalar "
            f"{M['head_dim']}, vocab {M['vocab']}, tied embeddings")
    fc.write_ref(
        d, "safetensors_awq", "model.safetensors.index.json", prompt, greedy, logits,
        fc.hf_ref_string(
            "weights = this AWQ checkpoint dequantized exactly (Wt[k][n] = (nibble - 8) * bf16 scale, in "
            "float32), embedding and norms bf16 widened to float32; embedding scale sqrt(96) rounded to bf16 = "
            f"{es!r} (exact would be {sqrt_d!r})"),
        f"Model: {desc}. AWQ int4 layout of gau-nernst/gemma3-int4 convert_flax.py --format awq (formats.md 4): "
        f"every q/k/v/o/gate/up/down weight as qweight I32 [K, N/8] (AWQ nibble order [0,2,4,6,1,3,5,7]), "
        f"qzeros I32 [K/32, N/8] (all 8), scales BF16 [K/32, N]; group size 32 along the input dimension; "
        f"embedding and norms BF16; shards {', '.join(files)} + model.safetensors.index.json; config.json "
        f"quantization_config {json.dumps(QUANT_CONFIG)}. Weights were snapped to the 4-bit grid before "
        f"packing (QAT-like), so the packing is lossless. Tools: transformers {v['transformers']}, "
        f"safetensors {v['safetensors']}.",
        {"embed_scale": es, "checks": info})
    fc.print_ref("safetensors_awq", info, greedy)


if __name__ == "__main__":
    main()

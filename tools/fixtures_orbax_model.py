#!/usr/bin/env python3
"""Tiny random Gemma 3 and Gemma 2 models saved by Google's `gemma` library as Orbax checkpoints,
with reference logits from the library's own JAX forward pass, for the C++ parity test.

Usage (from the repository root, CPU only, about a minute):

    python3 -m venv /tmp/orbax-venv && /tmp/orbax-venv/bin/pip install gemma orbax-checkpoint tensorstore jax
    /tmp/orbax-venv/bin/python tools/fixtures_orbax_model.py

Writes tests/fixtures/models/<name>/:
    ckpt/                        the Orbax checkpoint (float32 params)
    ref/orbax_f32.json + ref/orbax_f32.logits.f32.zst
        the format of tests/fixtures/models/README.md: 64 prompt ids (2 = BOS first, the rest random
        in [4, V)), logits at every prompt position, 32 greedy ids (argmax, full re-forward each
        step, no stop at EOS).

Models. An Orbax checkpoint stores no config: the engine infers it from the array shapes, and a
shape that matches no release gets the generation's defaults (src/model/load_orbax.cpp). The JAX
models below use exactly those defaults, so the reference is the model the engine must build:
  orbax_gemma3_tiny  Gemma 3: D=32, 4 q heads x 16 (q width 64 != D), 2 KV heads, F=48, 6 layers
                     (5 local + 1 global: both RoPE bases 1e4 / 1e6), QK-norm, sliding window 512,
                     query scale head_dim^-0.5, no soft-caps, vocab 288, gating [2, F, D].
                     Saved in the Kaggle FLAT layout ("transformer/layer_0/attn/q_einsum" -> {"w"}),
                     converted with the library's own NESTED -> FLAT mapping.
  orbax_gemma2_tiny  Gemma 2: D=32, 4 x 16, 2 KV heads, F=48, 2 layers (local, global), window 4096,
                     attention soft-cap 50, final soft-cap 30, vocab 288, gating [2, D, F]
                     (transpose_gating_einsum=False, as Gemma 2 2B). Saved with gm.ckpts.save_params
                     (the library's NESTED layout, "layer_0.attn.q_einsum.w").
The reference runs the library's Transformer in float32 (dtype=float32 params and activations)
with explicit positions and a causal mask (so that a generated id 0 is not treated as padding).
Weights as tools/fixtures_common.random_weights (see EMBED_STD below):
deterministic (numpy seeds).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"


# The recipe of tools/fixtures_common.random_weights: the scaled embedding has RMS 0.5, below the
# O(1) block outputs (with a larger one the tied head predicts the input token and greedy decoding
# repeats it); post-FFN norms around 1 + 1.5 so the MLP dominates and greedy walks through many
# tokens; the final norm around 1 + 4 spreads the logits.
EMBED_STD = 0.5


def compat_shims() -> None:
    """gemma 3.3.0 (the newest on PyPI for Python 3.11) names kauldron's AbstractPartialLoader, which
    kauldron 1.4 renamed InitTransform; alias it so that the library imports."""
    from kauldron import checkpoints
    if not hasattr(checkpoints, "AbstractPartialLoader"):
        checkpoints.AbstractPartialLoader = checkpoints.InitTransform


def zstd_bytes(raw: bytes) -> bytes:
    return subprocess.run(["zstd", "-19", "-q", "-c", "--no-check"], input=raw, capture_output=True,
                          check=True).stdout


def model_and_config(gen: int):
    from gemma.gm.nn import _config, _modules, _transformer
    from gemma.gm.nn import _gemma
    L = _modules.AttentionType
    if gen == 3:
        cfg = _config.TransformerConfig(
            final_logit_softcap=None, num_embed=288, embed_dim=32, hidden_dim=48, num_heads=4, head_dim=16,
            num_kv_heads=2, use_post_attn_norm=True, use_post_ffw_norm=True, use_qk_norm=True,
            attention_types=_config.make_attention_layers_types(_gemma.GEMMA3_ATTENTION_PATTERN, num_layers=6),
            query_pre_attn_norm=_config.QueryPreAttentionNormalisation.BY_ONE_OVER_SQRT_HEAD_DIM,
            attn_logits_soft_cap=None, sliding_window_size=512, transpose_gating_einsum=True,
            local_base_frequency=10_000, global_base_frequency=1_000_000, vision_encoder=None)
    else:
        cfg = _config.TransformerConfig(
            final_logit_softcap=30.0, num_embed=288, embed_dim=32, hidden_dim=48, num_heads=4, head_dim=16,
            num_kv_heads=2, use_post_attn_norm=True, use_post_ffw_norm=True,
            attention_types=(L.LOCAL_SLIDING, L.GLOBAL),
            query_pre_attn_norm=_config.QueryPreAttentionNormalisation.BY_ONE_OVER_SQRT_HEAD_DIM,
            attn_logits_soft_cap=50.0, sliding_window_size=4096, transpose_gating_einsum=False)

    class Tiny(_transformer.Transformer):
        config: _config.TransformerConfig = cfg

    import jax.numpy as jnp
    return Tiny(dtype=jnp.float32), cfg


def random_params(model, seed: int, D: int):
    import jax
    import jax.numpy as jnp
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32)))["params"]
    rng = np.random.default_rng(seed)

    def make(path, s):
        names = [getattr(p, "key", str(p)) for p in path]
        shape = s.shape
        if names[-1] == "scale":  # zero-centred norms, applied as 1 + w
            mean = {"final_norm": 4.0, "post_ffw_norm": 1.5}.get(names[-2], 0.0)
            v = rng.normal(mean, 0.5, shape)
        elif names[-1] == "input_embedding":
            v = rng.normal(0, EMBED_STD / np.sqrt(D), shape)
        else:  # einsum kernels, by the name of their module: fan-in is D, N*H or F
            fan_in = {"attn_vec_einsum": shape[0] * shape[1], "linear": shape[0]}.get(names[-2], D)
            v = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
        return jnp.asarray(v.astype(np.float32))

    return jax.tree_util.tree_map_with_path(make, shapes)


_JIT = {}


def forward(model, params, ids):
    """Logits at every position of `ids`. Runs one compiled length (96, padded at the end): with the
    causal mask, padding after a position cannot change its logits."""
    import jax
    import jax.numpy as jnp
    T, P = len(ids), 96
    assert T <= P
    if id(model) not in _JIT:
        pos = jnp.arange(P, dtype=jnp.int32)[None]
        mask = jnp.tril(jnp.ones((P, P), dtype=bool))[None]
        _JIT[id(model)] = jax.jit(lambda p, t: model.apply({"params": p}, t, positions=pos, attention_mask=mask,
                                                           return_last_only=False).logits[0])
    tokens = jnp.asarray([list(ids) + [1] * (P - T)], jnp.int32)
    return np.asarray(_JIT[id(model)](params, tokens), dtype=np.float32)[:T]


def save(params, path: Path, flat: bool):
    import orbax.checkpoint as ocp
    from gemma import gm
    from gemma.gm.ckpts import _checkpoint
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if flat:  # the Kaggle layout, through the library's own NESTED -> FLAT mapping
        ckpt = ocp.StandardCheckpointer()
        ckpt.save(path, _checkpoint._nested_to_flat(params))
        ckpt.wait_until_finished()
    else:
        gm.ckpts.save_params(params, path, wait_until_finished=True)
    # The library must read it back to the same params.
    back = gm.ckpts.load_params(path)
    import jax
    for (pa, a), (pb, b) in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves_with_path(back)):
        assert pa == pb and np.array_equal(np.asarray(a), np.asarray(b)), (pa, pb)


def build(name: str, gen: int, seed: int) -> None:
    import jax
    from gemma import gm
    model, cfg = model_and_config(gen)
    params = random_params(model, seed, cfg.embed_dim)
    mdir = MODELS / name
    save(params, mdir / "ckpt", flat=(gen == 3))
    rng = np.random.default_rng(seed + 1)
    V = cfg.num_embed
    prompt = [2] + [int(x) for x in rng.integers(4, V, 63)]
    logits = forward(model, params, prompt)
    seq = list(prompt)
    greedy, margins = [], []
    for _ in range(32):
        last = forward(model, params, seq)[-1]
        s = np.sort(last)
        margins.append(float(s[-1] - s[-2]))
        nxt = int(np.argmax(last))
        greedy.append(nxt)
        seq.append(nxt)
    pm = np.sort(logits, axis=-1)
    ref = mdir / "ref"
    ref.mkdir(parents=True, exist_ok=True)
    lname = "orbax_f32.logits.f32.zst"
    (ref / lname).write_bytes(zstd_bytes(np.ascontiguousarray(logits, dtype="<f4").tobytes()))
    import importlib.metadata as md
    vers = ", ".join(f"{p} {md.version(p)}" for p in ("gemma", "jax", "flax", "orbax-checkpoint", "tensorstore"))
    layers = ["global" if t.name == "GLOBAL" else "local" for t in cfg.attention_types]
    obj = {
        "checkpoint": "ckpt",
        "prompt_ids": prompt,
        "greedy_ids": greedy,
        "logits": lname,
        "logits_shape": [len(prompt), V],
        "vocab": V,
        "reference": f"google-deepmind gemma library Transformer ({vers}), float32 params and activations on CPU, "
                     "explicit positions and causal mask; greedy = argmax, 32 steps, each a full re-forward.",
        "notes": f"Gemma {gen}: hidden {cfg.embed_dim}, {cfg.num_heads} q heads x head_dim {cfg.head_dim}, "
                 f"{cfg.num_kv_heads} kv heads, ffn {cfg.hidden_dim}, {len(layers)} layers {layers}, sliding window "
                 f"{cfg.sliding_window_size}, rope {cfg.local_base_frequency} / {cfg.global_base_frequency}, query scale "
                 f"head_dim^-0.5, attn soft-cap {cfg.attn_logits_soft_cap}, final soft-cap {cfg.final_logit_softcap}, "
                 f"vocab {V}, gating {'[2, F, D]' if cfg.transpose_gating_einsum else '[2, D, F]'}; checkpoint layout "
                 f"{'FLAT (Kaggle)' if gen == 3 else 'NESTED (gm.ckpts.save_params)'}.",
        "embed_scale": float(np.sqrt(np.float32(cfg.embed_dim))),
        "checks": {"min_top2_margin_prompt": float((pm[:, -1] - pm[:, -2]).min()),
                   "min_top2_margin_greedy": min(margins), "logit_absmax": float(np.abs(logits).max())},
    }
    (ref / "orbax_f32.json").write_text(json.dumps(obj, indent=1) + "\n")
    print(f"wrote {mdir}: greedy {greedy[:8]}...")


def main() -> None:
    import jax
    jax.config.update("jax_platforms", "cpu")
    compat_shims()
    which = sys.argv[1:] or ["orbax_gemma3_tiny", "orbax_gemma2_tiny"]
    for name in which:
        build(name, 3 if "gemma3" in name else 2, seed=3 if "gemma3" in name else 2)


if __name__ == "__main__":
    main()

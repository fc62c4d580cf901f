"""Shared helpers for the fixture generators (tools/fixtures_*.py).

Not a script. Holds:
  * the HF <-> GGUF tensor-name mapping for Gemma 1, 2 and 3 (taken from gguf-py's own tensor map),
  * GGUF writing in llama.cpp's conventions (convert_hf_to_gguf.py / conversion/gemma.py, classes
    GemmaModel, Gemma2Model, Gemma3Model): norms stored as 1 + w in F32, embedding not pre-scaled,
    no output.weight (tied), the {gemma,gemma2,gemma3}.* hyper-parameter keys llama.cpp's loader
    reads, a minimal SentencePiece-style ("llama") vocabulary,
  * GGUF reading back into HF-named float32 weights (dequantize, undo the +1 on norms),
  * building a float32 HF Gemma{,2,3}ForCausalLM ("eager" attention) from a weight dict, prefill
    logits and greedy continuation without a KV cache,
  * an independent float64 forward written from the spec (docs/spec/architecture.md §2) used to
    cross-check HF's config semantics (window, query scale, per-layer RoPE, soft-caps, norms),
  * the per-model driver shared by tools/fixtures_gemma3.py and tools/fixtures_gemma12.py
    (prompt, reference run, safetensors / bf16 / GGUF writers, reference strings),
  * writing ref/<fmt>.json + <fmt>.logits.f32.zst.

A model is described by a dict (see MODELS in those scripts): "gen" (1, 2 or 3; default 3),
"hidden", "heads", "kv_heads", "head_dim", "ffn", "layers", "vocab", "window", "layer_types",
"rope_local", "rope_global", "rope_linear_factor", "max_pos", "gguf_pattern", and optionally
"qscale" (query_pre_attn_scalar, default head_dim), "attn_softcap", "final_softcap", "emb_std",
"post_ffw_mean", "final_norm_mean", "norm_means" ({name suffix: mean} for norm weights).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"

LOCAL, GLOBAL = "sliding_attention", "full_attention"

ARCH = {1: "gemma", 2: "gemma2", 3: "gemma3"}                       # GGUF general.architecture
HF_CLASS = {1: "GemmaForCausalLM", 2: "Gemma2ForCausalLM", 3: "Gemma3ForCausalLM"}


def gen_of(m: dict) -> int:
    return int(m.get("gen", 3))


def qscale_of(m: dict) -> float:
    """query_pre_attn_scalar (the query scale is its -0.5 power); head_dim unless set."""
    return float(m.get("qscale") or m["head_dim"])

# ---------------------------------------------------------------------------------------------
# versions


def versions() -> dict:
    import gguf  # noqa: F401
    import importlib.metadata as md
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gguf": md.version("gguf"),
        "numpy": np.__version__,
        "safetensors": md.version("safetensors"),
    }


def llamacpp_version(src: str = "/work/llamacpp/src", build: str = "/work/llamacpp/build") -> str:
    """Best available description of the llama.cpp build (git hash if the tree has one)."""
    parts = []
    try:
        h = subprocess.run(["git", "-C", src, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                           text=True).stdout.strip()
        if h:
            parts.append(f"commit {h}")
    except OSError:
        pass
    cfg = Path(build) / "llama-config-version.cmake"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            if line.startswith("set(PACKAGE_VERSION "):
                parts.append("libllama " + line.split('"')[1])
                break
    so = sorted(Path(build, "bin").glob("libggml.so.*.*.*"))
    if so:
        parts.append("ggml " + so[-1].name.split(".so.")[1])
    return "llama.cpp " + (", ".join(parts) if parts else "unknown version") + \
        ("" if any(p.startswith("commit") for p in parts) else " (source tree without git metadata)")


# ---------------------------------------------------------------------------------------------
# tensor names


def hf_tensor_names(n_layers: int, gen: int = 3) -> list[str]:
    """HF names in a fixed order (the order random_weights draws them in).

    gen 1 (GemmaForCausalLM): no q/k norms, no post-norms; its `post_attention_layernorm` is the
    pre-FFN norm (docs/spec/architecture.md §2.7).  gen 2: no q/k norms.  gen 3: everything."""
    names = ["model.embed_tokens.weight"]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        if gen == 1:
            sub = ("input_layernorm.weight",
                   "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                   "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                   "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")
        else:
            sub = ("input_layernorm.weight",
                   "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                   "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
                   "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight",
                   "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
                   "post_feedforward_layernorm.weight")
            if gen == 2:
                sub = tuple(x for x in sub if not x.endswith(("q_norm.weight", "k_norm.weight")))
        names += [p + s for s in sub]
    names.append("model.norm.weight")
    return names


def gguf_name(hf_name: str, n_layers: int, gen: int = 3) -> str:
    """HF name -> GGUF name using gguf-py's tensor map (the one convert_hf_to_gguf.py uses).
    For gen 1 this maps `post_attention_layernorm` to `ffn_norm` (the GEMMA arch has no
    post-attention norm), for gen 2/3 to `post_attention_norm`."""
    import gguf
    arch = {1: gguf.MODEL_ARCH.GEMMA, 2: gguf.MODEL_ARCH.GEMMA2, 3: gguf.MODEL_ARCH.GEMMA3}[gen]
    tmap = gguf.get_tensor_name_map(arch, n_layers)
    out = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if out is None:
        raise KeyError(hf_name)
    return out


def is_norm(hf_name: str) -> bool:
    # conversion/gemma.py Gemma3Model.norm_shift: every tensor whose name ends in "norm.weight"
    return hf_name.endswith("norm.weight")


# ---------------------------------------------------------------------------------------------
# model configuration


def hf_config(m: dict):
    """Gemma{,2,3}(Text)Config from our small model description dict."""
    gen = gen_of(m)
    if gen == 1:
        return _hf_config_gemma1(m)
    if gen == 2:
        return _hf_config_gemma2(m)
    from transformers import Gemma3TextConfig

    rope = {
        GLOBAL: {"rope_type": "default", "rope_theta": float(m["rope_global"])},
        LOCAL: {"rope_type": "default", "rope_theta": float(m["rope_local"])},
    }
    if m.get("rope_linear_factor"):
        rope[GLOBAL] = {"rope_type": "linear", "factor": float(m["rope_linear_factor"]),
                        "rope_theta": float(m["rope_global"])}
    cfg = Gemma3TextConfig(
        vocab_size=m["vocab"], hidden_size=m["hidden"], intermediate_size=m["ffn"],
        num_hidden_layers=m["layers"], num_attention_heads=m["heads"],
        num_key_value_heads=m["kv_heads"], head_dim=m["head_dim"],
        max_position_embeddings=m["max_pos"], rms_norm_eps=1e-6,
        query_pre_attn_scalar=m["head_dim"],   # docs/spec/architecture.md §12.1: HF default 256 would differ from GGUF
        sliding_window=m["window"], layer_types=list(m["layer_types"]),
        rope_parameters=rope, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        tie_word_embeddings=True, final_logit_softcapping=None, attn_logit_softcapping=None,
        hidden_activation="gelu_pytorch_tanh", use_cache=False,
    )
    cfg._attn_implementation = "eager"
    return cfg


def _hf_config_gemma1(m: dict):
    """GemmaConfig.  transformers 5 names the activation `hidden_act` (a legacy "gelu" is rewritten
    to the tanh form); real hub configs of the later revisions carry both `hidden_act` and
    `hidden_activation`, so both are written.  Gemma 1 has no query_pre_attn_scalar (HF uses
    head_dim**-0.5); it is written anyway (= head_dim) so that no loader falls back to a default of
    256."""
    from transformers import GemmaConfig
    assert m.get("qscale") in (None, m["head_dim"]) and not m.get("attn_softcap") and not m.get("final_softcap")
    assert all(t == GLOBAL for t in m["layer_types"]) and m["rope_local"] == m["rope_global"]
    cfg = GemmaConfig(
        vocab_size=m["vocab"], hidden_size=m["hidden"], intermediate_size=m["ffn"],
        num_hidden_layers=m["layers"], num_attention_heads=m["heads"],
        num_key_value_heads=m["kv_heads"], head_dim=m["head_dim"],
        max_position_embeddings=m["max_pos"], rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": float(m["rope_global"])},
        pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
        hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=m["head_dim"], use_cache=False,
    )
    cfg._attn_implementation = "eager"
    return cfg


def _hf_config_gemma2(m: dict):
    """Gemma2Config: query_pre_attn_scalar always explicit (transformers defaults it to 256)."""
    from transformers import Gemma2Config
    assert m["rope_local"] == m["rope_global"] and not m.get("rope_linear_factor")
    qs = qscale_of(m)
    cfg = Gemma2Config(
        vocab_size=m["vocab"], hidden_size=m["hidden"], intermediate_size=m["ffn"],
        num_hidden_layers=m["layers"], num_attention_heads=m["heads"],
        num_key_value_heads=m["kv_heads"], head_dim=m["head_dim"],
        max_position_embeddings=m["max_pos"], rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": float(m["rope_global"])},
        query_pre_attn_scalar=int(qs) if float(qs).is_integer() else qs,
        sliding_window=m["window"], layer_types=list(m["layer_types"]),
        attn_logit_softcapping=m.get("attn_softcap"), final_logit_softcapping=m.get("final_softcap"),
        pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
        hidden_activation="gelu_pytorch_tanh", use_cache=False,
    )
    cfg._attn_implementation = "eager"
    return cfg


def random_weights(m: dict, seed: int) -> dict[str, np.ndarray]:
    """Random float32 weights of realistic scale (every feature matters).

    linear weights ~ N(0, 1/fan_in); embedding ~ N(0, (e/sqrt(D))^2) with e = m["emb_std"] (default
    0.5), so the scaled embedding (x sqrt(D)) has RMS e, below the O(1) layer outputs: the prediction then depends on the
    context (window, RoPE...) rather than mostly on the current token (with a larger embedding the
    tied head mostly predicts the input token and greedy decoding repeats one token).  Norm weights
    (stored as w, applied as 1 + w) ~ N(0, 0.5^2), so some (1 + w) are negative or near zero,
    except: post-FFN norms ~ N(1.5, 0.5^2), so the MLP (a random function of the current token)
    dominates the residual and greedy decoding walks through many tokens instead of repeating one;
    the final norm ~ N(4, 0.5^2), which spreads the logits (larger top-1/top-2 margins) without
    changing which token wins.  Seeds were picked (tools/fixtures_gemma3.py) for varied greedy
    continuations with top-1/top-2 margins >= 0.01.
    """
    rng = np.random.default_rng(seed)
    D, F, H = m["hidden"], m["ffn"], m["head_dim"]
    NQ, NK = m["heads"] * H, m["kv_heads"] * H
    shapes = {}
    for name in hf_tensor_names(m["layers"], gen_of(m)):
        if name == "model.embed_tokens.weight":
            shapes[name] = (m["vocab"], D)
        elif name.endswith("q_norm.weight") or name.endswith("k_norm.weight"):
            shapes[name] = (H,)
        elif is_norm(name):
            shapes[name] = (D,)
        elif name.endswith("q_proj.weight"):
            shapes[name] = (NQ, D)
        elif name.endswith("k_proj.weight") or name.endswith("v_proj.weight"):
            shapes[name] = (NK, D)
        elif name.endswith("o_proj.weight"):
            shapes[name] = (D, NQ)
        elif name.endswith("gate_proj.weight") or name.endswith("up_proj.weight"):
            shapes[name] = (F, D)
        elif name.endswith("down_proj.weight"):
            shapes[name] = (D, F)
        else:
            raise KeyError(name)
    w = {}
    for name, shp in shapes.items():
        mean = 0.0
        if name == "model.embed_tokens.weight":
            std = m.get("emb_std", 0.5) / math.sqrt(D)
        elif len(shp) == 1:
            std = 0.5
            if name == "model.norm.weight":
                mean = m.get("final_norm_mean", 4.0)
            elif name.endswith("post_feedforward_layernorm.weight"):
                mean = m.get("post_ffw_mean", 1.5)
            for suffix, mu in m.get("norm_means", {}).items():  # per-model overrides
                if name.endswith(suffix):
                    mean = mu
        else:
            std = 1.0 / math.sqrt(shp[1])
        w[name] = (rng.standard_normal(shp) * std + mean).astype(np.float32)
    return w


def build_hf(m: dict, weights: dict[str, np.ndarray], embed_scale: float | None = None):
    """float32 HF Gemma{,2,3}ForCausalLM (eager attention) holding exactly `weights`."""
    import torch
    import transformers

    torch.manual_seed(0)
    cls = getattr(transformers, HF_CLASS[gen_of(m)])
    model = cls(hf_config(m)).to(torch.float32).eval()
    sd = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "embeddings not tied"
    es = model.model.embed_tokens
    with torch.no_grad():
        es.embed_scale.fill_(float(embed_scale) if embed_scale is not None else m["hidden"] ** 0.5)
    assert model.config._attn_implementation == "eager"
    return model


def hf_logits(model, ids: list[int]) -> np.ndarray:
    import torch
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return out.logits[0].float().numpy()


def hf_greedy(model, prompt: list[int], n_new: int) -> tuple[list[int], list[float]]:
    """Greedy continuation by a full re-forward per step (no KV cache: the sliding-window mask is
    then HF's plain mask over the whole sequence, no cache eviction involved).
    Returns the tokens and, per step, the margin between the top two logits."""
    ids = list(prompt)
    out, margins = [], []
    for _ in range(n_new):
        row = hf_logits(model, ids)[-1]
        nxt = int(np.argmax(row))
        margins.append(float(top2_margins(row[None])[0]))
        ids.append(nxt)
        out.append(nxt)
    return out, margins


# ---------------------------------------------------------------------------------------------
# independent float64 forward (docs/spec/architecture.md §2), used only as a cross-check of HF


def spec_forward_f64(m: dict, weights: dict[str, np.ndarray], ids: list[int], embed_scale: float,
                     gelu_fp16_table: bool = False) -> np.ndarray:
    """gelu_fp16_table=True mimics llama.cpp's CPU GELU (ggml_vec_geglu_f32 with GGML_GELU_FP16:
    the input rounded to fp16, looked up in a table of fp16 results; identity above 10, 0 below -10)."""
    import torch
    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in weights.items()}
    D, H, N, K = m["hidden"], m["head_dim"], m["heads"], m["kv_heads"]
    T = len(ids)
    eps = 1e-6

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * (1.0 + w)

    def rope(x, base, scale):  # x [T, heads, H], split-half layout
        k = torch.arange(H // 2, dtype=torch.float64)
        inv = base ** (-2.0 * k / H) / scale
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        x1, x2 = x[..., : H // 2], x[..., H // 2:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    def gelu_exact(z):
        return 0.5 * z * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))

    def gelu_tanh(z):
        if not gelu_fp16_table:
            return gelu_exact(z)
        g = gelu_exact(z.to(torch.float16).to(torch.float64)).to(torch.float16).to(torch.float64)
        return torch.where(z <= -10, torch.zeros_like(z), torch.where(z >= 10, z, g))

    gen = gen_of(m)
    qscale = qscale_of(m)
    attn_cap, final_cap = m.get("attn_softcap"), m.get("final_softcap")
    x = t["model.embed_tokens.weight"][ids] * embed_scale
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    for l in range(m["layers"]):
        p = f"model.layers.{l}."
        local = m["layer_types"][l] == LOCAL
        h = rms(x, t[p + "input_layernorm.weight"])
        q = (h @ t[p + "self_attn.q_proj.weight"].T).view(T, N, H)
        k = (h @ t[p + "self_attn.k_proj.weight"].T).view(T, K, H)
        v = (h @ t[p + "self_attn.v_proj.weight"].T).view(T, K, H)
        if gen == 3:
            q = rms(q, t[p + "self_attn.q_norm.weight"])
            k = rms(k, t[p + "self_attn.k_norm.weight"])
        base = m["rope_local"] if local else m["rope_global"]
        scale = 1.0 if local else (m.get("rope_linear_factor") or 1.0)
        q, k = rope(q, base, scale), rope(k, base, scale)
        visible = j <= i
        if local:
            visible = visible & (i - j < m["window"])
        G = N // K
        outs = []
        for n in range(N):
            s = (q[:, n, :] @ k[:, n // G, :].T) * (qscale ** -0.5)  # query_pre_attn_scalar
            if attn_cap:
                s = attn_cap * torch.tanh(s / attn_cap)  # scaled scores, before the mask
            s = s.masked_fill(~visible, float("-inf"))
            outs.append(torch.softmax(s, dim=-1) @ v[:, n // G, :])
        a = torch.cat(outs, dim=-1) @ t[p + "self_attn.o_proj.weight"].T
        if gen == 1:  # no post-norms; HF post_attention_layernorm is the pre-FFN norm
            x = x + a
            h = rms(x, t[p + "post_attention_layernorm.weight"])
        else:
            x = x + rms(a, t[p + "post_attention_layernorm.weight"])
            h = rms(x, t[p + "pre_feedforward_layernorm.weight"])
        f = (gelu_tanh(h @ t[p + "mlp.gate_proj.weight"].T) * (h @ t[p + "mlp.up_proj.weight"].T)) \
            @ t[p + "mlp.down_proj.weight"].T
        x = x + (f if gen == 1 else rms(f, t[p + "post_feedforward_layernorm.weight"]))
    x = rms(x, t["model.norm.weight"])
    logits = x @ t["model.embed_tokens.weight"].T
    if final_cap:
        logits = final_cap * torch.tanh(logits / final_cap)
    return logits.numpy()


# ---------------------------------------------------------------------------------------------
# vocabulary


def tiny_vocab(n: int):
    """<pad> <eos> <bos> <unk>, the 256 byte pieces <0x00>..<0xFF>, then filler pieces.

    Same ids as Gemma for the 4 specials (pad 0, eos 1, bos 2, unk 3)."""
    import gguf
    TT = gguf.TokenType
    toks = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [TT.CONTROL, TT.CONTROL, TT.CONTROL, TT.UNKNOWN]
    scores = [0.0, 0.0, 0.0, 0.0]
    for b in range(256):
        toks.append(f"<0x{b:02X}>")
        types.append(TT.BYTE)
        scores.append(0.0)
    alpha = "abcdefghijklmnopqrstuvwxyz"
    k = 0
    while len(toks) < n:
        # "▁a", "▁b", ..., "▁z", "▁aa", "▁ab", ... : unique, valid UTF-8
        s, q = "", k
        while True:
            s = alpha[q % 26] + s
            q = q // 26 - 1
            if q < 0:
                break
        toks.append("\u2581" + s)
        types.append(TT.NORMAL)
        scores.append(-float(k + 1))
        k += 1
    assert len(toks) == n and len(set(toks)) == n
    return toks, scores, [int(x) for x in types]


# ---------------------------------------------------------------------------------------------
# GGUF


QTYPES = {  # fmt -> (GGMLQuantizationType name, LlamaFileType name)
    "f32": ("F32", "ALL_F32"),
    "f16": ("F16", "MOSTLY_F16"),
    "bf16": ("BF16", "MOSTLY_BF16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q4_0": ("Q4_0", "MOSTLY_Q4_0"),
    "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
    "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "q5_1": ("Q5_1", "MOSTLY_Q5_1"),
}


QSCALE_KEY = "{arch}.attention.query_pre_attn_scalar"  # ours, not llama.cpp's (docs/spec/architecture.md §12.1)


def write_gguf(path: Path, m: dict, weights: dict[str, np.ndarray], fmt: str, name: str) -> None:
    """Write a gemma / gemma2 / gemma3 GGUF the way llama.cpp's converter would, with every 2-D
    tensor in `fmt` (quantized with gguf-py's numpy quantizers) and every norm (1 + w) in F32."""
    import gguf
    qname, ftname = QTYPES[fmt]
    qtype = gguf.GGMLQuantizationType[qname]
    gen = gen_of(m)
    arch = ARCH[gen]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type("model")
    w.add_name(name)
    if gen in (1, 2):
        _gguf_params_gemma12(w, m, gen, int(gguf.LlamaFileType[ftname]))
    else:
        _gguf_params_gemma3(w, m, int(gguf.LlamaFileType[ftname]))
    _gguf_vocab(w, m)
    # --- tensors
    for hf in hf_tensor_names(m["layers"], gen):
        data = weights[hf].astype(np.float32)
        gname = gguf_name(hf, m["layers"], gen)
        if is_norm(hf):
            w.add_tensor(gname, (data + np.float32(1.0)).astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(gname, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(gname, data.astype(np.float16))
        else:
            w.add_tensor(gname, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _gguf_params_gemma12(w, m: dict, gen: int, file_type: int) -> None:
    """GemmaModel / Gemma2Model.set_gguf_parameters (conversion/gemma.py), same keys, same order.
    No RoPE keys (llama.cpp: base 10000), no sliding_window_pattern (gemma2: period 2, layer 0
    local).  gemma2 only: both soft-caps and the window; plus, only when query_pre_attn_scalar !=
    head_dim, our extra key gemma2.attention.query_pre_attn_scalar (llama.cpp ignores it and uses
    head_dim**-0.5 unless the model has 46 layers)."""
    w.add_context_length(m["max_pos"])
    w.add_embedding_length(m["hidden"])
    w.add_block_count(m["layers"])
    w.add_feed_forward_length(m["ffn"])
    w.add_head_count(m["heads"])
    w.add_head_count_kv(m["kv_heads"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_key_length(m["head_dim"])
    w.add_value_length(m["head_dim"])
    w.add_file_type(file_type)
    assert m["rope_global"] == 10000.0 and m["rope_local"] == 10000.0 and not m.get("rope_linear_factor")
    if gen == 1:
        assert m["gguf_pattern"] == "none"
        assert not m.get("attn_softcap") and not m.get("final_softcap") and qscale_of(m) == m["head_dim"]
        return
    # llama.cpp applies both caps unconditionally (defaults 50 / 30): a model without caps has no
    # gemma2 GGUF
    assert m.get("attn_softcap") and m.get("final_softcap")
    w.add_attn_logit_softcapping(float(m["attn_softcap"]))
    w.add_final_logit_softcapping(float(m["final_softcap"]))
    w.add_sliding_window(m["window"])
    assert m["gguf_pattern"] == "default"
    check_pattern(m)
    qs = qscale_of(m)
    if qs != m["head_dim"]:
        key = QSCALE_KEY.format(arch="gemma2")
        if float(qs).is_integer():
            w.add_uint32(key, int(qs))
        else:
            w.add_float32(key, float(qs))


def _gguf_params_gemma3(w, m: dict, file_type: int) -> None:
    import gguf
    # --- TextModel.set_gguf_parameters + Gemma3Model.set_gguf_parameters, same order
    w.add_block_count(m["layers"])
    w.add_context_length(m["max_pos"])
    w.add_embedding_length(m["hidden"])
    w.add_feed_forward_length(m["ffn"])
    w.add_head_count(m["heads"])
    w.add_head_count_kv(m["kv_heads"])
    if m.get("rope_linear_factor"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(m["rope_linear_factor"]))
    w.add_rope_freq_base(float(m["rope_global"]))
    w.add_rope_freq_base_swa(float(m["rope_local"]))  # TextModel writes it from rope_parameters
    w.add_layer_norm_rms_eps(1e-6)
    w.add_key_length(m["head_dim"])
    w.add_value_length(m["head_dim"])
    w.add_file_type(file_type)
    # sliding window + pattern: llama.cpp reads attention.sliding_window (absent/0 => every layer
    # global) and attention.sliding_window_pattern as a bool array (true = SWA), or a uint N
    # (layer l is SWA iff l % N < N - 1), default 6 when absent (src/models/gemma3.cpp,
    # llama_model_base::load_swa_pattern, llama_hparams::set_swa_pattern).
    pat = m["gguf_pattern"]
    if pat != "none":
        w.add_sliding_window(m["window"])
        if pat == "bool_array":
            w.add_sliding_window_pattern([lt == LOCAL for lt in m["layer_types"]])
        elif pat == "default":
            pass
        else:
            w.add_sliding_window_pattern(int(pat))
    check_pattern(m)


def _gguf_vocab(w, m: dict) -> None:
    """LlamaModel._set_vocab_sentencepiece + Gemma*Model.set_vocab.  GemmaModel.set_vocab also
    writes CodeGemma FIM/EOT token ids (67..70, 107): ids of byte pieces in our tiny vocabulary, so
    they are left out."""
    import gguf
    toks, scores, types = tiny_vocab(m["vocab"])
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)  # the converter writes it for every type


def check_pattern(m: dict) -> None:
    """The GGUF pattern we write must decode (llama.cpp's rules) to the HF layer_types."""
    L = m["layers"]
    pat = m["gguf_pattern"]
    if gen_of(m) == 2:  # llama_model_gemma2: load_swa_pattern(ml, 2) with no key -> period 2
        n = 2 if pat == "default" else int(pat)
        swa = [l % n < n - 1 for l in range(L)]
    elif pat == "none":
        swa = [False] * L
    elif pat == "bool_array":
        swa = [lt == LOCAL for lt in m["layer_types"]]
    else:
        n = 6 if pat == "default" else int(pat)
        swa = [n == 0 or (l % n < n - 1) for l in range(L)]
    want = [lt == LOCAL for lt in m["layer_types"]]
    assert swa == want, f"GGUF pattern {pat} gives {swa}, HF layer_types give {want}"


def read_gguf_weights(path: Path, n_layers: int, gen: int = 3):
    """GGUF -> (HF-named float32 weights as stored in the file, {gguf name: type name}).

    Dequantizes with gguf.quants.dequantize and undoes the +1 on norm weights."""
    import gguf
    r = gguf.GGUFReader(str(path))
    by_gguf = {t.name: t for t in r.tensors}
    out, types = {}, {}
    for hf in hf_tensor_names(n_layers, gen):
        t = by_gguf[gguf_name(hf, n_layers, gen)]
        arr = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        shape = tuple(int(x) for x in reversed(list(t.shape)))  # ne -> numpy (row-major) shape
        arr = arr.reshape(shape)
        types[t.name] = t.tensor_type.name
        if is_norm(hf):
            stored = arr
            arr = (stored - np.float32(1.0)).astype(np.float32)
            # HF applies (1 + w) in float32: make sure that reproduces the stored value exactly
            assert np.array_equal((np.float32(1.0) + arr).astype(np.float32), stored), hf
        out[hf] = arr
    extra = set(by_gguf) - {gguf_name(h, n_layers, gen) for h in hf_tensor_names(n_layers, gen)}
    assert not extra, f"unexpected tensors {extra}"
    return out, types


# ---------------------------------------------------------------------------------------------
# reference outputs


def zstd_bytes(raw: bytes) -> bytes:
    return subprocess.run(["zstd", "-19", "-q", "-c", "--no-check"], input=raw, capture_output=True,
                          check=True).stdout


def write_ref(model_dir: Path, fmt: str, checkpoint: str, prompt: list[int], greedy: list[int],
              logits: np.ndarray, reference: str, notes: str, extra: dict | None = None,
              logits_name: str | None = None) -> str:
    """Writes ref/<fmt>.json and its logits file; returns the logits file name.  With
    `logits_name`, the JSON points at that existing logits file instead (identical logits of two
    checkpoints that hold the same weights); it is read back and checked."""
    ref = model_dir / "ref"
    ref.mkdir(parents=True, exist_ok=True)
    logits = np.ascontiguousarray(logits, dtype="<f4")
    assert logits.shape == (len(prompt), logits.shape[1])
    raw = logits.tobytes()
    if logits_name is not None:
        have = (ref / logits_name).read_bytes()
        if logits_name.endswith(".zst"):
            have = subprocess.run(["zstd", "-dc"], input=have, capture_output=True, check=True).stdout
        assert have == raw, f"{logits_name} holds other logits"
        lname = logits_name
    else:
        comp = zstd_bytes(raw)
        if len(comp) < len(raw):
            lname = f"{fmt}.logits.f32.zst"
            (ref / lname).write_bytes(comp)
        else:
            lname = f"{fmt}.logits.f32"
            (ref / lname).write_bytes(raw)
    obj = {
        "checkpoint": checkpoint,
        "prompt_ids": [int(x) for x in prompt],
        "greedy_ids": [int(x) for x in greedy],
        "logits": lname,
        "logits_shape": [int(logits.shape[0]), int(logits.shape[1])],
        "vocab": int(logits.shape[1]),
        "reference": reference,
        "notes": notes,
    }
    if extra:
        obj.update(extra)
    (ref / f"{fmt}.json").write_text(json.dumps(obj, indent=1) + "\n")
    return lname


def top2_margins(logits: np.ndarray) -> np.ndarray:
    s = np.sort(logits, axis=-1)
    return s[:, -1] - s[:, -2]


def env_threads() -> None:
    """Keep torch frugal (2-core machine)."""
    import torch
    n = int(os.environ.get("FIXTURES_THREADS", "2"))
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------
# per-model driver shared by the fixture scripts

N_PROMPT = 64
N_NEW = 32


def make_prompt(m: dict) -> list[int]:
    """64 ids: BOS (2), then random ids in [4, m["prompt_vocab"] or m["vocab"])."""
    rng = np.random.default_rng(m["seed"] + 100)
    return [2] + [int(x) for x in rng.integers(4, m.get("prompt_vocab", m["vocab"]), N_PROMPT - 1)]


def hf_ref_string(what: str, cls: str = "Gemma3ForCausalLM") -> str:
    v = versions()
    return (f"HF transformers {v['transformers']} {cls}, eager attention, float32 on CPU "
            f"(torch {v['torch']}, numpy {v['numpy']}); {what}. Prompt logits from one forward over the "
            f"{N_PROMPT} prompt tokens; greedy = argmax, {N_NEW} steps, each a full re-forward without "
            "KV cache.")


def _rel_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(a).max())


def ablations(m: dict, weights: dict, prompt: list[int], embed_scale: float, logits: np.ndarray) -> dict:
    """How far the prompt logits move when one Gemma 2 feature is dropped (each must move them by
    far more than any parity tolerance, or the fixture would not test it): no attention soft-cap,
    no final soft-cap, query scale head_dim**-0.5 instead of query_pre_attn_scalar**-0.5, every
    layer global.  Relative to max |logit|; also the number of prompt positions whose argmax
    changes."""
    out = {}
    variants = []
    if m.get("attn_softcap"):
        variants.append(("no_attn_softcap", {"attn_softcap": None}))
    if m.get("final_softcap"):
        variants.append(("no_final_softcap", {"final_softcap": None}))
    if qscale_of(m) != m["head_dim"]:
        variants.append(("qscale_head_dim", {"qscale": m["head_dim"]}))
    if gen_of(m) == 2 and LOCAL in m["layer_types"]:
        variants.append(("all_global", {"layer_types": [GLOBAL] * m["layers"]}))
    for key, change in variants:
        mm = dict(m, **change)
        other = hf_logits(build_hf(mm, weights, embed_scale=embed_scale), prompt)
        out[f"{key}_max_rel_change"] = _rel_change(logits, other)
        out[f"{key}_argmax_changes"] = int((other.argmax(-1) != logits.argmax(-1)).sum())
    return out


def run_reference(m: dict, weights: dict, prompt: list[int], embed_scale: float, check_f64: bool):
    model = build_hf(m, weights, embed_scale=embed_scale)
    logits = hf_logits(model, prompt)
    greedy, gmargins = hf_greedy(model, prompt, N_NEW)
    # the greedy loop's first step must reproduce the prefill logits' last row argmax
    assert greedy[0] == int(np.argmax(logits[-1]))
    info = {"min_top2_margin_prompt": float(top2_margins(logits).min()),
            "min_top2_margin_greedy": float(min(gmargins)),
            "logit_absmax": float(np.abs(logits).max())}
    if check_f64:
        ref64 = spec_forward_f64(m, weights, prompt + greedy, embed_scale)
        full = hf_logits(model, prompt + greedy)
        err = np.abs(full - ref64).max() / np.abs(ref64).max()
        argmax_ok = bool((full.argmax(-1) == ref64.argmax(-1)).all())
        info["f64_spec_forward_max_rel_err"] = float(err)
        info["f64_argmax_agree"] = argmax_ok
        if err > 1e-4 or not argmax_ok:
            raise RuntimeError(f"HF disagrees with the float64 spec forward: rel {err:.3g}, argmax {argmax_ok}")
        info.update(ablations(m, weights, prompt, embed_scale, logits))
    return logits, greedy, info


def save_safetensors(m: dict, weights: dict, out: Path) -> dict:
    """config.json + model.safetensors (f32); returns the weights read back from the file."""
    from safetensors.numpy import load_file
    model = build_hf(m, weights)
    model.config.use_cache = True
    model.save_pretrained(str(out), safe_serialization=True)
    back = load_file(str(out / "model.safetensors"))
    assert set(back) == set(weights), set(back) ^ set(weights)
    for k in weights:
        assert back[k].dtype == np.float32 and np.array_equal(back[k], weights[k]), k
    return back


def save_bf16(m: dict, weights: dict, out: Path) -> dict:
    """bf16/ sharded copy; returns the stored bf16 weights widened to f32."""
    import torch
    from safetensors.torch import load_file
    model = build_hf(m, weights).to(torch.bfloat16)
    model.config.use_cache = True
    total = sum(v.size for v in weights.values()) * 2
    shard = max(total // 3, 1)
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size=shard)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) >= 2, f"expected >= 2 shards, got {files}"
    back = {}
    for f in files:
        for k, v in load_file(str(out / f)).items():
            assert v.dtype == torch.bfloat16, (k, v.dtype)
            back[k] = v.float().numpy()
    assert set(back) == set(weights)
    return back


def bf16_round(x: float) -> float:
    import torch
    return float(torch.tensor(x, dtype=torch.bfloat16).float())


def types_summary(types: dict) -> dict:
    out: dict[str, list[str]] = {}
    for name, t in types.items():
        out.setdefault(t, []).append(name)
    return out


def print_ref(fmt: str, info: dict, greedy: list[int]) -> None:
    print(f"  {fmt:18s} greedy[:8]={greedy[:8]} min margin prompt {info['min_top2_margin_prompt']:.3g} "
          f"greedy {info['min_top2_margin_greedy']:.3g}"
          + (f" f64 rel {info['f64_spec_forward_max_rel_err']:.2e}" if "f64_spec_forward_max_rel_err" in info else "")
          + "".join(f" {k[:-15]} {v:.3g}" for k, v in info.items() if k.endswith("_max_rel_change")),
          flush=True)


def build_standard_refs(name: str, m: dict, d: Path, weights: dict, prompt: list[int], desc: str) -> None:
    """The formats every fixture model may have: model.safetensors (m["safetensors"]), bf16/
    (m["bf16"]) and model.<fmt>.gguf for fmt in m["gguf"], each with its reference."""
    gen = gen_of(m)
    cls = HF_CLASS[gen]
    v = versions()
    sqrt_d = float(m["hidden"]) ** 0.5

    if m["safetensors"]:
        w = save_safetensors(m, weights, d)
        logits, greedy, info = run_reference(m, w, prompt, sqrt_d, True)
        write_ref(d, "safetensors_f32", "model.safetensors", prompt, greedy, logits,
                  hf_ref_string("weights = model.safetensors (float32) as stored; embedding scale "
                                f"exact sqrt({m['hidden']}) = {sqrt_d!r}", cls),
                  f"Model: {desc}. Config: config.json (transformers {v['transformers']} format).",
                  {"embed_scale": sqrt_d, "checks": info})
        print_ref("safetensors_f32", info, greedy)

    if m["bf16"]:
        w = save_bf16(m, weights, d / "bf16")
        es = bf16_round(sqrt_d)
        logits, greedy, info = run_reference(m, w, prompt, es, True)
        write_ref(d, "safetensors_bf16", "bf16/model.safetensors.index.json", prompt, greedy, logits,
                  hf_ref_string("weights = the bf16 shards in bf16/ widened to float32; embedding scale "
                                f"sqrt({m['hidden']}) rounded to bf16 = {es!r} (exact would be {sqrt_d!r})", cls),
                  f"Model: {desc}. The computation itself is float32; only the stored weights and the "
                  "embedding-scale constant are bf16-rounded (the engine's rule for bf16/f16 checkpoints).",
                  {"embed_scale": es, "checks": info})
        print_ref("safetensors_bf16", info, greedy)

    gguf_ref = ("weights = dequantized from this GGUF with gguf-py {gv} gguf.quants.dequantize, norm "
                "weights stored - 1; embedding scale exact sqrt({D}) = {s!r}")
    arch = ARCH[gen]
    keys_note = f"llama.cpp {arch} keys"
    if gen == 2 and qscale_of(m) != m["head_dim"]:
        keys_note += (f" plus our {QSCALE_KEY.format(arch=arch)} = {qscale_of(m):g} (llama.cpp ignores it and "
                      f"would use head_dim**-0.5 = {m['head_dim']}**-0.5)")
    for fmt in m["gguf"]:
        path = d / f"model.{fmt}.gguf"
        write_gguf(path, m, weights, fmt, name)
        w, types = read_gguf_weights(path, m["layers"], gen)
        logits, greedy, info = run_reference(m, w, prompt, sqrt_d, fmt == "f32")
        write_ref(d, f"gguf_{fmt}", path.name, prompt, greedy, logits,
                  hf_ref_string(gguf_ref.format(gv=v["gguf"], D=m["hidden"], s=sqrt_d), cls),
                  f"Model: {desc}. Written by tools/fixtures_common.write_gguf (gguf-py {v['gguf']} "
                  f"GGUFWriter, {fmt.upper()} via gguf.quants.quantize for every 2-D tensor incl. "
                  f"token_embd; norms F32 as 1+w; {keys_note}).",
                  {"embed_scale": sqrt_d, "tensor_types": types_summary(types), "checks": info})
        print_ref(f"gguf_{fmt}", info, greedy)


def fresh_dir(name: str) -> Path:
    import shutil
    d = FIXTURES / "models" / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d

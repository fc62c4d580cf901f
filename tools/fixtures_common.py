"""Shared helpers for the fixture generators (tools/fixtures_*.py).

Not a script. Holds:
  * the HF <-> GGUF tensor-name mapping for Gemma 3 (taken from gguf-py's own tensor map),
  * GGUF writing in llama.cpp's conventions (convert_hf_to_gguf.py / conversion/gemma.py, class
    Gemma3Model): norms stored as 1 + w in F32, embedding not pre-scaled, no output.weight (tied),
    the gemma3.* hyper-parameter keys llama.cpp's loader reads, a minimal SentencePiece-style
    ("llama") vocabulary,
  * GGUF reading back into HF-named float32 weights (dequantize, undo the +1 on norms),
  * building a float32 HF Gemma3ForCausalLM ("eager" attention) from a weight dict, prefill logits
    and greedy continuation without a KV cache,
  * an independent float64 forward written from the spec (architecture.md section 2) used to
    cross-check HF's config semantics (window, query scale, per-layer RoPE),
  * writing ref/<fmt>.json + <fmt>.logits.f32.zst.
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


def hf_tensor_names(n_layers: int) -> list[str]:
    names = ["model.embed_tokens.weight"]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        names += [p + s for s in (
            "input_layernorm.weight",
            "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
            "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
            "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight",
            "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
            "post_feedforward_layernorm.weight")]
    names.append("model.norm.weight")
    return names


def gguf_name(hf_name: str, n_layers: int) -> str:
    """HF name -> GGUF name using gguf-py's tensor map (the one convert_hf_to_gguf.py uses)."""
    import gguf
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, n_layers)
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
    """Gemma3TextConfig from our small model description dict."""
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
        query_pre_attn_scalar=m["head_dim"],   # architecture.md 12.1: HF default 256 would differ from GGUF
        sliding_window=m["window"], layer_types=list(m["layer_types"]),
        rope_parameters=rope, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        tie_word_embeddings=True, final_logit_softcapping=None, attn_logit_softcapping=None,
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
    for name in hf_tensor_names(m["layers"]):
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
                mean = 4.0
            elif name.endswith("post_feedforward_layernorm.weight"):
                mean = m.get("post_ffw_mean", 1.5)
        else:
            std = 1.0 / math.sqrt(shp[1])
        w[name] = (rng.standard_normal(shp) * std + mean).astype(np.float32)
    return w


def build_hf(m: dict, weights: dict[str, np.ndarray], embed_scale: float | None = None):
    """float32 HF Gemma3ForCausalLM (eager attention) holding exactly `weights`."""
    import torch
    from transformers import Gemma3ForCausalLM

    torch.manual_seed(0)
    model = Gemma3ForCausalLM(hf_config(m)).to(torch.float32).eval()
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
# independent float64 forward (architecture.md section 2), used only as a cross-check of HF


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
            s = (q[:, n, :] @ k[:, n // G, :].T) * (m["head_dim"] ** -0.5)  # query_pre_attn_scalar = H
            s = s.masked_fill(~visible, float("-inf"))
            outs.append(torch.softmax(s, dim=-1) @ v[:, n // G, :])
        a = torch.cat(outs, dim=-1) @ t[p + "self_attn.o_proj.weight"].T
        x = x + rms(a, t[p + "post_attention_layernorm.weight"])
        h = rms(x, t[p + "pre_feedforward_layernorm.weight"])
        f = (gelu_tanh(h @ t[p + "mlp.gate_proj.weight"].T) * (h @ t[p + "mlp.up_proj.weight"].T)) \
            @ t[p + "mlp.down_proj.weight"].T
        x = x + rms(f, t[p + "post_feedforward_layernorm.weight"])
    x = rms(x, t["model.norm.weight"])
    return (x @ t["model.embed_tokens.weight"].T).numpy()


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


def write_gguf(path: Path, m: dict, weights: dict[str, np.ndarray], fmt: str, name: str) -> None:
    """Write a gemma3 GGUF the way llama.cpp's converter would, with every 2-D tensor in `fmt`
    (quantized with gguf-py's numpy quantizers) and every norm (1 + w) in F32."""
    import gguf
    qname, ftname = QTYPES[fmt]
    qtype = gguf.GGMLQuantizationType[qname]
    arch = "gemma3"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type("model")
    w.add_name(name)
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
    w.add_file_type(int(gguf.LlamaFileType[ftname]))
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
    # --- vocabulary (LlamaModel._set_vocab_sentencepiece + Gemma3Model.set_vocab)
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
    # --- tensors
    for hf in hf_tensor_names(m["layers"]):
        data = weights[hf].astype(np.float32)
        gname = gguf_name(hf, m["layers"])
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


def check_pattern(m: dict) -> None:
    """The GGUF pattern we write must decode (llama.cpp's rules) to the HF layer_types."""
    L = m["layers"]
    pat = m["gguf_pattern"]
    if pat == "none":
        swa = [False] * L
    elif pat == "bool_array":
        swa = [lt == LOCAL for lt in m["layer_types"]]
    else:
        n = 6 if pat == "default" else int(pat)
        swa = [n == 0 or (l % n < n - 1) for l in range(L)]
    want = [lt == LOCAL for lt in m["layer_types"]]
    assert swa == want, f"GGUF pattern {pat} gives {swa}, HF layer_types give {want}"


def read_gguf_weights(path: Path, n_layers: int):
    """GGUF -> (HF-named float32 weights as stored in the file, {gguf name: type name}).

    Dequantizes with gguf.quants.dequantize and undoes the +1 on norm weights."""
    import gguf
    r = gguf.GGUFReader(str(path))
    by_gguf = {t.name: t for t in r.tensors}
    out, types = {}, {}
    for hf in hf_tensor_names(n_layers):
        t = by_gguf[gguf_name(hf, n_layers)]
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
    extra = set(by_gguf) - {gguf_name(h, n_layers) for h in hf_tensor_names(n_layers)}
    assert not extra, f"unexpected tensors {extra}"
    return out, types


# ---------------------------------------------------------------------------------------------
# reference outputs


def zstd_bytes(raw: bytes) -> bytes:
    return subprocess.run(["zstd", "-19", "-q", "-c", "--no-check"], input=raw, capture_output=True,
                          check=True).stdout


def write_ref(model_dir: Path, fmt: str, checkpoint: str, prompt: list[int], greedy: list[int],
              logits: np.ndarray, reference: str, notes: str, extra: dict | None = None) -> None:
    ref = model_dir / "ref"
    ref.mkdir(parents=True, exist_ok=True)
    logits = np.ascontiguousarray(logits, dtype="<f4")
    assert logits.shape == (len(prompt), logits.shape[1])
    raw = logits.tobytes()
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


def top2_margins(logits: np.ndarray) -> np.ndarray:
    s = np.sort(logits, axis=-1)
    return s[:, -1] - s[:, -2]


def env_threads() -> None:
    """Keep torch frugal (2-core machine)."""
    import torch
    n = int(os.environ.get("FIXTURES_THREADS", "2"))
    torch.set_num_threads(n)

#!/usr/bin/env python3
"""Run GGUF files through llama.cpp itself (its C API via ctypes) and compare with our references.

Usage (from the repository root):

    python3 tools/fixtures_llamacpp.py                 # check every tests/fixtures/models/*/ref/gguf_*.json
    python3 tools/fixtures_llamacpp.py gemma3_tiny     # one model

Environment:
    LLAMA_CPP_PY        directory holding the `llama_cpp` ctypes package (pure Python; default
                        /tmp/sdist/llama_cpp_python-0.3.36, the llama-cpp-python sdist; no pip build)
    LLAMA_CPP_LIB_PATH  directory with libllama.so (default /work/llamacpp/build/bin)
    FIXTURES_THREADS    threads (default 2)

For each GGUF reference it prints llama.cpp's logits error against the HF reference over all prompt
positions (max |diff|, that divided by max |logit|, top-1 agreement) and where llama.cpp's own greedy
continuation (KV cache, one token per decode) first differs from the reference greedy_ids.
Flash attention is off (docs/spec/architecture.md §12.1: its CPU path adds error).  This is a verification tool;
its output is not a fixture.  Also imported by tools/fixtures_real_model.py.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def load_llama_cpp():
    os.environ.setdefault("LLAMA_CPP_LIB_PATH", "/work/llamacpp/build/bin")
    pkg = os.environ.get("LLAMA_CPP_PY", "/tmp/sdist/llama_cpp_python-0.3.36")
    if pkg not in sys.path:
        sys.path.insert(0, pkg)
    if "diskcache" not in sys.modules:  # only needed by the high-level cache classes we do not use
        stub = types.ModuleType("diskcache")
        stub.Cache = object
        sys.modules["diskcache"] = stub
    import llama_cpp
    return llama_cpp


_LOG_CB = None


class LlamaRunner:
    """A llama.cpp model + context for one GGUF file; CPU only, flash attention off."""

    def __init__(self, path: str | Path, n_ctx: int = 512, threads: int | None = None, quiet: bool = True,
                 kv_f32: bool = False):
        global _LOG_CB
        lc = self.lc = load_llama_cpp()
        if quiet and _LOG_CB is None:
            _LOG_CB = lc.llama_log_callback(lambda level, text, user: None)
            lc.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = lc.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        cp = lc.llama_context_default_params()
        threads = threads or int(os.environ.get("FIXTURES_THREADS", "2"))
        cp.n_ctx = n_ctx
        cp.n_batch = n_ctx
        cp.n_ubatch = n_ctx
        cp.n_seq_max = 1
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.flash_attn_type = 0  # LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.no_perf = True
        if kv_f32:  # llama.cpp's default KV cache is F16 (type_k/type_v); GGML_TYPE_F32 = 0
            cp.type_k = 0
            cp.type_v = 0
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")
        self.n_ctx = n_ctx

    def close(self):
        lc = self.lc
        if self.ctx:
            lc.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            lc.llama_model_free(self.model)
            self.model = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _decode(self, ids: list[int], pos0: int, all_logits: bool) -> np.ndarray:
        lc = self.lc
        n = len(ids)
        batch = lc.llama_batch_init(n, 0, 1)
        try:
            batch.n_tokens = n
            for i, t in enumerate(ids):
                batch.token[i] = int(t)
                batch.pos[i] = pos0 + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1 if (all_logits or i == n - 1) else 0
            rc = lc.llama_decode(self.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
            rows = range(n) if all_logits else [n - 1]
            out = np.empty((len(rows), self.vocab), dtype=np.float32)
            for r, i in enumerate(rows):
                p = lc.llama_get_logits_ith(self.ctx, i)
                out[r] = np.ctypeslib.as_array(p, shape=(self.vocab,))
            return out
        finally:
            lc.llama_batch_free(batch)

    def run(self, prompt: list[int], n_new: int):
        """Prompt logits [len(prompt), V] (one batch, logits for every position) and a greedy
        continuation of n_new tokens (one decode per token, KV cache)."""
        assert len(prompt) + n_new <= self.n_ctx
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)
        logits = self._decode(prompt, 0, True)
        greedy = []
        nxt = int(np.argmax(logits[-1]))
        step_logits = [logits[-1]]
        for k in range(n_new):
            greedy.append(nxt)
            if k == n_new - 1:
                break
            row = self._decode([nxt], len(prompt) + k, False)[0]
            step_logits.append(row)
            nxt = int(np.argmax(row))
        return logits, greedy, np.stack(step_logits)


def read_logits(path: Path, shape) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = subprocess.run(["zstd", "-dc"], input=raw, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(shape)


def first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def check_model_dir(d: Path) -> list[dict]:
    results = []
    for jf in sorted((d / "ref").glob("gguf_*.json")):
        ref = json.loads(jf.read_text())
        want = read_logits(d / "ref" / ref["logits"], (len(ref["prompt_ids"]), ref["vocab"]))
        cfg = model_desc_from_gguf(d / ref["checkpoint"])
        if cfg["custom_qscale"]:
            # llama.cpp does not know our query_pre_attn_scalar key: its logits are those of another
            # model, so compare it with a float64 forward that uses llama.cpp's own query scale instead
            check_custom_qscale(d, jf, ref, want, cfg, results)
            continue
        with LlamaRunner(d / ref["checkpoint"]) as r:
            got, greedy, _ = r.run(ref["prompt_ids"], len(ref["greedy_ids"]))
        diff = np.abs(got - want)
        res = {
            "model": d.name, "fmt": jf.stem,
            "max_abs": float(diff.max()),
            "max_rel": float(diff.max() / np.abs(want).max()),
            "top1_agree": int((got.argmax(-1) == want.argmax(-1)).sum()),
            "positions": int(want.shape[0]),
            "greedy_first_diff": first_divergence(greedy, ref["greedy_ids"]),
        }
        results.append(res)
        print(f"{d.name:20s} {jf.stem:12s} max|diff| {res['max_abs']:.3e}  rel {res['max_rel']:.3e}  "
              f"top1 {res['top1_agree']}/{res['positions']}  greedy "
              + ("identical" if res["greedy_first_diff"] is None else f"differs from step {res['greedy_first_diff']}"),
              flush=True)
        if jf.stem == "gguf_f32":
            import fixtures_common as fc
            w, _ = fc.read_gguf_weights(d / ref["checkpoint"], cfg["layers"], cfg["gen"])
            emul = fc.spec_forward_f64(cfg, w, ref["prompt_ids"], cfg["hidden"] ** 0.5, gelu_fp16_table=True)
            with LlamaRunner(d / ref["checkpoint"], kv_f32=True) as r:
                got32, g32, _ = r.run(ref["prompt_ids"], len(ref["greedy_ids"]))
            res["kvf32_rel"] = float(np.abs(got32 - want).max() / np.abs(want).max())
            res["kvf32_vs_f64_fp16gelu_rel"] = float(np.abs(got32 - emul).max() / np.abs(emul).max())
            print(f"{'':20s} {'':12s} with an F32 KV cache: rel {res['kvf32_rel']:.3e}; against a float64 forward "
                  f"that uses llama.cpp's fp16 GELU table: rel {res['kvf32_vs_f64_fp16gelu_rel']:.3e}", flush=True)
        else:
            dq = dequant_check(d / ref["checkpoint"], ref, want)
            res.update(dq)
            print(f"{'':20s} {'':12s} llama.cpp's own dequantization (llama-quantize -> F32) vs gguf-py: "
                  f"max|diff| {dq['dequant_max_abs']:.1e}; that F32 file in llama.cpp (F32 KV cache): rel {dq['f32_rel']:.3e}, "
                  f"top1 {dq['f32_top1']}/{res['positions']}, greedy "
                  + ("identical" if dq["f32_greedy_first_diff"] is None else f"differs from step {dq['f32_greedy_first_diff']}"),
                  flush=True)
    return results


def check_custom_qscale(d: Path, jf: Path, ref: dict, want: np.ndarray, cfg: dict, results: list) -> None:
    import fixtures_common as fc
    path = d / ref["checkpoint"]
    w, _ = fc.read_gguf_weights(path, cfg["layers"], cfg["gen"])
    mine = dict(cfg, qscale=cfg["llamacpp_qscale"])
    es = cfg["hidden"] ** 0.5
    emul = fc.spec_forward_f64(mine, w, ref["prompt_ids"], es, gelu_fp16_table=True)
    exact = fc.spec_forward_f64(mine, w, ref["prompt_ids"], es)
    with LlamaRunner(path) as r:
        got, _, _ = r.run(ref["prompt_ids"], len(ref["greedy_ids"]))
    with LlamaRunner(path, kv_f32=True) as r:
        got32, _, _ = r.run(ref["prompt_ids"], len(ref["greedy_ids"]))
    res = {"model": d.name, "fmt": jf.stem, "custom_qscale": cfg["qscale"], "llamacpp_qscale": cfg["llamacpp_qscale"],
           "vs_reference_rel": float(np.abs(got - want).max() / np.abs(want).max()),
           "vs_f64_llamacpp_scale_rel": float(np.abs(got - exact).max() / np.abs(exact).max()),
           "top1_vs_f64_llamacpp_scale": int((got.argmax(-1) == exact.argmax(-1)).sum()),
           "kvf32_vs_f64_fp16gelu_rel": float(np.abs(got32 - emul).max() / np.abs(emul).max()),
           "positions": int(want.shape[0])}
    results.append(res)
    print(f"{d.name:20s} {jf.stem:12s} not comparable with the reference: the file says query_pre_attn_scalar "
          f"{cfg['qscale']:g}, llama.cpp uses {cfg['llamacpp_qscale']:g} (rel diff {res['vs_reference_rel']:.3g}). "
          f"Against a float64 forward with llama.cpp's scale: rel {res['vs_f64_llamacpp_scale_rel']:.3e}, top1 "
          f"{res['top1_vs_f64_llamacpp_scale']}/{res['positions']}; F32 KV cache vs the same forward with the fp16 GELU "
          f"table: rel {res['kvf32_vs_f64_fp16gelu_rel']:.3e}", flush=True)


def dequant_check(path: Path, ref: dict, want: np.ndarray) -> dict:
    """Let llama.cpp dequantize every tensor of `path` to F32 (llama-quantize --allow-requantize
    ... F32), compare its values with gguf-py's dequantization (what the reference used), and run
    llama.cpp on that F32 file: it then sees exactly the reference weights, so its remaining error
    is only its own arithmetic (no activation quantization in the mat-muls)."""
    import tempfile
    import gguf
    exe = os.environ.get("LLAMA_QUANTIZE", "/work/llamacpp/build/bin/llama-quantize")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "f32.gguf"
        subprocess.run([exe, "--allow-requantize", "--pure", str(path), str(out), "F32", "2"],
                       capture_output=True, check=True)
        a = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
        b = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}
        assert set(a) == set(b)
        mx = 0.0
        for n, t in a.items():
            x = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(-1)
            assert b[n].tensor_type == gguf.GGMLQuantizationType.F32, (n, b[n].tensor_type)
            y = np.asarray(b[n].data, dtype=np.float32).reshape(-1)
            mx = max(mx, float(np.abs(x - y).max()))
        with LlamaRunner(out, kv_f32=True) as r:
            got, greedy, _ = r.run(ref["prompt_ids"], len(ref["greedy_ids"]))
    return {"dequant_max_abs": mx,
            "f32_rel": float(np.abs(got - want).max() / np.abs(want).max()),
            "f32_top1": int((got.argmax(-1) == want.argmax(-1)).sum()),
            "f32_greedy_first_diff": first_divergence(greedy, ref["greedy_ids"])}


def model_desc_from_gguf(path: Path) -> dict:
    """The fixtures_common model description rebuilt from a gemma / gemma2 / gemma3 GGUF's metadata,
    with llama.cpp's defaults (docs/spec/architecture.md §12.1).  "qscale" is what the file says (our extra key
    {arch}.attention.query_pre_attn_scalar, else head_dim); "llamacpp_qscale" what llama.cpp uses."""
    import gguf
    r = gguf.GGUFReader(str(path))

    def get(k, default=None):
        f = r.fields.get(k)
        if f is None:
            return default
        v = f.contents()
        return v

    arch = get("general.architecture")
    if arch in ("gemma", "gemma2"):
        return _desc_gemma12(r, get, arch)
    L = int(get("gemma3.block_count"))
    n_swa = int(get("gemma3.attention.sliding_window", 0) or 0)
    pat = get("gemma3.attention.sliding_window_pattern", 6)
    if n_swa == 0:
        swa = [False] * L
    elif isinstance(pat, list):
        swa = [bool(x) for x in pat]
    else:
        n = int(pat)
        swa = [n == 0 or (l % n < n - 1) for l in range(L)]
    factor = None
    if get("gemma3.rope.scaling.type") == "linear":
        factor = float(get("gemma3.rope.scaling.factor"))
    return dict(
        hidden=int(get("gemma3.embedding_length")), ffn=int(get("gemma3.feed_forward_length")),
        layers=L, heads=int(get("gemma3.attention.head_count")),
        kv_heads=int(get("gemma3.attention.head_count_kv")), head_dim=int(get("gemma3.attention.key_length")),
        vocab=len(r.fields["tokenizer.ggml.tokens"].data), window=max(n_swa, 1),
        layer_types=["sliding_attention" if s else "full_attention" for s in swa],
        rope_global=float(get("gemma3.rope.freq_base", 10000.0)),
        rope_local=float(get("gemma3.rope.freq_base_swa", 10000.0)), rope_linear_factor=factor,
        max_pos=int(get("gemma3.context_length")), gguf_pattern="n/a", gen=3,
        qscale=None, llamacpp_qscale=None, custom_qscale=False,
    )


def _desc_gemma12(r, get, arch: str) -> dict:
    gen = 1 if arch == "gemma" else 2
    L = int(get(f"{arch}.block_count"))
    D, N = int(get(f"{arch}.embedding_length")), int(get(f"{arch}.attention.head_count"))
    H = int(get(f"{arch}.attention.key_length"))
    base = float(get(f"{arch}.rope.freq_base", 10000.0))
    d = dict(gen=gen, hidden=D, ffn=int(get(f"{arch}.feed_forward_length")), layers=L, heads=N,
             kv_heads=int(get(f"{arch}.attention.head_count_kv")), head_dim=H,
             vocab=len(r.fields["tokenizer.ggml.tokens"].data), rope_global=base,
             rope_local=float(get(f"{arch}.rope.freq_base_swa", base)), rope_linear_factor=None,
             max_pos=int(get(f"{arch}.context_length")), gguf_pattern="n/a")
    if gen == 1:
        d.update(window=None, layer_types=["full_attention"] * L, qscale=H, llamacpp_qscale=H, custom_qscale=False)
        return d
    pat = get("gemma2.attention.sliding_window_pattern", 2)
    swa = [bool(x) for x in pat] if isinstance(pat, list) else [l % int(pat) < int(pat) - 1 for l in range(L)]
    qs = get("gemma2.attention.query_pre_attn_scalar")
    lqs = D // N if L == 46 else H  # llama_model_gemma2::load_arch_hparams
    d.update(window=int(get("gemma2.attention.sliding_window", 4096)),
             layer_types=["sliding_attention" if s else "full_attention" for s in swa],
             attn_softcap=float(get("gemma2.attn_logit_softcapping", 50.0)),
             final_softcap=float(get("gemma2.final_logit_softcapping", 30.0)),
             qscale=float(qs) if qs is not None else float(lqs), llamacpp_qscale=float(lqs),
             custom_qscale=qs is not None and float(qs) != float(lqs))
    return d


def main() -> None:
    root = HERE.parent / "tests" / "fixtures" / "models"
    names = sys.argv[1:] or sorted(p.name for p in root.iterdir() if (p / "ref").is_dir())
    for n in names:
        check_model_dir(root / n)


if __name__ == "__main__":
    main()

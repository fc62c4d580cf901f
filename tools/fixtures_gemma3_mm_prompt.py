#!/usr/bin/env python3
"""End-to-end references for prompts holding images on the tiny multimodal Gemma 3
(tests/fixtures/models/gemma3_mm_tiny, written by tools/fixtures_gemma3_mm.py), for
tests/runtime/multimodal_parity_test.cpp.

Usage (from the repository root; CPU only, a few seconds):

    python3 tools/fixtures_gemma3_mm_prompt.py

Needs: torch, transformers (5.x), pillow, numpy, the `zstd` CLI.  Deterministic.  Rerun it after
tools/fixtures_gemma3_mm.py rewrites the model: the references are of the weights in new/.

The tiny model has no tokenizer of its own: it is used with the 288-piece vocabulary of the tiny GGUF
fixtures (tests/fixtures/models/gemma3_tiny/model.f32.gguf), where text becomes byte tokens (4 +
byte; a space is SentencePiece's U+2581) and <start_of_image>, <end_of_image>, <image_soft_token>
are the config's boi_token_index 286, eoi_token_index 287, image_token_index 288.  The ids are
built here as Gemma3Processor builds them (each marker replaced by its image sequence, with
pan-and-scan's text around crops, before tokenizing; the image tokens are special tokens that split
the text); the processor itself is checked on the real tokenizer by tools/fixtures_image_prompt.py.
The pixel values are HF's Gemma3ImageProcessorPil (16 px, mean = std = 0.5, PIL bilinear).

Reference: HF Gemma3ForConditionalGeneration from new/ (float32, eager attention), one forward of
the whole prompt with pixel_values and token_type_ids (1 at the soft tokens: HF's mask makes each
image's soft tokens see each other, causal elsewhere, and on the sliding layer
AND(window, OR(causal, same image))): logits at every prompt position over all 352 rows; then
greedy 8 tokens (full forward each step).

Writes tests/fixtures/models/gemma3_mm_tiny/prompt/<case>.json and <case>.logits.f32.zst:
    {text, images, pan_and_scan, num_crops, input_ids, token_type_ids, greedy_ids, logits,
     logits_shape, checks {min top-2 margins, logit absmax, window vs prompt length}, versions}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_common as fc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "models" / "gemma3_mm_tiny"
IMAGES = ROOT / "tests" / "fixtures" / "images" / "pre"
OUT = MODEL / "prompt"
N_NEW = 8
BOI, EOI, SOFT, BOS = 286, 287, 288, 2
TOKENS = 4
PAS = {"pan_and_scan_min_crop_size": 256, "pan_and_scan_max_num_crops": 4,
       "pan_and_scan_min_ratio_to_activate": 1.2}

CASES = [
    # Two images and text, longer than the sliding window (16), so the window cuts in.
    dict(name="two_images", text=" a b<start_of_image> c d e f<start_of_image>\n g h i j k l",
         images=["up_40x30.png", "down_200x120.png"], pas=None),
    # Pan-and-scan on a wide image: 3 crops, HF's "Here is the original image ..." text.
    dict(name="pan_and_scan_wide", text="<start_of_image> x y", images=["pas_default_800x300.png"], pas=PAS),
]


def byte_ids(text: str) -> list[int]:
    """The tiny GGUF vocabulary's tokenization of plain text: every byte its byte token (its
    pieces are "\u2581a"... with no "\u2581" alone, so no merge ever applies)."""
    return [4 + b for b in text.replace(" ", "\u2581").encode("utf-8")]


def image_sequence() -> str:
    return "\n\n<start_of_image>" + "<image_soft_token>" * TOKENS + "<end_of_image>\n\n"


def expand(text: str, crops: list[int]) -> str:
    """Gemma3Processor: each marker replaced by replace_image_token's text, in order."""
    parts = text.split("<start_of_image>")
    assert len(parts) == len(crops) + 1
    out = parts[0]
    for n, rest in zip(crops, parts[1:]):
        seq = image_sequence()
        if n:
            seq = (f"Here is the original image {seq} and here are some crops to help you see better "
                   + " ".join([seq] * n))
        out += seq + rest
    return out


def tokenize(expanded: str) -> list[int]:
    ids = [BOS]
    specials = {"<start_of_image>": BOI, "<end_of_image>": EOI, "<image_soft_token>": SOFT}
    i, seg = 0, 0
    while i < len(expanded):
        hit = next((s for s in specials if expanded.startswith(s, i)), None)
        if hit is None:
            i += 1
            continue
        ids += byte_ids(expanded[seg:i]) + [specials[hit]]
        i += len(hit)
        seg = i
    return ids + byte_ids(expanded[seg:])


def main() -> None:
    import argparse

    import torch
    from PIL import Image
    from transformers import Gemma3ForConditionalGeneration
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    fc.env_threads()
    cfg = json.loads((MODEL / "new" / "config.json").read_text())
    assert (cfg["boi_token_index"], cfg["eoi_token_index"], cfg["image_token_index"]) == (BOI, EOI, SOFT)
    assert cfg["mm_tokens_per_image"] == TOKENS
    size = cfg["vision_config"]["image_size"]
    model = Gemma3ForConditionalGeneration.from_pretrained(str(MODEL / "new"), dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    OUT.mkdir(parents=True, exist_ok=True)
    for c in CASES:
        imgs = [Image.open(IMAGES / f).convert("RGB") for f in c["images"]]
        proc = Gemma3ImageProcessorPil(size={"height": size, "width": size}, image_mean=[0.5] * 3,
                                       image_std=[0.5] * 3, do_pan_and_scan=c["pas"] is not None, **(c["pas"] or {}))
        pre = proc(imgs, return_tensors="pt")
        crops = [int(x) for x in pre["num_crops"]]
        pixel_values = pre["pixel_values"].to(torch.float32)
        assert pixel_values.shape[0] == len(imgs) + sum(crops)
        ids = tokenize(expand(c["text"], crops))
        tt = [int(x == SOFT) for x in ids]
        assert sum(tt) == TOKENS * (len(imgs) + sum(crops))
        with torch.no_grad():
            def forward(seq: list[int]) -> np.ndarray:
                t = torch.tensor([seq])
                out = model(input_ids=t, pixel_values=pixel_values, token_type_ids=torch.tensor([[int(x == SOFT)
                                                                                                  for x in seq]]),
                            attention_mask=torch.ones_like(t))
                return out.logits[0].float().numpy()

            logits = forward(ids)
            seq, greedy, margins = list(ids), [], []
            for _ in range(N_NEW):
                last = forward(seq)[-1] if greedy else logits[-1]
                top = np.sort(last)[-2:]
                margins.append(float(top[1] - top[0]))
                nxt = int(last.argmax())
                greedy.append(nxt)
                seq.append(nxt)
        assert max(greedy) < 288, f"greedy picked a padding row: {greedy}"
        logits = np.ascontiguousarray(logits, dtype="<f4")
        lname = f"{c['name']}.logits.f32.zst"
        (OUT / lname).write_bytes(fc.zstd_bytes(logits.tobytes()))
        obj = {"text": c["text"], "images": [f"images/pre/{f}" for f in c["images"]],
               "pan_and_scan": ({"min_crop_size": PAS["pan_and_scan_min_crop_size"],
                                 "max_crops": PAS["pan_and_scan_max_num_crops"],
                                 "min_ratio": PAS["pan_and_scan_min_ratio_to_activate"]} if c["pas"] else None),
               "num_crops": crops, "input_ids": ids, "token_type_ids": tt, "greedy_ids": greedy,
               "logits": lname, "logits_shape": list(logits.shape),
               "checks": {"min_top2_margin_prompt": float(fc.top2_margins(logits).min()),
                          "min_top2_margin_greedy": float(min(margins)),
                          "logit_absmax": float(np.abs(logits).max()),
                          "prompt_length": len(ids), "sliding_window": cfg["text_config"]["sliding_window"]},
               "reference": "HF Gemma3ForConditionalGeneration (float32, eager) from new/, input_ids + pixel_values "
                            "(Gemma3ImageProcessorPil) + token_type_ids",
               "versions": fc.versions()}
        (OUT / f"{c['name']}.json").write_text(json.dumps(obj, indent=1) + "\n")
        print(f"{c['name']}: {len(ids)} ids, crops {crops}, greedy {greedy}, "
              f"min margin {obj['checks']['min_top2_margin_greedy']:.3g}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Token ids of prompts holding images, as HF's Gemma3Processor builds them, for tests/runtime
(src/runtime/multimodal.h: the engine's image prompt layout).

Usage (from the repository root; CPU only, a few seconds, no torch model):

    python3 tools/fixtures_image_prompt.py

Needs: transformers (5.x), pillow, the `zstd` CLI.  Deterministic.

The processor is HF's own Gemma3Processor over the real Gemma 3 tokenizer of tests/fixtures/tokenizer
(tokenizer.json + tokenizer_config.json, whose chat template is Gemma 3's) and the PIL-backed
Gemma3ImageProcessorPil, with image_seq_length (mm_tokens_per_image) 4 (the tiny test tower) or 256
(the released models).  Images are tests/fixtures/images/pre/*.png.  For each case it records
input_ids and token_type_ids (1 at the image soft tokens) as HF returns them: raw prompts through
processor(text=, images=) (the tokenizer adds <bos>), chat prompts through
processor.apply_chat_template(messages, tokenize=True) (image parts first, as a user would build
them), pan-and-scan through do_pan_and_scan with HF's default crop parameters.

Writes tests/fixtures/images/prompt_ids.json:
    [{name, text (raw prompt, markers in place) | messages (chat), images, tokens_per_image,
      pan_and_scan {...} | null, num_crops [...], input_ids, token_type_ids}]
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from PIL import Image
from transformers import GemmaTokenizerFast
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
from transformers.models.gemma3.processing_gemma3 import Gemma3Processor

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = FIX / "images" / "prompt_ids.json"

PAS = {"pan_and_scan_min_crop_size": 256, "pan_and_scan_max_num_crops": 4,
       "pan_and_scan_min_ratio_to_activate": 1.2}

CASES = [
    # Raw prompts: markers where the user put them; newlines next to a marker merge with the
    # processor's "\n\n" into one token (here "\n" + "\n\n" -> "\n\n\n").
    dict(name="raw_two_images_newlines", text="Compare\n<start_of_image> and<start_of_image>\nwhich is brighter?",
         images=["up_40x30.png", "down_200x120.png"], tokens=4),
    dict(name="raw_marker_only", text="<start_of_image>", images=["mixed_97x13.png"], tokens=4),
    dict(name="raw_256_tokens", text="Describe this image.<start_of_image>", images=["up_150x100.png"], tokens=256),
    # Chat: the official template renders image parts as the marker, text parts trimmed.
    dict(name="chat_two_images_first", messages=[{"role": "user", "content": [
        {"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare these"}]}],
         images=["up_40x30.png", "down_200x120.png"], tokens=4),
    dict(name="chat_system_image", messages=[
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What is this?\n"}]}],
         images=["up_40x30.png"], tokens=4),
    # Pan-and-scan: a wide image gets crops and HF's "Here is the original image ..." text.
    dict(name="pas_wide_raw", text="<start_of_image>What is in the picture?", images=["pas_default_800x300.png"],
         tokens=4, pas=PAS),
    dict(name="pas_chat_two", messages=[{"role": "user", "content": [
        {"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare these"}]}],
         images=["pas_default_800x300.png", "up_40x30.png"], tokens=4, pas=PAS),
]


def tokenizer(tmp: Path) -> GemmaTokenizerFast:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        subprocess.run(["zstd", "-q", "-d", "-f", str(FIX / "tokenizer" / f"{name}.zst"), "-o", str(tmp / name)],
                       check=True)
    return GemmaTokenizerFast.from_pretrained(str(tmp))


def processor(tok, tokens: int, pas: dict | None) -> Gemma3Processor:
    ip = Gemma3ImageProcessorPil(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                 do_pan_and_scan=pas is not None, **(pas or {}))
    return Gemma3Processor(image_processor=ip, tokenizer=tok, chat_template=tok.chat_template,
                           image_seq_length=tokens)


def main() -> None:
    import argparse
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    out = []
    with tempfile.TemporaryDirectory() as t:
        tok = tokenizer(Path(t))
        for c in CASES:
            proc = processor(tok, c["tokens"], c.get("pas"))
            # The processor's own defaults (do_pan_and_scan False) override the image processor's:
            # pan-and-scan is asked for in the call, as a user does.
            call_kwargs = dict(do_pan_and_scan=True, **c["pas"]) if c.get("pas") else {}
            imgs = [Image.open(FIX / "images" / "pre" / f).convert("RGB") for f in c["images"]]
            if "messages" in c:
                msgs = [dict(m) for m in c["messages"]]
                # apply_chat_template takes the images from the message parts, in order.
                k = 0
                for m in msgs:
                    parts = []
                    for p in m["content"]:
                        if p["type"] == "image":
                            p = {"type": "image", "image": imgs[k]}
                            k += 1
                        parts.append(p)
                    m["content"] = parts
                enc = proc.apply_chat_template(msgs, tokenize=True, return_dict=True, add_generation_prompt=True,
                                               **call_kwargs)  # (warns, but applies them)
                text_field = {"messages": c["messages"]}
            else:
                enc = proc(text=c["text"], images=imgs, **call_kwargs)
                text_field = {"text": c["text"]}
            ids = [int(x) for x in list(enc["input_ids"][0])]
            tt = [int(x) for x in list(enc["token_type_ids"][0])]
            # The processor keeps num_crops to itself: ask its image processor, as it does.
            crops = ([int(x) for x in proc.image_processor(imgs, **call_kwargs)["num_crops"]] if c.get("pas")
                     else [0] * len(imgs))
            soft = tok.convert_tokens_to_ids("<image_soft_token>")
            assert sum(x == soft for x in ids) == c["tokens"] * (len(imgs) + sum(crops)), c["name"]
            out.append({"name": c["name"], **text_field, "images": [f"images/pre/{f}" for f in c["images"]],
                        "tokens_per_image": c["tokens"],
                        "pan_and_scan": ({"min_crop_size": PAS["pan_and_scan_min_crop_size"],
                                          "max_crops": PAS["pan_and_scan_max_num_crops"],
                                          "min_ratio": PAS["pan_and_scan_min_ratio_to_activate"]}
                                         if c.get("pas") else None),
                        "num_crops": crops, "input_ids": ids, "token_type_ids": tt})
            print(f"{c['name']}: {len(ids)} ids, crops {crops}")
    OUT.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

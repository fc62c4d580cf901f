#!/usr/bin/env python3
"""Random-weight Gemma 3 vision tower of the real shape, as an mmproj GGUF, for tools/bench_vision.py.

Usage (from the repository root; a few minutes and ~2.5 GB of temporary disk on 2 cores):

    python3 tools/make_vision_bench_model.py [--out ~/.cache/gemma-engine/vision-bench] [--outtype f16]

Needs: torch, transformers (5.x), safetensors, llama.cpp's sources (tools/build_llamacpp.sh puts them
at ~/.cache/gemma-engine/llama.cpp/src; $LLAMA_CPP overrides).

Builds a transformers Gemma3ForConditionalGeneration whose vision_config is Gemma 3 4B's (SigLIP,
896 px, patch 14 -> 4096 patches, 27 layers, 1152 wide, 16 heads of 72, ffn 4304, 256 tokens per
image) with transformers' own random initialisation, and a one-layer text model of Gemma 3 270M's
width (640), so the projector maps 1152 -> 640 and llama-mtmd-cli can pair the mmproj with the
real 270M GGUF as its text model (it checks the widths agree). Only the tower and projector are
saved (the hub spelling vision_tower.vision_model.* / multi_modal_projector.*, which is what
llama.cpp's converter keeps), plus config.json and a preprocessor_config.json (image_seq_length
256), then converted with `convert_hf_to_gguf.py --mmproj --outtype f16` (its default type for
mmproj files) to OUT/mmproj-<outtype>.gguf.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache/gemma-engine/vision-bench")
    ap.add_argument("--outtype", default="f16", choices=["f16", "f32", "bf16"])
    args = ap.parse_args()
    import torch
    from safetensors.torch import save_file
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor

    torch.manual_seed(0)
    cfg = Gemma3Config(
        text_config=dict(hidden_size=640, intermediate_size=2048, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=1, head_dim=256, vocab_size=262208, sliding_window=512),
        vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                           image_size=896, patch_size=14, layer_norm_eps=1e-6, vision_use_head=False),
        mm_tokens_per_image=256)
    with torch.no_grad():
        model = Gemma3ForConditionalGeneration(cfg).to(torch.bfloat16).eval()
    state = {}
    for k, v in model.state_dict().items():
        # transformers 5's module tree has no vision_model level (model.vision_tower.encoder...);
        # the hub files (and the converter) spell it vision_tower.vision_model.*.
        if k.startswith("model.vision_tower."):
            rest = k[len("model.vision_tower."):]
            rest = rest[len("vision_model."):] if rest.startswith("vision_model.") else rest
            state["vision_tower.vision_model." + rest] = v.contiguous()
        elif k.startswith("model.multi_modal_projector."):
            state["multi_modal_projector." + k[len("model.multi_modal_projector."):]] = v.contiguous()
    root = Path(os.environ.get("LLAMA_CPP", Path.home() / ".cache/gemma-engine/llama.cpp/src"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        save_file(state, str(src / "model.safetensors"), metadata={"format": "pt"})
        cfg.architectures = ["Gemma3ForConditionalGeneration"]  # what the converter dispatches on
        cfg.save_pretrained(str(src))
        Gemma3ImageProcessor(size={"height": 896, "width": 896}, image_seq_length=256).save_pretrained(str(src))
        env = dict(os.environ, PYTHONPATH=str(root / "gguf-py"))
        out = args.out / f"mmproj-{args.outtype}.gguf"
        subprocess.run([sys.executable, str(root / "convert_hf_to_gguf.py"), str(src), "--mmproj", "--outtype",
                        args.outtype, "--outfile", str(out)], check=True, env=env, stdout=subprocess.DEVNULL)
    print(out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tiny random-weight multimodal Gemma 3 (Gemma3ForConditionalGeneration) for the C++ parity tests.

Usage (from the repository root; CPU only, about a minute on 2 cores):

    python3 tools/fixtures_gemma3_mm.py

Needs: torch, transformers (5.x), numpy, safetensors, the `zstd` CLI.  Deterministic.

Writes tests/fixtures/models/gemma3_mm_tiny/:
    new/config.json, new/model.safetensors   tensor names model.language_model.*,
                                              model.vision_tower.vision_model.*,
                                              model.multi_modal_projector.*
    old/config.json, old/model.safetensors   the original hub layout: language_model.model.*,
                                              vision_tower.vision_model.*, multi_modal_projector.*
    ref/safetensors_f32_new.json, ref/safetensors_f32_old.json  (same prompt, same reference; both
        point at ref/safetensors_f32_new.logits.f32.zst)

Both files hold exactly the same float32 tensors; config.json (identical in both) is what
transformers writes for Gemma3ForConditionalGeneration: model_type "gemma3", "text_config"
(model_type "gemma3_text"), "vision_config" (siglip_vision_model), image/boi/eoi token ids.  Neither
has lm_head.weight (tied).  The key spellings are those of docs/spec/formats.md §3.2.  (transformers 5.23's own
save_pretrained writes neither exactly: it converts back to language_model.model.* and
multi_modal_projector.* but writes vision_tower.* without the vision_model. level; we write the
files ourselves with safetensors.)  Both spellings load in transformers 5 (checked: no missing or
unexpected keys, identical parameters).

Text model (the style of gemma3_tiny): hidden 32, 4 q heads x head_dim 32 (q width 128), 2 kv heads,
ffn 64, layers [local, global], window 16, RoPE 1e4 local / 1e6 global with linear x8 on the global
layer (as Gemma 3 4B+), query_pre_attn_scalar 32 (= head_dim).  Vocabulary: the tokenizer size is
288 (the tiny vocabulary of the GGUF fixtures) and, as the HF converter does for the vision models
(docs/spec/architecture.md §1.5), the embedding has 64 more rows: vocab_size 352, image_token_index 288 (the
first extra row; HF's <image_soft_token> = 262144 for the real models).  The extra rows are drawn
like transformers' resize_token_embeddings(mean_resizing=True): from a normal distribution with the
mean of the real rows and 1e-9 times their covariance, i.e. essentially the mean embedding.
Vision tower: SigLIP, hidden 32, intermediate 64, 2 layers, 2 heads, image 16, patch 4 (16 patches),
mm_tokens_per_image 4 (2x2 average pooling), weights random; the engine ignores them for now.

Vision references (vision/features.json, vision/{a,b}.png, mmproj/mmproj.gguf): two small
deterministic PNGs (24x10 RGB and 7x13 RGBA, i.e. down- and upscaled, the second with alpha) preprocessed
by HF's Gemma3ImageProcessor (PIL backend, size 16x16: what the tower sees) from PIL-opened, RGB-converted
images; their pixel_values and the projected image features of model.get_image_features (pooler_output,
float32, eager attention) [4, 32] each, and the same with the projection rounded to f16 (what the
mmproj holds: the converter forces mm.input_projection to F16) and with every tower and projector
weight rounded to bf16 (the test writes such a checkpoint, sharded); plus the per-stage absolute maxima (the scale the tolerances are
relative to).  mmproj/mmproj.gguf is llama.cpp's own `convert_hf_to_gguf.py --mmproj --outtype f32` of
old/ (its filter keeps only the hub spelling vision_tower.* / multi_modal_projector.*; new/ converts to no tensors) (with a preprocessor_config.json saying image_seq_length 4, as the converter reads the pooling from
it), found at $LLAMA_CPP or ~/.cache/gemma-engine/llama.cpp/src (its gguf-py on PYTHONPATH).

Reference: HF transformers Gemma3ForConditionalGeneration (float32, eager attention), loaded with
from_pretrained from new/ (and from old/: bit-identical logits), text-only forward (input_ids, no
pixel values): logits over all 352 rows, including the 64 padding rows, at the 64 prompt positions
(prompt: BOS then ids in [4, 288)), greedy 32 tokens over all rows (the seed was chosen so that no
greedy token is a padding row).  Cross-checked against Gemma3ForCausalLM on the text weights and the
float64 spec forward of fixtures_common.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_common as fc  # noqa: E402

NAME = "gemma3_mm_tiny"
TEXT_VOCAB = 288
EXTRA_ROWS = 64
M = dict(seed=3401, hidden=32, heads=4, kv_heads=2, head_dim=32, ffn=64, layers=2,
         vocab=TEXT_VOCAB + EXTRA_ROWS, prompt_vocab=TEXT_VOCAB,
         window=16, layer_types=[fc.LOCAL, fc.GLOBAL], gguf_pattern="2",
         rope_local=10000.0, rope_global=1000000.0, rope_linear_factor=8.0, max_pos=512)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
              image_size=16, patch_size=4, layer_norm_eps=1e-6, vision_use_head=False)
MM = dict(mm_tokens_per_image=4, boi_token_index=286, eoi_token_index=287, image_token_index=TEXT_VOCAB)


def text_weights(seed: int) -> dict[str, np.ndarray]:
    """Gemma3ForCausalLM-named text weights; embedding [TEXT_VOCAB + 64, D]."""
    w = fc.random_weights(dict(M, vocab=TEXT_VOCAB), seed)
    e = w["model.embed_tokens.weight"].astype(np.float64)
    mean = e.mean(0)
    c = e - mean
    cov = c.T @ c / e.shape[0]
    rng = np.random.default_rng(seed + 7)
    extra = rng.multivariate_normal(mean, 1e-9 * cov, size=EXTRA_ROWS)
    w["model.embed_tokens.weight"] = np.concatenate([w["model.embed_tokens.weight"],
                                                     extra.astype(np.float32)], axis=0)
    return w


def hf_mm_config():
    from transformers import Gemma3Config, SiglipVisionConfig
    tc = fc.hf_config(M)
    cfg = Gemma3Config(text_config=tc.to_dict(), vision_config=SiglipVisionConfig(**VISION).to_dict(), **MM)
    return cfg


def build_state(seed: int) -> dict[str, np.ndarray]:
    """The full state dict under transformers 5 module names (model.language_model.*,
    model.vision_tower.*, model.multi_modal_projector.*), lm_head excluded."""
    import torch
    from transformers import Gemma3ForConditionalGeneration
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(hf_mm_config()).float().eval()
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    tw = text_weights(seed)
    rng = np.random.default_rng(seed + 11)
    out = {}
    for k, v in sd.items():
        if k.startswith("model.language_model."):
            src = "model." + k[len("model.language_model."):]
            out[k] = tw.pop(src)
            assert out[k].shape == v.shape, (k, out[k].shape, v.shape)
        else:  # vision tower and projector: random, non-trivial
            x = rng.standard_normal(v.shape).astype(np.float32) * np.float32(0.05)
            if k.endswith(("layer_norm1.weight", "layer_norm2.weight", "post_layernorm.weight")):
                x += np.float32(1.0)
            out[k] = x
    assert not tw, f"unused text weights {sorted(tw)}"
    return out


def spelled(state: dict[str, np.ndarray], layout: str) -> dict[str, np.ndarray]:
    out = {}
    for k, v in state.items():
        if k.startswith("model.language_model."):
            rest = k[len("model.language_model."):]
            n = ("model.language_model." if layout == "new" else "language_model.model.") + rest
        elif k.startswith("model.vision_tower."):
            rest = k[len("model.vision_tower."):]
            n = ("model." if layout == "new" else "") + "vision_tower.vision_model." + rest
        elif k.startswith("model.multi_modal_projector."):
            rest = k[len("model.multi_modal_projector."):]
            n = ("model." if layout == "new" else "") + "multi_modal_projector." + rest
        else:
            raise KeyError(k)
        out[n] = np.ascontiguousarray(v)
    return out


def save(state: dict[str, np.ndarray], out: Path, layout: str) -> None:
    from safetensors.numpy import save_file
    out.mkdir(parents=True, exist_ok=True)
    cfg = hf_mm_config()
    cfg.architectures = ["Gemma3ForConditionalGeneration"]
    cfg.dtype = "float32"
    cfg.text_config.use_cache = True
    cfg.save_pretrained(str(out))
    save_file(spelled(state, layout), str(out / "model.safetensors"), metadata={"format": "pt"})


def load_hf(path: Path, state: dict[str, np.ndarray]):
    """from_pretrained, and check that every parameter is exactly what we wrote."""
    import torch
    from transformers import Gemma3ForConditionalGeneration
    model, info = Gemma3ForConditionalGeneration.from_pretrained(
        str(path), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, f"{path}: {bad}"
    sd = model.state_dict()
    for k, v in state.items():
        assert np.array_equal(sd[k].numpy(), v), f"{path}: {k} differs after loading"
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    assert model.config.text_config.query_pre_attn_scalar == M["head_dim"]
    return model


def vision_refs(d: Path, model) -> None:
    """vision/features.json: pixel tensors and projected features of two test images, from HF."""
    import json
    import torch
    from PIL import Image
    from transformers import Gemma3ImageProcessor
    rng = np.random.default_rng(77)
    ref = d / "vision"  # not ref/: every ref/*.json there is a text parity case
    ref.mkdir(exist_ok=True)
    imgs = {"a.png": rng.integers(0, 256, (10, 24, 3), dtype=np.uint8),
            "b.png": rng.integers(0, 256, (13, 7, 4), dtype=np.uint8)}
    proc = Gemma3ImageProcessor(size={"height": VISION["image_size"], "width": VISION["image_size"]})
    out = {"image_size": VISION["image_size"], "tokens_per_image": MM["mm_tokens_per_image"],
           "text_hidden": M["hidden"], "images": []}
    for name, arr in imgs.items():
        Image.fromarray(arr).save(ref / name)
        im = Image.open(ref / name).convert("RGB")
        pv = proc(images=im, return_tensors="pt")["pixel_values"].float()
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        with torch.no_grad():
            vo = model.model.vision_tower(pixel_values=pv).last_hidden_state
            feats = model.get_image_features(pv).pooler_output
            # llama.cpp's converter stores the projection as F16 whatever --outtype says: the
            # reference for the mmproj is HF with that rounding applied to the projection.
            saved = proj.data.clone()
            proj.data = proj.data.half().float()
            feats16 = model.get_image_features(pv).pooler_output
            proj.data = saved
            # A bf16 copy of the tower (the test writes one, sharded): HF computing in float32 on
            # the tower and projector weights rounded to bf16 (round to nearest even, as torch).
            tower = [p for n, p in model.named_parameters() if "vision_tower" in n or "multi_modal_projector" in n]
            saved_all = [p.data.clone() for p in tower]
            for p in tower:
                p.data = p.data.to(torch.bfloat16).float()
            feats_bf16 = model.get_image_features(pv).pooler_output
            for p, sv in zip(tower, saved_all):
                p.data = sv
        assert tuple(feats.shape) == (1, MM["mm_tokens_per_image"], M["hidden"]), feats.shape
        out["images"].append({
            "file": name,
            "pixel_values": [float(x) for x in pv[0].numpy().reshape(-1)],
            "features": [float(x) for x in feats[0].numpy().reshape(-1)],
            "features_f16_projection": [float(x) for x in feats16[0].numpy().reshape(-1)],
            "features_bf16_weights": [float(x) for x in feats_bf16[0].numpy().reshape(-1)],
            "tower_output_absmax": float(vo.abs().max()),
            "features_absmax": float(feats.abs().max())})
    (ref / "features.json").write_text(json.dumps(out) + "\n")


def convert_mmproj(d: Path) -> None:
    """mmproj/mmproj.gguf with llama.cpp's converter, from a copy of new/ with a preprocessor config."""
    import os
    import shutil
    import subprocess
    import tempfile
    from transformers import Gemma3ImageProcessor
    root = Path(os.environ.get("LLAMA_CPP", Path.home() / ".cache/gemma-engine/llama.cpp/src"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model"
        shutil.copytree(d / "old", src)  # the converter filters on the hub spelling (vision_tower.*)
        proc = Gemma3ImageProcessor(size={"height": VISION["image_size"], "width": VISION["image_size"]},
                                    image_seq_length=MM["mm_tokens_per_image"])
        proc.save_pretrained(str(src))
        (d / "mmproj").mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(root / "gguf-py"))
        subprocess.run([sys.executable, str(root / "convert_hf_to_gguf.py"), str(src), "--mmproj", "--outtype",
                        "f32", "--outfile", str(d / "mmproj" / "mmproj.gguf")], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def main() -> None:
    import argparse
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    fc.env_threads()
    d = fc.fresh_dir(NAME)
    state = build_state(M["seed"])
    save(state, d / "new", "new")
    save(state, d / "old", "old")
    prompt = fc.make_prompt(M)
    sqrt_d = float(M["hidden"]) ** 0.5

    # reference: the multimodal model, text-only
    mm_new = load_hf(d / "new", state)
    logits = fc.hf_logits(mm_new, prompt)
    greedy, gmargins = fc.hf_greedy(mm_new, prompt, fc.N_NEW)
    assert max(greedy) < TEXT_VOCAB, f"greedy picked a padding row: {greedy}"
    vision_refs(d, mm_new)
    convert_mmproj(d)
    mm_old = load_hf(d / "old", state)
    assert np.array_equal(fc.hf_logits(mm_old, prompt), logits), "old/ and new/ give different logits"

    # cross-checks: Gemma3ForCausalLM on the text weights (+ float64 spec forward, ablations)
    tw = {"model." + k[len("model.language_model."):]: v for k, v in state.items()
          if k.startswith("model.language_model.")}
    lg_causal, greedy_causal, info = fc.run_reference(M, tw, prompt, sqrt_d, True)
    causal_rel = float(np.abs(lg_causal - logits).max() / np.abs(logits).max())
    assert greedy_causal == greedy and causal_rel < 1e-6, (causal_rel, greedy_causal, greedy)
    info = {"min_top2_margin_prompt": float(fc.top2_margins(logits).min()),
            "min_top2_margin_greedy": float(min(gmargins)),
            "logit_absmax": float(np.abs(logits).max()),
            "f64_spec_forward_max_rel_err": info["f64_spec_forward_max_rel_err"],
            "f64_argmax_agree": info["f64_argmax_agree"],
            "gemma3_for_causal_lm_max_rel_diff": causal_rel,
            "padding_rows_top1_prompt_positions": int((logits.argmax(-1) >= TEXT_VOCAB).sum()),
            "padding_rows_max_logit": float(logits[:, TEXT_VOCAB:].max()),
            "real_rows_max_logit": float(logits[:, :TEXT_VOCAB].max())}
    v = fc.versions()
    desc = (f"Gemma3ForConditionalGeneration: text hidden {M['hidden']}, {M['heads']} q heads x head_dim "
            f"{M['head_dim']}, {M['kv_heads']} kv heads, ffn {M['ffn']}, layers [local, global], window "
            f"{M['window']}, rope 1e4 local / 1e6 global with linear x8 on the global layer, "
            f"query_pre_attn_scalar {M['head_dim']}; vocab_size {M['vocab']} = tokenizer {TEXT_VOCAB} + "
            f"{EXTRA_ROWS} padding rows (image_token_index {TEXT_VOCAB}); SigLIP vision tower hidden 32, 2 "
            "layers, image 16, patch 4, mm_tokens_per_image 4 (random, unused by a text forward)")
    what = ("text-only forward (input_ids, no pixel values) of the weights in {ck} (float32) as loaded by "
            f"from_pretrained; logits over all {M['vocab']} rows incl. the {EXTRA_ROWS} padding rows; embedding "
            f"scale exact sqrt({M['hidden']}) = {sqrt_d!r}")
    lname = None
    for layout in ("new", "old"):
        ck = f"{layout}/model.safetensors"
        spelling = ("model.language_model.*, model.vision_tower.vision_model.*, model.multi_modal_projector.*"
                    if layout == "new" else
                    "language_model.model.*, vision_tower.vision_model.*, multi_modal_projector.*")
        lname = fc.write_ref(
            d, f"safetensors_f32_{layout}", ck, prompt, greedy, logits,
            fc.hf_ref_string(what.format(ck=ck), "Gemma3ForConditionalGeneration"),
            f"Model: {desc}. Tensor names: {spelling}. Config: {layout}/config.json (transformers "
            f"{v['transformers']}, model_type gemma3 with text_config). new/ and old/ hold identical tensors "
            "and share this reference; cross-checked against Gemma3ForCausalLM on the text weights and a float64 "
            "forward.",
            {"embed_scale": sqrt_d, "tokenizer_vocab": TEXT_VOCAB, "checks": info},
            logits_name=lname if layout == "old" else None)
    fc.print_ref("safetensors_f32", info, greedy)
    print(f"  padding rows: top-1 at {info['padding_rows_top1_prompt_positions']} prompt positions, max logit "
          f"{info['padding_rows_max_logit']:.3f} (real rows {info['real_rows_max_logit']:.3f}); "
          f"Gemma3ForCausalLM rel diff {causal_rel:.2e}")


if __name__ == "__main__":
    main()

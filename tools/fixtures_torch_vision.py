#!/usr/bin/env python3
"""gemma_pytorch-layout .ckpt of the tiny multimodal Gemma 3 (gemma3_mm_tiny), with vision references.

Usage (from the repository root; CPU only, seconds):

    python3 tools/fixtures_torch_vision.py

Needs torch, transformers (5.x), numpy, safetensors. Reads tests/fixtures/models/gemma3_mm_tiny/new/
(written by tools/fixtures_gemma3_mm.py) and its vision/features.json (the pixel tensors of the two
test images), and writes tests/fixtures/models/gemma3_mm_tiny/torch/:

    model.ckpt      torch.save({'model_state_dict': sd}) in the names of gemma_pytorch's
                    Gemma3ForMultimodalLM (gemma/gemma3_model.py, gemma/siglip_vision/
                    siglip_vision_model.py), float32:
                      text_token_embedder.weight, model.layers.L.* (as tools/fixtures_torch_model.py),
                      model.norm.weight, local_freqs_cis / global_freqs_cis (a few rows);
                      siglip_vision_model.patch_embedding.{weight,bias}  (Conv2d [D, 3, p, p])
                      siglip_vision_model.position_embedding.weight      [n_patches, D]
                      siglip_vision_model.encoder_blocks.N.{layer_norm1,layer_norm2}.{weight,bias}
                      siglip_vision_model.encoder_blocks.N.self_attn.{q,k,v,o}_proj.{weight,bias}
                      siglip_vision_model.encoder_blocks.N.mlp.{fc1,fc2}.{weight,bias}
                      siglip_vision_model.final_norm.{weight,bias}
                      mm_soft_embedding_norm.weight    (RMSNorm with unit offset: stores w of 1 + w)
                      mm_input_projection.weight       nn.Linear layout [text_hidden, D], i.e. the
                                                       transpose of HF's mm_input_projection_weight
    features.json   {"tokens_per_image", "n_heads", "images": [{"file", "features"}]}: HF's
                    get_image_features on the same pixel tensors, with the tower configured as the
                    engine reads a .ckpt (below).

A gemma_pytorch checkpoint carries no config, and gemma_pytorch's tower config is fixed
(siglip_vision/config.py: 16 heads, AveragePool2D with a 4x4 window). The engine takes the widths,
layer count, patch and image size from the tensor shapes and those two fixed values, so for this
tiny tower (width 32, 4x4 patch grid) that is 16 heads of 2 and 1 soft token per image, not the
2 heads and 4 tokens of config.json. The reference is HF transformers (float32, eager) with exactly
that config on the same weights.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
D = ROOT / "tests/fixtures/models/gemma3_mm_tiny"
HEADS, POOL = 16, 4  # gemma_pytorch's fixed tower config


def state_dict(w: dict[str, np.ndarray], n_layers: int, n_vision_layers: int, head_dim: int):
    import torch
    t = lambda name: torch.from_numpy(np.ascontiguousarray(w[name]))  # noqa: E731
    sd = collections.OrderedDict()
    lm, vt = "model.language_model.", "model.vision_tower.vision_model."
    sd["text_token_embedder.weight"] = t(lm + "embed_tokens.weight")
    for l in range(n_layers):
        h, p = f"{lm}layers.{l}.", f"model.layers.{l}."
        sd[p + "self_attn.qkv_proj.weight"] = torch.cat(
            [t(h + "self_attn.q_proj.weight"), t(h + "self_attn.k_proj.weight"), t(h + "self_attn.v_proj.weight")], 0)
        sd[p + "self_attn.o_proj.weight"] = t(h + "self_attn.o_proj.weight")
        sd[p + "self_attn.query_norm.weight"] = t(h + "self_attn.q_norm.weight")
        sd[p + "self_attn.key_norm.weight"] = t(h + "self_attn.k_norm.weight")
        for part in ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            sd[p + part + ".weight"] = t(h + part + ".weight")
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            sd[p + norm + ".weight"] = t(h + norm + ".weight")
    sd["model.norm.weight"] = t(lm + "norm.weight")
    sv = "siglip_vision_model."
    for leaf in ("weight", "bias"):
        sd[sv + "patch_embedding." + leaf] = t(vt + "embeddings.patch_embedding." + leaf)
    sd[sv + "position_embedding.weight"] = t(vt + "embeddings.position_embedding.weight")
    for l in range(n_vision_layers):
        h, p = f"{vt}encoder.layers.{l}.", f"{sv}encoder_blocks.{l}."
        for hf, pt in (("layer_norm1", "layer_norm1"), ("layer_norm2", "layer_norm2"),
                       ("self_attn.q_proj", "self_attn.q_proj"), ("self_attn.k_proj", "self_attn.k_proj"),
                       ("self_attn.v_proj", "self_attn.v_proj"), ("self_attn.out_proj", "self_attn.o_proj"),
                       ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
            for leaf in ("weight", "bias"):
                sd[p + pt + "." + leaf] = t(h + hf + "." + leaf)
    for leaf in ("weight", "bias"):
        sd[sv + "final_norm." + leaf] = t(vt + "post_layernorm." + leaf)
    sd["mm_soft_embedding_norm.weight"] = t("model.multi_modal_projector.mm_soft_emb_norm.weight")
    sd["mm_input_projection.weight"] = t("model.multi_modal_projector.mm_input_projection_weight").t().contiguous()
    ang = torch.outer(torch.arange(8, dtype=torch.float32), torch.ones(head_dim // 2))
    sd["local_freqs_cis"] = torch.polar(torch.ones_like(ang), ang)
    sd["global_freqs_cis"] = torch.polar(torch.ones_like(ang), ang * 0.5)
    return sd


def main() -> None:
    import torch
    from safetensors.numpy import load_file
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    w = load_file(str(D / "new/model.safetensors"))
    cfg_json = json.loads((D / "new/config.json").read_text())
    tc, vc = cfg_json["text_config"], cfg_json["vision_config"]
    out = D / "torch"
    out.mkdir(exist_ok=True)
    sd = state_dict(w, tc["num_hidden_layers"], vc["num_hidden_layers"], tc["head_dim"])
    torch.save({"model_state_dict": sd}, out / "model.ckpt")

    grid = vc["image_size"] // vc["patch_size"]
    tokens = (grid // POOL) ** 2
    cfg_json["vision_config"]["num_attention_heads"] = HEADS
    cfg_json["mm_tokens_per_image"] = tokens
    cfg = Gemma3Config(**{k: v for k, v in cfg_json.items() if k not in ("architectures", "transformers_version")})
    cfg._attn_implementation = "eager"
    model = Gemma3ForConditionalGeneration(cfg).float().eval()
    # transformers 5 names the tower's modules without the file's "vision_model." level.
    hf = {k.replace("vision_tower.vision_model.", "vision_tower."): torch.from_numpy(v) for k, v in w.items()}
    missing, unexpected = model.load_state_dict(hf, strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing), (missing, unexpected)
    feats_in = json.loads((D / "vision/features.json").read_text())
    S = feats_in["image_size"]
    res = {"tokens_per_image": tokens, "n_heads": HEADS, "images": []}
    for im in feats_in["images"]:
        pv = torch.tensor(im["pixel_values"], dtype=torch.float32).reshape(1, 3, S, S)
        with torch.no_grad():
            f = model.get_image_features(pv).pooler_output
        assert tuple(f.shape) == (1, tokens, tc["hidden_size"]), f.shape
        res["images"].append({"file": im["file"], "features": [float(x) for x in f[0].numpy().reshape(-1)]})
    (out / "features.json").write_text(json.dumps(res) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()

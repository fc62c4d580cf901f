#!/usr/bin/env python3
"""Builds a SentencePiece tokenizer.model (BPE ModelProto) from the Gemma 3 tokenizer.json.

No real tokenizer.model can be downloaded here, so the test fixture is made from tokenizer.json the
way the tokenizer fixtures' README ("SentencePiece") describes:
  - pieces in id order (the 262,144 model vocab entries; <image_soft_token>, id 262144, is an HF-only
    added token past them and is left out, as in Google's gemma3 .model);
  - byte fallback on; normalizer "identity" with no dummy prefix and no whitespace removal;
  - score = -(rank of the first merge that produces the piece), 0 for single characters;
  - non-special added tokens USER_DEFINED, <0xNN> BYTE, <unk> UNKNOWN, other specials CONTROL.

The result is checked with the sentencepiece library itself against the golden cases: every case
without literal special-token text must match (ids, ids with <bos>, decoded text). Cases that write
a special token literally are expected to differ: SentencePiece does not parse CONTROL pieces (nor
<unk>) in input text, HF does; the engine follows HF.

Usage: python3 tools/make_sentencepiece_model.py [--out tests/fixtures/tokenizer/tokenizer.model.zst]
Needs: pip install sentencepiece protobuf; the zstd command.
"""
import argparse
import json
import pathlib
import subprocess
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tokenizer"


def unzstd(path: pathlib.Path) -> bytes:
    return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout


def build_proto(tj: dict) -> sp_pb2.ModelProto:
    vocab = tj["model"]["vocab"]
    n = len(vocab)
    pieces = [None] * n
    for piece, i in vocab.items():
        pieces[i] = piece
    assert all(p is not None for p in pieces), "vocab ids are not 0..n-1"
    first_rank = {}
    for rank, m in enumerate(tj["model"]["merges"]):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        first_rank.setdefault(a + b, rank)
    added = {a["id"]: a for a in tj["added_tokens"] if a["id"] < n}

    T = sp_pb2.ModelProto.SentencePiece
    proto = sp_pb2.ModelProto()
    for i, p in enumerate(pieces):
        sp = proto.pieces.add()
        sp.piece = p
        if p == tj["model"]["unk_token"]:
            sp.type = T.UNKNOWN
        elif i in added:
            sp.type = T.CONTROL if added[i]["special"] else T.USER_DEFINED
        elif len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
            sp.type = T.BYTE
        else:
            sp.type = T.NORMAL
        sp.score = -float(first_rank.get(p, 0)) if sp.type == T.NORMAL else 0.0
    ts = proto.trainer_spec
    ts.model_type = sp_pb2.TrainerSpec.BPE
    ts.vocab_size = n
    ts.byte_fallback = True
    ts.unk_id, ts.bos_id = vocab["<unk>"], vocab["<bos>"]
    ts.eos_id, ts.pad_id = vocab["<eos>"], vocab["<pad>"]
    # SentencePieceProcessor.bos_id() and friends look the ids up by these names.
    ts.unk_piece, ts.bos_piece, ts.eos_piece, ts.pad_piece = "<unk>", "<bos>", "<eos>", "<pad>"
    ns = proto.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = False
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    return proto


def check(model_bytes: bytes, tj: dict) -> None:
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    assert sp.vocab_size() == len(tj["model"]["vocab"])
    specials = [a["content"] for a in tj["added_tokens"] if a["special"]]
    matched = literal = literal_differs = 0
    for line in unzstd(FIXTURES / "gemma3_cases.jsonl.zst").decode().split("\n"):
        if not line:
            continue
        case = json.loads(line)
        ids = sp.encode(case["text"])
        ok = (ids == case["ids"] and [sp.bos_id()] + ids == case["ids_with_special"]
              and sp.decode(ids) == case["decoded"])
        if any(s in case["text"] for s in specials):
            literal += 1
            literal_differs += not ok
            continue
        assert ok, f"sentencepiece differs from the golden case {case['text'][:80]!r}"
        matched += 1
    print(f"sentencepiece {spm.__version__}: {matched} golden cases without literal specials identical; "
          f"{literal_differs} of {literal} with literal special tokens differ (expected: SentencePiece does "
          f"not parse control pieces in text)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(FIXTURES / "tokenizer.model.zst"))
    args = ap.parse_args()
    tj = json.loads(unzstd(FIXTURES / "tokenizer.json.zst"))
    model = build_proto(tj).SerializeToString()
    check(model, tj)
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / "tokenizer.model"
        raw.write_bytes(model)
        subprocess.run(["zstd", "-19", "-q", "-f", str(raw), "-o", args.out], check=True)
    print(f"wrote {args.out} ({pathlib.Path(args.out).stat().st_size} bytes; {len(model)} uncompressed)")


if __name__ == "__main__":
    main()

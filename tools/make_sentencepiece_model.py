#!/usr/bin/env python3
"""Builds a SentencePiece tokenizer.model (BPE ModelProto) from the Gemma 3 tokenizer.json.

No real tokenizer.model can be downloaded here, so the test fixture is made from tokenizer.json the
way the tokenizer fixtures' README describes: pieces in id order, byte fallback on, identity
normalizer without dummy prefix or whitespace removal, piece score = -(rank of the first merge that
produces the piece), non-special added tokens USER_DEFINED, <0xNN> BYTE, <unk> UNKNOWN, the other
special tokens CONTROL. <image_soft_token> (id 262144, an HF-only added token past the 262,144
pieces) is left out, as in the real Gemma 3 model file.

Usage: python3 tools/make_sentencepiece_model.py  (writes tests/fixtures/tokenizer/tokenizer.model.zst)
Needs: pip install sentencepiece protobuf; the zstd command.
"""
import json
import pathlib
import subprocess

from sentencepiece import sentencepiece_model_pb2 as sp_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tokenizer"


def main() -> None:
    raw = subprocess.run(["zstd", "-dc", str(FIXTURES / "tokenizer.json.zst")], check=True, capture_output=True).stdout
    tj = json.loads(raw)
    vocab = tj["model"]["vocab"]
    n = len(vocab)
    pieces = [None] * n
    for piece, i in vocab.items():
        pieces[i] = piece
    first_rank = {}
    for rank, m in enumerate(tj["model"]["merges"]):
        a, b = m.split(" ") if isinstance(m, str) else m
        first_rank.setdefault(a + b, rank)
    added = {a["id"]: a for a in tj["added_tokens"] if a["id"] < n}

    T = sp_pb2.ModelProto.SentencePiece
    proto = sp_pb2.ModelProto()
    for i, p in enumerate(pieces):
        sp = proto.pieces.add()
        sp.piece = p
        if p == "<unk>":
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
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = vocab["<unk>"], vocab["<bos>"], vocab["<eos>"], vocab["<pad>"]
    ns = proto.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = False
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True

    out = FIXTURES / "tokenizer.model"
    out.write_bytes(proto.SerializeToString())
    # Sanity check with the sentencepiece library itself on text without literal special tokens.
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(out))
    ids = sp.encode("Hello, my dog is cute")
    assert ids == [9259, 236764, 1041, 4799, 563, 12864], ids
    subprocess.run(["zstd", "-19", "-q", "-f", "--rm", str(out), "-o", str(out) + ".zst"], check=True)
    print(f"wrote {out}.zst ({(FIXTURES / 'tokenizer.model.zst').stat().st_size} bytes)")


if __name__ == "__main__":
    main()

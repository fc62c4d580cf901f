#!/usr/bin/env python3
"""Small torch.save archives for the C++ torch reader tests (tests/formats/torch).

Usage (from the repository root; CPU only, a few seconds):

    python3 tools/fixtures_torch.py

Needs torch (2.x). Writes tests/fixtures/torch/:

  all_types.pt        protocol 2, plain dict: one tensor per legacy storage class (Float, Double,
                      Half, BFloat16, Char, Byte, Short, Int, Long, Bool, ComplexFloat,
                      ComplexDouble) with edge values (NaN, -0, inf, subnormals, extremes), plus
                      the dtypes torch 2.x writes through _rebuild_tensor_v3 and UntypedStorage
                      (uint16, uint32, uint64, float8_e4m3fn, float8_e5m2)
  views_p4.pt         protocol 4: views sharing one storage (row, column, transpose, narrow,
                      size-1 dims), stride 0 (expand), 0-d tensors (own storage and a view at an
                      offset), empty tensors, Parameters with and without requires_grad, int8 and
                      bf16 transposes
  gemma_p5.pt         protocol 5: gemma_pytorch layout {'model_state_dict': module.state_dict()}
                      (an OrderedDict with _metadata, so BUILD), int8 weights with float32 and
                      bfloat16 weight_scaler, a complex64 rope buffer like gemma_pytorch's freqs_cis
  plain_sd.pt         protocol 2: a bf16 module's state_dict() (BUILD), LONG1 offsets avoided
  many_storages.pt    12 storages: record keys 0..11 (the order torch writes them in)
  my.model.v1.pt      archive folder = file name minus its last extension ("my.model.v1")
  from_buffer.pt      saved to a BytesIO: archive folder "archive"
  zip64.pt            views_p4.pt rewritten with ZIP64 extra fields on every entry (local headers:
                      before the 64-byte-alignment padding; central directory: sizes and offset
                      saturated to 0xffffffff) and 0xffff/0xffffffff in the end record; torch.load
                      and Python's zipfile both read it (checked here)
  legacy.pt           _use_new_zipfile_serialization=False (the pre-1.6 format): must be rejected
  neg_view.pt         a tensor with the negative bit set (rebuild metadata {'neg': True}): rejected
  sharded/            pytorch_model.bin.index.json + 2 shards (plain state dicts)
  expected.json       per file: [{name, dtype, shape, hex}] where hex = the tensor's bytes in
                      row-major order as torch.load returns them (tensor.contiguous()), so the
                      C++ reader can be checked bit for bit

Deterministic apart from torch's random serialization_id record (so re-running rewrites the
archives with a different .data/serialization_id; the tensors and expected.json are identical).
"""

from __future__ import annotations

import collections
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "torch"


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()


def describe(sd: dict) -> list[dict]:
    out = []
    for name, t in sd.items():
        out.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                    "hex": tensor_bytes(t).hex()})
    return out


def all_types() -> dict:
    f = [1.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-40, 3.4e38, -2.5]
    sd = {
        "f32": torch.tensor(f, dtype=torch.float32),
        "f64": torch.tensor(f + [1e-310, 1.7e308], dtype=torch.float64),
        "f16": torch.tensor([1.0, -0.0, float("nan"), float("inf"), 6e-8, 65504.0, -2.5], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -0.0, float("nan"), float("inf"), 1e-40, 3.38e38, -2.5], dtype=torch.bfloat16),
        "i8": torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "i16": torch.tensor([-32768, -1, 0, 32767], dtype=torch.int16),
        "i32": torch.tensor([-2**31, -1, 0, 2**31 - 1], dtype=torch.int32),
        "i64": torch.tensor([-2**63, -1, 0, 2**63 - 1], dtype=torch.int64),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.tensor([1 + 2j, -0.5 - 1j], dtype=torch.complex64),
        "c128": torch.tensor([1 + 2j, -0.5 - 1j], dtype=torch.complex128),
        "u16": torch.tensor([0, 1, 65535], dtype=torch.int32).to(torch.uint16),
        "u32": torch.tensor([0, 1, 2**32 - 1], dtype=torch.int64).to(torch.uint32),
        "u64": torch.tensor([0, 1, 2**62], dtype=torch.int64).to(torch.uint64),
        "f8e4m3": torch.tensor([1.0, -0.5, 448.0], dtype=torch.float32).to(torch.float8_e4m3fn),
        "f8e5m2": torch.tensor([1.0, -0.5, 57344.0], dtype=torch.float32).to(torch.float8_e5m2),
        "f32_2d": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
    }
    return sd


def views() -> dict:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.25 - 1
    i8 = torch.arange(-6, 6, dtype=torch.int8).reshape(3, 4)
    bf = (torch.arange(12, dtype=torch.float32).reshape(4, 3) / 3).to(torch.bfloat16)
    p = torch.nn.Parameter(torch.full((2, 2), 1.5))
    pn = torch.nn.Parameter(torch.full((3,), -2.0), requires_grad=False)
    return {
        "base": base,
        "row": base[1],
        "col": base[:, 2],
        "t": base.t(),
        "narrow": base[1:3, 2:5],
        "step": base[::2, 1::2],
        "unsq": base[2:3],
        "expand": torch.tensor([7.0]).expand(3, 4),
        "expand_row": base[3].unsqueeze(0).expand(2, 6),
        "scalar": torch.tensor(2.5),
        "scalar_view": base[2, 3],
        "empty": torch.zeros(0, 3),
        "empty_view": base[4:],
        "param": p,
        "param_nograd": pn,
        "i8_t": i8.t(),
        "bf16_t": bf.t(),
    }


class QLinear(torch.nn.Module):
    """gemma_pytorch's Linear(quant=True) layout: int8 weight + per-output-row weight_scaler."""

    def __init__(self, out_f: int, in_f: int, scaler_dtype: torch.dtype, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randint(-128, 128, (out_f, in_f), generator=g, dtype=torch.int8),
                                         requires_grad=False)
        self.weight_scaler = torch.nn.Parameter((torch.rand(out_f, generator=g) / 100).to(scaler_dtype))


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv_proj = QLinear(6, 8, torch.float32, 1)
        self.o_proj = QLinear(8, 4, torch.bfloat16, 2)
        self.norm = torch.nn.Parameter(torch.linspace(-1, 1, 8))
        self.register_buffer("freqs_cis", torch.polar(torch.ones(2, 2), torch.arange(4.0).reshape(2, 2)))


def plain_module() -> torch.nn.Module:
    torch.manual_seed(5)
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)).to(torch.bfloat16)
    return m


def write_zip64(src: Path, dst: Path) -> None:
    """Re-emit a torch archive with ZIP64 records everywhere they can appear."""
    zin = zipfile.ZipFile(src)
    entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        offset = len(out)
        crc = zlib.crc32(data)
        z64_local = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        # 'FB' padding extra so the data starts on a 64-byte boundary, after the ZIP64 extra (§8.2).
        start = offset + 30 + len(nb) + len(z64_local) + 4
        pad = (-start) % 64
        extra = z64_local + struct.pack("<2sH", b"FB", pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb),
                           len(extra))
        out += nb + extra
        assert len(out) % 64 == 0
        out += data
        z64 = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(nb), len(z64), 0, 0, 0, 0, 0xFFFFFFFF)
        central += nb + z64
    cd_offset = len(out)
    out += central
    eocd64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), len(central),
                       cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    dst.write_bytes(bytes(out))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.pt"):
        old.unlink()
    expected: dict[str, list[dict]] = {}

    def save(name: str, obj, protocol: int = 2, state=None) -> None:
        torch.save(obj, OUT / name, pickle_protocol=protocol)
        back = torch.load(OUT / name, weights_only=False)
        sd = back["model_state_dict"] if "model_state_dict" in back else back
        expected[name] = describe(sd if state is None else state)

    save("all_types.pt", all_types())
    save("views_p4.pt", views(), protocol=4)
    toy = Toy()
    save("gemma_p5.pt", {"model_state_dict": toy.state_dict()}, protocol=5)
    save("plain_sd.pt", plain_module().state_dict())
    save("many_storages.pt", {f"t{i}": torch.full((2,), float(i)) for i in range(12)})
    save("my.model.v1.pt", {"x": torch.tensor([1.0, 2.0])})

    buf = io.BytesIO()
    torch.save({"y": torch.tensor([3, 4], dtype=torch.int32)}, buf)
    (OUT / "from_buffer.pt").write_bytes(buf.getvalue())
    expected["from_buffer.pt"] = describe(torch.load(OUT / "from_buffer.pt", weights_only=False))

    write_zip64(OUT / "views_p4.pt", OUT / "zip64.pt")
    back = torch.load(OUT / "zip64.pt", weights_only=False)
    ref = torch.load(OUT / "views_p4.pt", weights_only=False)
    assert describe(back) == describe(ref), "torch.load disagrees on the ZIP64 rewrite"
    assert zipfile.ZipFile(OUT / "zip64.pt").testzip() is None
    expected["zip64.pt"] = describe(back)

    torch.save({"z": torch.tensor([1.0])}, OUT / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"n": torch._neg_view(torch.tensor([1.0, 2.0]))}, OUT / "neg_view.pt")
    assert torch.load(OUT / "neg_view.pt")["n"].tolist() == [-1.0, -2.0]

    shard_dir = OUT / "sharded"
    shard_dir.mkdir(exist_ok=True)
    for old in shard_dir.iterdir():
        old.unlink()
    shards = {
        "pytorch_model-00001-of-00002.bin": {"a.weight": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)},
        "pytorch_model-00002-of-00002.bin": {"b.weight": torch.tensor([[1, -1]], dtype=torch.int8),
                                             "b.weight_scaler": torch.tensor([0.5])},
    }
    weight_map = {}
    for fname, sd in shards.items():
        torch.save(sd, shard_dir / fname)
        weight_map.update({k: fname for k in sd})
    (shard_dir / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=1) + "\n")
    merged = {}
    for fname in shards:
        merged.update(torch.load(shard_dir / fname, weights_only=False))
    expected["sharded"] = describe(merged)

    meta = {"generator": "tools/fixtures_torch.py", "torch": torch.__version__, "files": expected}
    (OUT / "expected.json").write_text(json.dumps(meta, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(expected)} fixtures to {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()

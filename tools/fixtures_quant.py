#!/usr/bin/env python3
"""Dequantization fixture: one small tensor of every supported GGUF type plus its reference.

Usage (from the repository root):

    python3 tools/fixtures_quant.py            # writes tests/fixtures/quant/quant_types.gguf
    GGML_LIB=/path/to/libggml-base.so python3 tools/fixtures_quant.py   # also cross-check with ggml

Writes tests/fixtures/quant/quant_types.gguf (general.architecture = "quant_types", no model):
for each type T in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K Q8_K a tensor named
lowercase(T) (e.g. "q4_k") with ne = [512, 4] (4 rows of 512), and next to it "<name>.ref", F32
[512, 4], its dequantization by gguf-py's gguf.quants.dequantize (Q8_K, which gguf-py cannot
dequantize, by the trivial d * qs, see docs/spec/formats.md §5.5).

Contents (deterministic, numpy seed 4242):
  F32/F16/BF16: rows 0-1 N(0,1) values of mixed magnitude (1e-8 .. 1e4), row 2 includes +-0,
    f16/bf16 subnormals and the largest finite values, row 3 random bit patterns (NaN/Inf excluded).
  Legacy and K quants: rows 0-1 gguf.quants.quantize of N(0,1)-ish data (where gguf-py can
    quantize the type), rows 2-3 (all 4 rows for K quants and Q8_K) random-byte blocks with sane
    f16 scales (|d| in 1e-3 .. 1e-1, both signs, dmin/m too), so every bit of the nibble/high-bit/
    6-bit-scale layouts is exercised, including negative int8 Q6_K scales.
If libggml-base.so is found (default /work/llamacpp/build/bin), every reference is also compared
bit for bit with ggml's own C dequantizer (ggml_get_type_traits(type)->to_float).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_common as fc  # noqa: E402

TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]
NE0, ROWS = 512, 4


def sane_f16(rng, n, signed=True) -> np.ndarray:
    mag = 10.0 ** rng.uniform(-3, -1, n)
    sign = rng.choice([-1.0, 1.0], n) if signed else 1.0
    return (mag * sign).astype(np.float16)


def random_blocks(rng, qtype: str, nblocks: int) -> np.ndarray:
    """Random-byte blocks with valid f16 (or f32 for Q8_K) scales; uint8 [nblocks, type_size]."""
    import gguf
    bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[qtype]]
    raw = rng.integers(0, 256, (nblocks, ts), dtype=np.uint8)

    def put_f16(col, vals):
        raw[:, col:col + 2] = vals.astype("<f2").view(np.uint8).reshape(nblocks, 2)

    if qtype in ("Q8_0", "Q4_0", "Q5_0"):
        put_f16(0, sane_f16(rng, nblocks))
    elif qtype in ("Q4_1", "Q5_1"):
        put_f16(0, sane_f16(rng, nblocks))
        put_f16(2, sane_f16(rng, nblocks))  # m (may be negative)
    elif qtype in ("Q4_K", "Q5_K"):
        put_f16(0, sane_f16(rng, nblocks))
        put_f16(2, sane_f16(rng, nblocks))  # dmin
    elif qtype == "Q6_K":
        put_f16(ts - 2, sane_f16(rng, nblocks))  # d is last; int8 scales[16] stay random (negatives)
    elif qtype == "Q8_K":
        d = (10.0 ** rng.uniform(-4, -2, nblocks) * rng.choice([-1.0, 1.0], nblocks)).astype("<f4")
        raw[:, 0:4] = d.view(np.uint8).reshape(nblocks, 4)
        qs = raw[:, 4:4 + 256].view(np.int8).astype(np.int32)
        bsums = qs.reshape(nblocks, 16, 16).sum(-1).astype("<i2")  # consistent with qs, as ggml writes them
        raw[:, 260:292] = bsums.view(np.uint8).reshape(nblocks, 32)
    else:
        raise ValueError(qtype)
    return raw


def float_rows(rng, qtype: str) -> np.ndarray:
    """F32/F16/BF16 values; returns the array in the stored dtype (uint16 bits for BF16)."""
    rows = []
    for r in range(2):
        rows.append(rng.standard_normal(NE0) * 10.0 ** rng.uniform(-8, 4, NE0))
    if qtype == "F32":
        special = np.array([0.0, -0.0, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38, 1.0],
                           dtype=np.float32)
        row2 = rng.standard_normal(NE0).astype(np.float32)
        row2[:special.size] = special
        bits = rng.integers(0, 2 ** 32, NE0, dtype=np.uint64).astype(np.uint32)
        exp = (bits >> 23) & 0xFF
        bits[exp == 0xFF] &= np.uint32(0xBFFFFFFF)  # drop Inf/NaN: exponent 0xFF -> 0x7F
        row3 = bits.view(np.float32)
        return np.stack([np.asarray(rows[0], np.float32), np.asarray(rows[1], np.float32), row2, row3])
    if qtype == "F16":
        special = np.array([0.0, -0.0, 6e-8, -6e-8, 3e-5, -6.1e-5, 65504.0, -65504.0], dtype=np.float16)
        r0 = np.clip(rows[0], -65504, 65504).astype(np.float16)
        r1 = np.clip(rows[1], -65504, 65504).astype(np.float16)
        row2 = rng.standard_normal(NE0).astype(np.float16)
        row2[:special.size] = special
        row2[special.size:special.size + 64] = (rng.integers(1, 1024, 64).astype(np.uint16)
                                                | (rng.integers(0, 2, 64).astype(np.uint16) << 15)).view(np.float16)
        bits = rng.integers(0, 2 ** 16, NE0, dtype=np.uint32).astype(np.uint16)
        exp = (bits >> 10) & 0x1F
        bits[exp == 0x1F] &= np.uint16(0xBFFF)
        return np.stack([r0, r1, row2, bits.view(np.float16)])
    if qtype == "BF16":
        def to_bf16_bits(x):
            import torch
            return torch.from_numpy(np.asarray(x, np.float32)).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        r0, r1 = to_bf16_bits(rows[0]), to_bf16_bits(rows[1])
        row2 = to_bf16_bits(rng.standard_normal(NE0))
        special = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0xFF7F], dtype=np.uint16)
        row2[:special.size] = special
        row2[special.size:special.size + 64] = rng.integers(1, 128, 64).astype(np.uint16) | \
            (rng.integers(0, 2, 64).astype(np.uint16) << 15)  # subnormals
        bits = rng.integers(0, 2 ** 16, NE0, dtype=np.uint32).astype(np.uint16)
        exp = (bits >> 7) & 0xFF
        bits[exp == 0xFF] &= np.uint16(0xBFFF)
        return np.stack([r0, r1, row2, bits])
    raise ValueError(qtype)


def dequant(data: np.ndarray, qtype: str) -> np.ndarray:
    import gguf
    if qtype == "Q8_K":
        blocks = data.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view("<f4").astype(np.float32)
        qs = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * qs).astype(np.float32).reshape(ROWS, NE0)
    if qtype == "BF16":
        return (data.astype(np.uint32) << 16).view(np.float32).reshape(ROWS, NE0)
    return gguf.quants.dequantize(data, gguf.GGMLQuantizationType[qtype]).astype(np.float32).reshape(ROWS, NE0)


def ggml_check(tensors: dict[str, tuple[np.ndarray, str]], refs: dict[str, np.ndarray]) -> None:
    import gguf
    libdir = os.environ.get("GGML_LIB", "/work/llamacpp/build/bin/libggml-base.so")
    if not Path(libdir).exists():
        print(f"(no {libdir}: skipping the cross-check against ggml's C dequantizers)")
        return
    lib = ctypes.CDLL(libdir)

    class Traits(ctypes.Structure):
        _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                    ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                    ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                    ("from_float_ref", ctypes.c_void_p)]

    lib.ggml_get_type_traits.restype = ctypes.POINTER(Traits)
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    to_float_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)
    for name, (data, qtype) in tensors.items():
        if qtype == "F32":
            continue
        tr = lib.ggml_get_type_traits(int(gguf.GGMLQuantizationType[qtype])).contents
        if tr.to_float:
            fn = to_float_t(tr.to_float)
        elif hasattr(lib, f"dequantize_row_{tr.type_name.decode()}"):
            # ggml's type table has no to_float for Q8_K; the function exists in ggml-quants.c
            fn = to_float_t(ctypes.cast(getattr(lib, f"dequantize_row_{tr.type_name.decode()}"), ctypes.c_void_p).value)
        else:
            print(f"  ggml has no dequantizer for {tr.type_name.decode()}: not cross-checked")
            continue
        src = np.ascontiguousarray(data).view(np.uint8)
        out = np.empty(ROWS * NE0, dtype=np.float32)
        fn(src.ctypes.data, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), ROWS * NE0)
        ref = refs[name].reshape(-1)
        same = np.array_equal(out.view(np.uint32), ref.view(np.uint32))
        nd = int((out.view(np.uint32) != ref.view(np.uint32)).sum())
        print(f"  ggml to_float({tr.type_name.decode()}) vs reference: "
              + ("bit-identical" if same else f"{nd} of {out.size} values differ, max |diff| {np.abs(out - ref).max():.3g}"))


def main() -> None:
    import gguf
    rng = np.random.default_rng(4242)
    out_dir = fc.FIXTURES / "quant"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "quant_types.gguf"
    w = gguf.GGUFWriter(str(path), "quant_types")
    w.add_string("quant_types.description",
                 "one [512 x 4] tensor per GGML type (name = lowercase type) and <name>.ref = its F32 "
                 "dequantization by gguf-py; written by tools/fixtures_quant.py")
    tensors: dict[str, tuple[np.ndarray, str]] = {}
    refs: dict[str, np.ndarray] = {}
    for qt in TYPES:
        name = qt.lower()
        qtype = gguf.GGMLQuantizationType[qt]
        if qt in ("F32", "F16", "BF16"):
            data = float_rows(rng, qt)
            if qt == "BF16":
                w.add_tensor(name, data.view(np.uint8).reshape(ROWS, NE0 * 2), raw_dtype=qtype)
            else:
                w.add_tensor(name, data)
        else:
            bs, ts = gguf.GGML_QUANT_SIZES[qtype]
            nb = NE0 // bs
            random_rows = ROWS
            parts = []
            try:
                src = (rng.standard_normal((2, NE0)) * rng.uniform(0.1, 3.0, (2, 1))).astype(np.float32)
                parts.append(gguf.quants.quantize(src, qtype).reshape(2, nb * ts))
                random_rows = ROWS - 2
            except NotImplementedError:
                pass
            parts.append(random_blocks(rng, qt, random_rows * nb).reshape(random_rows, nb * ts))
            data = np.concatenate(parts, axis=0)
            w.add_tensor(name, data, raw_dtype=qtype)
        tensors[name] = (data, qt)
        refs[name] = dequant(data, qt)
        assert np.isfinite(refs[name]).all(), name
        w.add_tensor(name + ".ref", refs[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # read back and re-check
    r = gguf.GGUFReader(str(path))
    byname = {t.name: t for t in r.tensors}
    for qt in TYPES:
        t, tr = byname[qt.lower()], byname[qt.lower() + ".ref"]
        assert t.tensor_type == gguf.GGMLQuantizationType[qt] and list(t.shape) == [NE0, ROWS], (qt, t.shape)
        assert tr.tensor_type == gguf.GGMLQuantizationType.F32 and list(tr.shape) == [NE0, ROWS]
        assert np.array_equal(np.asarray(tr.data).reshape(ROWS, NE0), refs[qt.lower()])
    print(f"wrote {path} ({path.stat().st_size} bytes), types: {', '.join(TYPES)}")
    ggml_check(tensors, refs)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Orbax / OCDBT / zarr fixtures for tests/formats/orbax, written by the real writers.

Usage (from the repository root, CPU only, a few seconds):

    python3 -m venv /tmp/orbax-venv && /tmp/orbax-venv/bin/pip install orbax-checkpoint tensorstore jax
    /tmp/orbax-venv/bin/python tools/fixtures_orbax.py

Writes tests/fixtures/orbax/:
    ocdbt_zarr2/   ocp.PyTreeCheckpointer defaults: OCDBT, merged root manifest.ocdbt + d/, the per-process
                   database ocdbt.process_0/, zarr v2 + zstd; multi-chunk arrays (SaveArgs.chunk_byte_size),
                   f32/bf16/f16/int8, a scalar, values both inline and out-of-line (> 1024 bytes).
    zarr2_dirs/    the same tree with use_ocdbt=False: one zarr directory per array.
    ocdbt_zarr3/   use_zarr3=True: zarr.json, sharding_indexed (one inner chunk per shard, Orbax's choice).
    zarr3_dirs/    use_ocdbt=False, use_zarr3=True.
    ts_tree/       tensorstore directly (no Orbax): an OCDBT database with max_decoded_node_bytes=256, so the
                   b-tree has interior nodes and inherited key prefixes; numbered manifests; uncompressed
                   nodes. Holds zarr v2 arrays with edge chunks, a missing all-zero chunk (fill value),
                   Fortran order, big-endian '>f4', dimension_separator '/', and a zarr3 array sharded
                   2x2 with edge shards and a missing inner chunk.
    fuzz/corpus/orbax/     seeds for fuzz/orbax_fuzz.cpp made from the fixtures (file sets, manifests, a node, chunks).
    expected/<fixture>.json
        {"arrays": {name: {"dtype": tensorstore dtype, "shape": [...], "fnv1a64": hex of the C-order
         little-endian bytes, "first": first values}}, "keys": {OCDBT key: fnv1a64 of the value}}
        "keys" lists every key of the OCDBT database at the fixture root (or of ocdbt.process_0) as
        tensorstore's own ocdbt driver reads it.

Files written by Orbax carry random data-file ids and timestamps, so a re-run changes bytes but not
content. The C++ tests compare every array and every key value bit-exactly through the checksums.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "orbax"


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def describe(a: np.ndarray) -> dict:
    a = np.array(a, order="C")  # (np.ascontiguousarray would turn a scalar into shape [1])
    le = a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a
    flat = le.reshape(-1)
    first = [float(x) if a.dtype.kind == "f" or str(a.dtype) == "bfloat16" else int(x) for x in flat[:4]]
    return {"dtype": str(a.dtype.newbyteorder("=")) if a.dtype.byteorder == ">" else str(a.dtype),
            "shape": list(a.shape), "fnv1a64": fnv1a64(le.tobytes()), "first": first}


def ocdbt_keys(path: Path) -> dict:
    import tensorstore as ts
    kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{path}"}).result()
    return {k.decode(): fnv1a64(kv.read(k).result().value) for k in kv.list().result()}


def rng_array(rng, shape, dtype):
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


def orbax_tree():
    import jax.numpy as jnp
    import ml_dtypes
    rng = np.random.default_rng(1234)
    bf16 = ml_dtypes.bfloat16
    # Gemma-like FLAT names; sizes keep every fixture at a few KB.
    tree = {
        "transformer/embedder": {"input_embedding": jnp.asarray(rng_array(rng, (48, 32), bf16))},
        "transformer/final_norm": {"scale": jnp.asarray(rng_array(rng, (32,), np.float32))},
        "transformer/layer_0/attn/q_einsum": {"w": jnp.asarray(rng_array(rng, (4, 32, 8), np.float32))},
        "transformer/layer_0/attn/_query_norm": {"scale": jnp.asarray(rng_array(rng, (8,), np.float16))},
        "transformer/layer_0/mlp/linear": {"w": jnp.asarray((rng.integers(-128, 128, (6, 10))).astype(np.int8))},
        "transformer/layer_0/small": {"scalar": jnp.asarray(np.float32(3.25))},
        # 12 KB of random f32 in 4 KB chunks: stored out-of-line (> max_inline_value_bytes = 1024).
        "transformer/layer_0/mlp/gating_einsum": {"w": jnp.asarray(rng_array(rng, (2, 24, 64), np.float32))},
    }
    save_args = {k: {leaf: None for leaf in v} for k, v in tree.items()}
    import orbax.checkpoint as ocp
    # Several chunks: 512-byte chunks for the f32 q_einsum (4 KB) and the bf16 embedding (3 KB).
    save_args["transformer/layer_0/attn/q_einsum"]["w"] = ocp.SaveArgs(chunk_byte_size=512)
    save_args["transformer/embedder"]["input_embedding"] = ocp.SaveArgs(chunk_byte_size=1024)
    save_args["transformer/layer_0/mlp/gating_einsum"]["w"] = ocp.SaveArgs(chunk_byte_size=4096)
    save_args = {k: {leaf: (a if a is not None else ocp.SaveArgs()) for leaf, a in v.items()}
                 for k, v in save_args.items()}
    return tree, save_args


def write_orbax(name: str, use_ocdbt: bool, use_zarr3: bool) -> dict:
    import orbax.checkpoint as ocp
    path = OUT / name
    shutil.rmtree(path, ignore_errors=True)
    tree, save_args = orbax_tree()
    ckptr = ocp.PyTreeCheckpointer(use_ocdbt=use_ocdbt, use_zarr3=use_zarr3)
    ckptr.save(path, tree, save_args=save_args)
    arrays = {}
    for module, leaves in tree.items():
        for leaf, v in leaves.items():
            arrays[f"{module}.{leaf}"] = describe(np.asarray(v))
    # Read back through Orbax itself: what we compare against is what Orbax restores.
    restored = ckptr.restore(path)
    for module, leaves in restored.items():
        for leaf, v in leaves.items():
            assert describe(np.asarray(v))["fnv1a64"] == arrays[f"{module}.{leaf}"]["fnv1a64"], (module, leaf)
    exp = {"arrays": arrays}
    if use_ocdbt:
        exp["keys"] = ocdbt_keys(path)
        exp["process_keys"] = ocdbt_keys(path / "ocdbt.process_0")
    return exp


def write_ts_tree() -> dict:
    """tensorstore directly: a deep OCDBT tree and zarr features Orbax itself does not produce."""
    import tensorstore as ts
    path = OUT / "ts_tree"
    shutil.rmtree(path, ignore_errors=True)
    kv = {"driver": "ocdbt", "base": f"file://{path}",
          "config": {"max_decoded_node_bytes": 256, "max_inline_value_bytes": 64, "manifest_kind": "numbered",
                     "compression": None}}
    rng = np.random.default_rng(99)
    arrays = {}

    def put(name, meta, data, driver="zarr", fill_missing_zero=False):
        spec = {"driver": driver, "kvstore": {**kv, "path": name + "/"}, "metadata": meta, "create": True,
                "delete_existing": False}
        if fill_missing_zero:
            spec["store_data_equal_to_fill_value"] = False
        t = ts.open(spec).result()
        t[...] = data
        arrays[name] = describe(data)

    # zarr v2, f32 [10, 12] in 4x5 chunks: edge chunks on both axes; the chunk [0:4, 5:10] is all zero
    # and not stored (fill value 0): a missing chunk.
    a = rng_array(rng, (10, 12), np.float32)
    a[0:4, 5:10] = 0
    put("model/edge.f32", {"shape": [10, 12], "chunks": [4, 5], "dtype": "<f4", "fill_value": 0,
                           "compressor": {"id": "zstd", "level": 3}}, a, fill_missing_zero=True)
    # Fortran order, big-endian, no compression, '/' separator.
    b = rng_array(rng, (5, 6, 3), np.float32)
    put("model/fortran.be", {"shape": [5, 6, 3], "chunks": [2, 4, 3], "dtype": ">f4", "order": "F",
                             "compressor": None, "dimension_separator": "/"}, b.astype(">f4"))
    # bfloat16 with fill value 1.5 and a chunk equal to it left unwritten.
    import ml_dtypes
    c = rng_array(rng, (9,), ml_dtypes.bfloat16)
    c[4:8] = 1.5
    put("model/fill.bf16", {"shape": [9], "chunks": [4], "dtype": "bfloat16", "fill_value": 1.5,
                            "compressor": {"id": "zstd", "level": 1}}, c, fill_missing_zero=True)
    # zarr3: shards of 4x4 split into 2x2 inner chunks, array 6x7 (edge shards); inner chunks that
    # equal the fill value are not stored (missing entries in the shard index).
    d = rng_array(rng, (6, 7), np.float32)
    d[0:2, 2:4] = 0
    put("model/sharded.zarr3", {
        "shape": [6, 7], "data_type": "float32", "fill_value": 0,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4]}},
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [2, 2],
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 2}}],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": "end"}}]}, d, driver="zarr3", fill_missing_zero=True)
    # zarr3 without sharding: int8, big-endian bytes codec is irrelevant for 1 byte; crc32c after zstd.
    e = rng.integers(-128, 128, (3, 5)).astype(np.int8)
    put("model/plain.zarr3", {
        "shape": [3, 5], "data_type": "int8", "fill_value": 0,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 5]}},
        "codecs": [{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 1}}, {"name": "crc32c"}]}, e,
        driver="zarr3")
    # Many small keys sharing long prefixes, to fill several leaves under interior nodes.
    store = ts.KvStore.open(kv).result()
    for i in range(40):
        store.write(f"model/extra/key_with_a_long_shared_prefix_{i:03d}", f"value {i} ".encode() * (i % 7 + 1)).result()
    return {"arrays": arrays, "keys": ocdbt_keys(path)}


def write_fuzz_seeds() -> None:
    """Seeds for fuzz/orbax_fuzz.cpp (first byte = entry point, see there) from the fixtures above."""
    import struct
    seeds = ROOT / "fuzz" / "corpus" / "orbax"
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir(parents=True)

    def file_set(d: Path) -> bytes:
        out = b"\x04"
        for f in sorted(d.rglob("*")):
            if f.is_file() and not f.name.startswith("_") and "array_metadatas" not in f.parts:
                name = f.relative_to(d).as_posix().encode()
                out += bytes([len(name)]) + name + struct.pack("<I", f.stat().st_size) + f.read_bytes()
        return out

    for name in ("ocdbt_zarr2", "zarr2_dirs", "ocdbt_zarr3", "zarr3_dirs"):
        (seeds / f"set_{name}").write_bytes(file_set(OUT / name))
    (seeds / "manifest_root").write_bytes(b"\x00" + (OUT / "ocdbt_zarr2" / "manifest.ocdbt").read_bytes())
    (seeds / "manifest_process").write_bytes(b"\x00" + (OUT / "ocdbt_zarr2" / "ocdbt.process_0" / "manifest.ocdbt").read_bytes())
    (seeds / "manifest_uncompressed").write_bytes(b"\x00" + sorted((OUT / "ts_tree").glob("manifest.0*"))[-1].read_bytes())
    node = next((OUT / "ocdbt_zarr3" / "d").iterdir()).read_bytes()  # the merged root's leaf node
    (seeds / "node_leaf").write_bytes(b"\x01" + node)
    for kind, arr in ((2, "zarr2_dirs/transformer/layer_0/attn/q_einsum.w"), (3, "zarr3_dirs/transformer/final_norm.scale")):
        d = OUT / arr
        meta = (d / (".zarray" if kind == 2 else "zarr.json")).read_bytes()
        chunk = (d / ("0.0.0" if kind == 2 else "c/0")).read_bytes()
        (seeds / f"zarr{kind}").write_bytes(bytes([kind]) + meta + b"\x00" + chunk)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "expected").mkdir(exist_ok=True)
    fixtures = {
        "ocdbt_zarr2": lambda: write_orbax("ocdbt_zarr2", True, False),
        "zarr2_dirs": lambda: write_orbax("zarr2_dirs", False, False),
        "ocdbt_zarr3": lambda: write_orbax("ocdbt_zarr3", True, True),
        "zarr3_dirs": lambda: write_orbax("zarr3_dirs", False, True),
        "ts_tree": write_ts_tree,
    }
    only = sys.argv[1:] or list(fixtures)
    for name in only:
        exp = fixtures[name]()
        (OUT / "expected" / f"{name}.json").write_text(json.dumps(exp, indent=1, sort_keys=True) + "\n")
        print(f"wrote {OUT / name}")
    write_fuzz_seeds()


if __name__ == "__main__":
    main()

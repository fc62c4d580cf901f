#!/usr/bin/env python3
"""Image decoding and Gemma 3 preprocessing fixtures for tests/image (C++ image layer, src/image).

Usage (from the repository root; CPU only, a few seconds):

    pip install --target build/pillow12 pillow==12.2.0   # once: the older resize, see below
    python3 tools/fixtures_image.py --pillow12 build/pillow12

Without --pillow12 the Pillow 12 fixtures (pre12/) are left as they are.

Needs: pillow, numpy, transformers (5.x; only its PIL-backed Gemma3ImageProcessorPil and
load_image / convert_to_rgb helpers, no torch model). Deterministic (fixed seeds); rerunning it
rewrites tests/fixtures/images/ byte for byte, given the same pillow/libjpeg/libwebp.

Writes tests/fixtures/images/:
  decode/<name>.<ext>        small files in every format and mode the decoder handles, written by
                             PIL (or, for 16-bit colour and interlaced PNG, which PIL cannot write,
                             by write_png below), and a few broken ones (truncated, zero-size and huge headers);
  decode/<name>.drop.rgb     what HF's load_image gives: exif_transpose, then convert("RGB");
  decode/<name>.white.rgb    what the processor's convert_to_rgb gives after exif_transpose:
                             alpha composited on white (HWC uint8, raw);
  decode.json                [{file, width, height, drop, white, exact_drop}] and the broken files
                             with the error kind expected;
  pre/<name>.png             processor inputs (noise and gradients of several sizes/aspects);
  pre/<name>.<k>.out.png     HF's resized uint8 for image k (0 the full image, 1.. crops), stored
                             losslessly as an 8-bit RGB PNG; the float pixel_values are the
                             bijective LUT below applied to it, which this script asserts;
  pre/lut.f32                HF's pixel value for each uint8 0..255 (mean = std = 0.5), raw float32;
  pre/<name>.pv.f32          for one small case the full float32 pixel_values, for a plain memcmp;
  preprocess.json            [{file, image_size, pan_and_scan {...}, num_crops, boxes, images}];
  prompt.json                Gemma3Processor.replace_image_token's text for a few crop counts;
  pre12/<name>.png           Pillow 12.2's Image.resize(BILINEAR) of pre/<name>.png (run in a
                             subprocess on the --pillow12 copy): Pillow 13 changed the pass order,
                             which changes the last bit of many pixels; pre12.json lists them.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import load_image
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
from transformers.models.gemma3.processing_gemma3 import Gemma3Processor

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "images"


def pattern(w: int, h: int, seed: int, noise: float = 1.0, block: int = 0) -> np.ndarray:
    """RGB uint8: gradients plus noise, so rounding in every pass shows. block > 0: noise only in
    the top-left block x block square (large images stay small as PNG)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1), 127 + 120 * np.sin((x + 2 * y) / 37.0)], -1)
    mask = np.ones((h, w, 1)) if block == 0 else ((x < block) & (y < block))[..., None].astype(np.float64)
    img = base * (1 - 0.5 * noise * mask) + rng.uniform(0, 255, (h, w, 3)) * 0.5 * noise * mask
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def alpha_plane(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w)).astype(np.uint8)
    a[0, :] = 0  # fully transparent and fully opaque rows: the composite's special cases
    a[1, :] = 255
    return a


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def write_png(path: Path, arr: np.ndarray, color_type: int, depth: int = 16, interlace: bool = False) -> None:
    """A PNG by hand (filter 0 rows), for what PIL cannot write: 16-bit colour, Adam7 interlacing."""
    h, w = arr.shape[:2]
    dtype = ">u2" if depth == 16 else np.uint8
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + sub[r].astype(dtype).tobytes() for r in range(sub.shape[0]))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(data)


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def expected(path: Path) -> tuple[np.ndarray, np.ndarray]:
    drop = np.array(load_image(str(path)))
    im = ImageOps.exif_transpose(Image.open(path))
    white = convert_to_rgb(im, return_numpy=True)
    assert drop.dtype == np.uint8 and drop.shape[2] == 3 and white.shape == drop.shape
    return drop, white


def decode_fixtures() -> list[dict]:
    d = OUT / "decode"
    d.mkdir(parents=True, exist_ok=True)
    w, h = 23, 17
    rgb = pattern(w, h, 1)
    a = alpha_plane(w, h, 2)
    gray = rgb[..., 0]
    rgba = np.dstack([rgb, a])
    files: list[tuple[str, bool]] = []  # (file name, decoder must match PIL exactly in drop mode)

    def save(name: str, im: Image.Image, exact: bool = True, **kw) -> None:
        im.save(d / name, **kw)
        files.append((name, exact))

    # PNG, every mode PIL opens: 8-bit RGB/RGBA/L/LA, palette with and without tRNS, gray/RGB keys.
    save("rgb.png", Image.fromarray(rgb))
    save("rgba.png", Image.fromarray(rgba, "RGBA"))
    save("l.png", Image.fromarray(gray))
    save("la.png", Image.fromarray(np.dstack([gray, a]), "LA"))
    pal = Image.fromarray(rgb).quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    save("p.png", pal)
    save("p_trns.png", pal, transparency=bytes([0, 128, 255] + [255] * 13))
    save("l_trns.png", Image.fromarray(gray), transparency=int(gray[3, 4]))
    save("rgb_trns.png", Image.fromarray(rgb), transparency=tuple(int(v) for v in rgb[5, 6]))
    for bits in (1, 2, 4):
        save(f"l{bits}.png", Image.fromarray((gray // (256 >> bits) * (255 // ((1 << bits) - 1))).astype(np.uint8)),
             bits=bits)
    g16 = (np.random.default_rng(3).integers(0, 1024, (h, w))).astype(np.uint16)  # many above 255
    save("i16.png", Image.fromarray(g16))
    rng = np.random.default_rng(4)
    for name, ct, ch in (("rgb16.png", 2, 3), ("la16.png", 4, 2), ("rgba16.png", 6, 4)):
        write_png(d / name, rng.integers(0, 65536, (h, w, ch)).astype(np.uint16), ct)
        files.append((name, True))
    write_png(d / "adam7.png", rgba, 6, depth=8, interlace=True)
    files.append(("adam7.png", True))
    save("exif6.png", Image.fromarray(rgb), exif=exif_bytes(6))
    # JPEG: baseline at three subsamplings, progressive, grayscale, every EXIF orientation.
    smooth = pattern(w, h, 5, noise=0.2)
    for sub, tag in ((0, "444"), (1, "422"), (2, "420")):
        save(f"baseline{tag}.jpg", Image.fromarray(smooth), quality=90, subsampling=sub)
    save("progressive.jpg", Image.fromarray(smooth), quality=85, progressive=True)
    save("gray.jpg", Image.fromarray(smooth[..., 1]), quality=90)
    save("cmyk.jpg", Image.fromarray(smooth).convert("CMYK"), quality=90)
    for o in range(1, 9):
        save(f"exif{o}.jpg", Image.fromarray(smooth), quality=95, exif=exif_bytes(o))
    # WebP: lossless and lossy, with and without alpha.
    save("lossless.webp", Image.fromarray(rgb), lossless=True)
    save("lossless_alpha.webp", Image.fromarray(rgba, "RGBA"), lossless=True)
    save("lossy.webp", Image.fromarray(smooth), quality=80)
    save("lossy_alpha.webp", Image.fromarray(np.dstack([smooth, a]), "RGBA"), quality=80)
    save("exif8.webp", Image.fromarray(rgb), lossless=True, exif=exif_bytes(8))
    # BMP: 24-bit, 8-bit palette, grayscale.
    save("rgb.bmp", Image.fromarray(rgb))
    save("p.bmp", pal)
    save("l.bmp", Image.fromarray(gray))
    # GIF first frame. Transparent GIF pixels: stb_image gives (0,0,0,0), PIL the palette colour, so
    # in drop mode only the opaque pixels agree (exact_drop false; the composite agrees everywhere).
    save("p.gif", pal)
    save("p_trns.gif", pal, exact=False, transparency=3)
    frames = [pal, Image.fromarray(255 - rgb).quantize(colors=16)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    files.append(("anim.gif", True))

    cases = []
    for name, exact in files:
        drop, white = expected(d / name)
        stem = name.replace(".", "_")
        (d / f"{stem}.drop.rgb").write_bytes(drop.tobytes())
        (d / f"{stem}.white.rgb").write_bytes(white.tobytes())
        cases.append({"file": f"images/decode/{name}", "width": int(drop.shape[1]), "height": int(drop.shape[0]),
                      "drop": f"images/decode/{stem}.drop.rgb", "white": f"images/decode/{stem}.white.rgb", "exact_drop": exact})
    return cases


def broken_fixtures() -> list[dict]:
    d = OUT / "decode"
    out = []
    good = {n: (d / n).read_bytes() for n in ("rgb.png", "progressive.jpg", "lossy.webp", "rgb.bmp", "p.gif",
                                               "baseline420.jpg")}
    for n, data in good.items():
        stem = n.replace(".", "_")
        (d / f"trunc_{stem}").write_bytes(data[: len(data) // 2])
        out.append({"file": f"images/decode/trunc_{stem}", "kind": "corrupt input"})
    # A PNG header claiming 100000 x 100000 pixels (and one of 0 x 5): refused from the header.
    def png_header(w: int, hh: int) -> bytes:
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, hh, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    (d / "huge.png").write_bytes(png_header(100000, 100000))
    out.append({"file": "images/decode/huge.png", "kind": "invalid argument"})
    (d / "zero.png").write_bytes(png_header(0, 5))
    out.append({"file": "images/decode/zero.png", "kind": "corrupt input"})
    # JPEG SOF0 claiming 65000 x 65000.
    jpg = bytearray(good["baseline420.jpg"])
    i = jpg.find(b"\xff\xc0")
    struct.pack_into(">HH", jpg, i + 5, 65000, 65000)
    (d / "huge.jpg").write_bytes(bytes(jpg))
    out.append({"file": "images/decode/huge.jpg", "kind": "invalid argument"})
    (d / "text.txt").write_bytes(b"this is not an image\n")
    out.append({"file": "images/decode/text.txt", "kind": "unsupported"})
    for case in out:  # PIL (through HF's load_image) refuses every one of them too
        try:
            load_image(str(REPO / "tests" / "fixtures" / case["file"]))
        except Exception:  # noqa: BLE001 - OSError, DecompressionBombError, UnidentifiedImageError
            continue
        raise AssertionError(f"PIL decodes {case['file']}")
    return out


def hf_processor(image_size: int, pas: dict | None) -> tuple[Gemma3ImageProcessorPil, dict]:
    proc = Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3, rescale_factor=1 / 255)
    kw = {"do_pan_and_scan": False}
    if pas:
        kw = {"do_pan_and_scan": True, "pan_and_scan_min_crop_size": pas["min_crop_size"],
              "pan_and_scan_max_num_crops": pas["max_crops"], "pan_and_scan_min_ratio_to_activate": pas["min_ratio"]}
    return proc, kw


def pixel_lut() -> np.ndarray:
    """HF's pixel value per uint8: a 16x16 image holding 0..255, image_size 16 (resize is identity)."""
    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = Image.fromarray(np.dstack([v, v, v]))
    proc, kw = hf_processor(16, None)
    pv = np.asarray(proc(img, return_tensors="np", **kw)["pixel_values"][0])
    assert pv.dtype == np.float32
    lut = pv[0].reshape(256)
    assert np.all(pv[1].reshape(256) == lut) and np.all(pv[2].reshape(256) == lut)
    assert len(set(lut.tolist())) == 256  # injective: uint8 <-> float is exact both ways
    return lut


PRE = [  # name, width, height, image_size, pan-and-scan options or None, noise, noise block
    ("up_40x30", 40, 30, 64, None, 1.0, 0),
    ("down_200x120", 200, 120, 64, None, 1.0, 48),
    ("vonly_64x50", 64, 50, 64, None, 1.0, 0),
    ("honly_50x64", 50, 64, 64, None, 1.0, 0),
    ("mixed_97x13", 97, 13, 64, None, 1.0, 0),
    ("tall_9x150", 9, 150, 64, None, 1.0, 0),
    ("one_1x1", 1, 1, 64, None, 1.0, 0),
    ("down_300x200", 300, 200, 224, None, 1.0, 48),
    ("up_150x100", 150, 100, 224, None, 1.0, 0),
    ("big_1000x700", 1000, 700, 896, None, 1.0, 48),
    ("pas_wide_150x50", 150, 50, 64, {"min_crop_size": 32, "max_crops": 4, "min_ratio": 1.2}, 1.0, 0),
    ("pas_tall_60x170", 60, 170, 64, {"min_crop_size": 32, "max_crops": 4, "min_ratio": 1.2}, 1.0, 0),
    ("pas_many_400x60", 400, 60, 64, {"min_crop_size": 32, "max_crops": 4, "min_ratio": 1.2}, 1.0, 48),
    ("pas_default_800x300", 800, 300, 224, {"min_crop_size": 256, "max_crops": 4, "min_ratio": 1.2}, 1.0, 48),
    ("pas_inactive_100x90", 100, 90, 64, {"min_crop_size": 32, "max_crops": 4, "min_ratio": 1.2}, 1.0, 0),
]


def preprocess_fixtures(lut: np.ndarray) -> list[dict]:
    d = OUT / "pre"
    d.mkdir(parents=True, exist_ok=True)
    lut.astype("<f4").tofile(d / "lut.f32")
    inverse = {float(v): i for i, v in enumerate(lut.tolist())}
    cases = []
    for seed, (name, w, h, size, pas, noise, block) in enumerate(PRE):
        path = d / f"{name}.png"
        Image.fromarray(pattern(w, h, 100 + seed, noise, block)).save(path, optimize=True)
        proc, kw = hf_processor(size, pas)
        out = proc(load_image(str(path)), return_tensors="np", **kw)
        pv = np.asarray(out["pixel_values"])
        num_crops = int(np.asarray(out["num_crops"]).reshape(-1)[0])
        assert pv.shape == (1 + num_crops, 3, size, size) and pv.dtype == np.float32
        images = []
        for k in range(pv.shape[0]):
            u8 = np.vectorize(lambda f: inverse[float(f)], otypes=[np.uint8])(pv[k])  # KeyError = not on the LUT
            assert np.array_equal(lut[u8], pv[k])
            Image.fromarray(np.moveaxis(u8, 0, -1)).save(d / f"{name}.{k}.out.png", optimize=True)
            images.append(f"images/pre/{name}.{k}.out.png")
        case = {"file": f"images/pre/{name}.png", "image_size": size, "num_crops": num_crops, "images": images}
        if pas:
            case["pan_and_scan"] = pas
            chw = np.moveaxis(np.array(load_image(str(path))), -1, 0)
            crops = proc.pan_and_scan(chw, pas["min_crop_size"], pas["max_crops"], pas["min_ratio"])
            assert len(crops) == num_crops
            # Boxes recovered from HF's slices: position = k * crop size, extent = slice shape.
            case["crop_shapes"] = [[int(c.shape[2]), int(c.shape[1])] for c in crops]
        if name == "up_40x30":
            pv[0].astype("<f4").tofile(d / f"{name}.pv.f32")
            case["pixel_values"] = f"images/pre/{name}.pv.f32"
        cases.append(case)
    return cases


def prompt_fixtures() -> list[dict]:
    # Gemma3Processor's own method, on an instance holding only what it reads (no tokenizer needed).
    out = []
    for n_tokens, crops in ((4, 0), (4, 1), (3, 3), (256, 2)):
        p = object.__new__(Gemma3Processor)
        soft = "".join(["<image_soft_token>"] * n_tokens)
        p.full_image_sequence = f"\n\n<start_of_image>{soft}<end_of_image>\n\n"
        out.append({"tokens": n_tokens, "num_crops": crops,
                    "text": p.replace_image_token({"num_crops": [crops]}, 0)})
    return out


PILLOW12_CASES = [("tall_9x150", 64), ("pas_tall_60x170", 64), ("down_200x120", 64), ("mixed_97x13", 64)]


def pillow12_fixtures(pillow12: str) -> list[dict]:
    import os
    import subprocess
    import sys

    d = OUT / "pre12"
    d.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys, PIL; from PIL import Image; assert PIL.__version__.startswith('12.'), PIL.__version__\n"
        "for src, dst, n in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):\n"
        "    Image.open(src).convert('RGB').resize((int(n), int(n)), Image.BILINEAR).save(dst)\n")
    args, cases = [], []
    for name, size in PILLOW12_CASES:
        args += [str(OUT / "pre" / f"{name}.png"), str(d / f"{name}.png"), str(size)]
        cases.append({"file": f"images/pre/{name}.png", "size": size, "pillow12": f"images/pre12/{name}.png"})
    env = dict(os.environ, PYTHONPATH=str(Path(pillow12).resolve()))
    subprocess.run([sys.executable, "-c", code, *args], check=True, env=env)
    return cases


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pillow12", help="a directory holding Pillow 12.x (pip install --target DIR pillow==12.2.0)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    decode = decode_fixtures()
    broken = broken_fixtures()
    (OUT / "decode.json").write_text(json.dumps({"images": decode, "broken": broken}, indent=1) + "\n")
    pre = preprocess_fixtures(pixel_lut())
    (OUT / "preprocess.json").write_text(json.dumps(pre, indent=1) + "\n")
    (OUT / "prompt.json").write_text(json.dumps(prompt_fixtures(), indent=1) + "\n")
    if args.pillow12:
        (OUT / "pre12.json").write_text(json.dumps(pillow12_fixtures(args.pillow12), indent=1) + "\n")
    else:
        print("no --pillow12: left pre12/ as it is")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()

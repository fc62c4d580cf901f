#!/usr/bin/env python3
"""Python-level speed of gemma_engine.Gemma beside llama-cpp-python's llama_cpp.Llama, interleaved.

The same GGUF, prompt, n_ctx and thread count for both; greedy (temperature 0, repeat_penalty 1).
Everything is timed where a Python user sees it, around create_completion() calls, so each side's
per-token Python work (our generator and chunk dicts; llama-cpp-python's generate loop, sampler
calls and the logits copy into its NumPy scores) is included:

* decode: (n - 1) / (wall(max_tokens=n) - wall(max_tokens=1)) after a short prompt, the prompt's
  prefill and the first token cancelling out (as tools/bench_python.py times create_completion);
* prefill: P / wall(max_tokens=1) for a prompt of P token ids (each engine's tokenization of a
  long text, cut to P; the script reports whether the two tokenizers gave the same ids), i.e.
  prompt processing plus one sampling.

With --reps R each run makes every call R times and keeps the shortest wall time of each.

Both engines are reset() before every call so neither reuses a cached prefix.

Each measurement runs in its own subprocess (this script with --worker), one engine at a time,
alternating ours, llama-cpp-python, then llama-cpp-python, ours, ... per round and thread count.
Not one process for both: llama.cpp's OpenMP workers spin-wait after each parallel region and our
engine's pool would share the two cores with them, and process-wide state of one (its thread
pools, its mapped or copied weights) would sit beside the other's runs. A subprocess per run gives
each engine the machine alone, as tools/bench_vs_llamacpp.py does with the two CLIs; loading the
model (about a second) is outside the timed calls.

Reports the median tokens/s per engine over the rounds, the median of the per-round ratios
ours / llama-cpp-python, and decode's share of the memory-bandwidth limit (tensor bytes of the
GGUF read once per token against --bandwidth, or build/bench/memory_bandwidth measured after the
rounds). It also compares the two engines' greedy texts and reports where they part (a report,
not a check: the engines' kernels round differently, and a near tie between two tokens can go
either way).

    pip install llama-cpp-python      # builds llama.cpp from source (see docs/benchmarks.md)
    PYTHONPATH=python:build/python python3 tools/bench_python_peers.py [--model M] [-n 128] \
        [-p 512] [--threads 1,2] [--rounds 5] [--reps 3] [--n-ctx 2048] [--bandwidth 1:19.3,2:34.3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_llamacpp import bandwidth, default_model  # noqa: E402

# tools/bench_python.py's prompt (importing it would load gemma_engine here, in the parent).
PROMPT = "The history of the bicycle begins in"

# The prefill prompt: a plain paragraph, repeated until it is long enough, then cut to -p tokens.
LONG_TEXT = (
    "The bicycle was not invented in one place or by one person. Early in the nineteenth century a "
    "German official built a two-wheeled running machine that a rider pushed along with his feet; "
    "later French makers fixed cranks and pedals to the front wheel, and English engineers made "
    "that wheel ever larger until the high-wheeler was both fast and dangerous. The safety bicycle, "
    "with two wheels of equal size and a chain driving the rear one, settled the form that is still "
    "ridden today, and pneumatic tyres soon made it comfortable on the rough roads of the time. "
)


# --- workers: one engine, one process ---------------------------------------------------------
class _Ours:
    def __init__(self, model: str, n_ctx: int, threads: int):
        from gemma_engine import Gemma

        self.llm = Gemma(model, n_ctx=n_ctx, n_threads=threads)

    def tokenize(self, text: str):
        return self.llm.tokenize(text.encode(), add_bos=True, special=False)

    def complete(self, prompt, n: int):
        self.llm.reset()
        return self.llm.create_completion(prompt, max_tokens=n, temperature=0, repeat_penalty=1.0)


class _Theirs:
    def __init__(self, model: str, n_ctx: int, threads: int):
        import llama_cpp

        self.version = llama_cpp.__version__
        self.llm = llama_cpp.Llama(model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)

    def tokenize(self, text: str):
        return self.llm.tokenize(text.encode(), add_bos=True, special=False)

    def complete(self, prompt, n: int):
        self.llm.reset()
        return self.llm.create_completion(prompt, max_tokens=n, temperature=0, repeat_penalty=1.0)


def worker(a: argparse.Namespace) -> None:
    eng = (_Ours if a.worker == "ours" else _Theirs)(a.model, a.n_ctx, a.t)
    copies = 1
    while len(ids := eng.tokenize(LONG_TEXT * copies)) < a.p:
        copies += 1
    long_prompt = ids[: a.p]
    eng.complete(PROMPT, 8)  # warm-up: first touch of the weights, thread start-up

    def wall(prompt, n: int):
        t0 = time.perf_counter()
        r = eng.complete(prompt, n)
        return time.perf_counter() - t0, r

    # The fastest of --reps calls each: on a shared machine other work only ever adds time.
    w1 = wn = wp = float("inf")
    for _ in range(a.reps):
        w1 = min(w1, wall(PROMPT, 1)[0])
        t, r = wall(PROMPT, a.n)
        wn = min(wn, t)
        t, rp = wall(long_prompt, 1)
        wp = min(wp, t)
    got = r["usage"]["completion_tokens"]  # fewer than n if the model ended the text (<eos>)
    out = {
        "decode_tps": (got - 1) / (wn - w1),
        "completion_tokens": got,
        "prefill_tps": rp["usage"]["prompt_tokens"] / wp,
        "prompt_tokens": rp["usage"]["prompt_tokens"],
        "text": r["choices"][0]["text"],
        "long_prompt_ids": long_prompt,
        "version": getattr(eng, "version", ""),
    }
    print(json.dumps(out))


# --- the parent: interleaved rounds -----------------------------------------------------------
def run_worker(who: str, model: str, t: int, a: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", who, "--model", model, "-t", str(t)]
    cmd += ["-n", str(a.n), "-p", str(a.p), "--n-ctx", str(a.n_ctx), "--reps", str(a.reps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    # llama.cpp logs a line or two even with verbose=False; the result is the JSON line.
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def tensor_bytes(model: str) -> int:
    from gguf import GGUFReader

    return sum(int(t.n_bytes) for t in GGUFReader(model).tensors)


def common_prefix(x: str, y: str) -> int:
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["ours", "llama"], help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None)
    ap.add_argument("-n", type=int, default=128, help="generated tokens for decode")
    ap.add_argument("-p", type=int, default=512, help="prompt tokens for prefill")
    ap.add_argument("-t", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=1, help="calls per measurement in each run; the fastest counts")
    ap.add_argument("--bandwidth", default="", help="GB/s per thread count, e.g. 1:19.3,2:34.3 (default: measure)")
    a = ap.parse_args()
    a.model = a.model or default_model()
    if a.worker:
        worker(a)
        return
    threads = [int(t) for t in a.threads.split(",")]
    res = {t: {"ours": [], "llama": [], "r_dec": [], "r_pre": []} for t in threads}
    texts = {}
    for rnd in range(a.rounds):
        for t in threads:
            order = ["ours", "llama"] if rnd % 2 == 0 else ["llama", "ours"]
            got = {who: run_worker(who, a.model, t, a) for who in order}
            for who in order:
                res[t][who].append(got[who])
                if texts.setdefault((who, t), got[who]["text"]) != got[who]["text"]:
                    print(f"note: {who} t{t}'s greedy text in round {rnd + 1} differs from its first", flush=True)
            o, l = got["ours"], got["llama"]
            res[t]["r_dec"].append(o["decode_tps"] / l["decode_tps"])
            res[t]["r_pre"].append(o["prefill_tps"] / l["prefill_tps"])
            print(
                f"round {rnd + 1}/{a.rounds} t{t}: decode {o['decode_tps']:.1f} vs {l['decode_tps']:.1f}, "
                f"prefill {o['prefill_tps']:.1f} vs {l['prefill_tps']:.1f} tok/s",
                file=sys.stderr,
                flush=True,
            )
    if a.bandwidth:
        bw = {int(k): float(v) for k, v in (x.split(":") for x in a.bandwidth.split(","))}
        bw_src = "given"
    else:
        bw = bandwidth(threads)
        bw_src = "build/bench/memory_bandwidth after the rounds"
    size = tensor_bytes(a.model)
    first = res[threads[0]]
    o0, l0 = first["ours"][0], first["llama"][0]
    print(f"model {a.model} ({size / 2**20:.1f} MiB of tensors), llama-cpp-python {l0['version']}")
    print(
        f"decode: {a.n} tokens after {PROMPT!r}; prefill: {o0['prompt_tokens']} prompt tokens "
        f"(llama-cpp-python counted {l0['prompt_tokens']}); n_ctx {a.n_ctx}; {a.rounds} rounds, {a.reps} reps"
    )
    lines = [
        "| threads | test | gemma_engine tok/s | llama-cpp-python tok/s | ratio (median of rounds) | "
        "decode: share of bandwidth limit (ours / theirs) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]

    def med(xs, key):
        return statistics.median(x[key] for x in xs)

    def rng(xs):
        return f"{min(xs):.2f}-{max(xs):.2f}"

    for t in threads:
        e = res[t]
        od, ld = med(e["ours"], "decode_tps"), med(e["llama"], "decode_tps")
        limit = bw[t] * 1e9 / size  # tokens/s if every tensor byte is read once per token
        lines.append(
            f"| {t} | decode ({a.n} tokens) | {od:.1f} | {ld:.1f} | **{statistics.median(e['r_dec']):.2f}** "
            f"({rng(e['r_dec'])}) | {100 * od / limit:.0f}% / {100 * ld / limit:.0f}% |"
        )
        op, lp = med(e["ours"], "prefill_tps"), med(e["llama"], "prefill_tps")
        lines.append(
            f"| {t} | prefill ({o0['prompt_tokens']} tokens) | {op:.1f} | {lp:.1f} | "
            f"**{statistics.median(e['r_pre']):.2f}** ({rng(e['r_pre'])}) | |"
        )
    lines.append("")
    lines.append(
        f"Bandwidth ({bw_src}): " + ", ".join(f"{t} thread{'s' if t > 1 else ''} {bw[t]:.1f} GB/s" for t in threads)
    )
    print("\n".join(lines))
    # Completion lengths, and where the greedy texts part.
    for t in threads:
        for who in ("ours", "llama"):
            counts = sorted({x["completion_tokens"] for x in res[t][who]})
            if counts != [a.n]:
                print(f"note: {who} t{t} generated {counts} tokens, not {a.n} (its decode rate uses the count)")
    ref = texts[("ours", threads[0])]
    for (who, t), text in sorted(texts.items()):
        if text != ref:
            print(f"note: {who} t{t}'s greedy text differs from ours t{threads[0]}'s")
    for t in threads:
        x, y = texts[("ours", t)], texts[("llama", t)]
        if x == y:
            print(f"greedy text, {t} thread(s): identical ({len(x)} characters)")
        else:
            k = common_prefix(x, y)
            print(f"greedy text, {t} thread(s): DIFFERENT after {k} of {len(x)} / {len(y)} characters")
            print(f"  common: {x[:k]!r}")
            print(f"  ours:   {x[k:k + 80]!r}")
            print(f"  theirs: {y[k:k + 80]!r}")
    if o0["long_prompt_ids"] != l0["long_prompt_ids"]:
        print("note: the two tokenizers split the prefill text differently (each engine ran its own ids)")
    else:
        print("the prefill prompt's token ids are identical under both tokenizers")


if __name__ == "__main__":
    main()

"""Python binding overhead: decode tokens/s of Gemma.create_completion against `gemma run`.

Both greedy, batch 1, the same model, prompt, thread count and token count; rounds interleaved
(CLI, Python, CLI, Python, ...) so machine load drifts hit both alike. The CLI's number is the
engine's own decode rate (first to last token, printed on stderr). Python's is measured where a
user sees it: the time between the first and the last streamed chunk reaching Python code, so it
includes every per-token cost of the binding (the step() call, the GIL, building the chunk dict).
A non-streamed create_completion is timed too: (tokens - 1) / (wall(n) - wall(1)).

    PYTHONPATH=python:build/python python3 tools/bench_python.py [--model M] [-n 128] [-r 5] [-t 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import time

from gemma_engine import Gemma, default_model_path

PROMPT = "The history of the bicycle begins in"


def cli_decode_tps(cli: str, model: str, n: int, threads: int) -> float:
    err = subprocess.run(
        [cli, "run", "-m", model, "-p", PROMPT, "-n", str(n), "--temperature", "0", "-t", str(threads)],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    m = re.search(r"decode (\d+) tokens at ([0-9.]+) tok/s", err)
    assert m and int(m.group(1)) == n, err
    return float(m.group(2))


def py_stream_tps(llm: Gemma, n: int) -> float:
    llm.reset()
    stamps = []
    for _ in llm.create_completion(PROMPT, max_tokens=n, temperature=0, stream=True):
        stamps.append(time.perf_counter())
    # The last chunk carries only the finish reason; chunks are one per token here (greedy text
    # of this prompt holds nothing back), checked by the count.
    tokens = stamps[:-1]
    assert len(tokens) == n, len(tokens)
    return (n - 1) / (tokens[-1] - tokens[0])


def py_whole_tps(llm: Gemma, n: int) -> float:
    def wall(k: int) -> float:
        llm.reset()
        t0 = time.perf_counter()
        r = llm.create_completion(PROMPT, max_tokens=k, temperature=0)
        assert r["usage"]["completion_tokens"] == k
        return time.perf_counter() - t0

    return (n - 1) / (wall(n) - wall(1))


class _TimedCore:
    """Delegates to the native core, timing step() (the engine's work, GIL released)."""

    def __init__(self, core):
        self._core = core
        self.step_seconds = 0.0

    def step(self):
        t0 = time.perf_counter()
        try:
            return self._core.step()
        finally:
            self.step_seconds += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._core, name)


def py_share(llm: Gemma, n: int) -> float:
    """The share of a streamed generation's decode time spent outside the engine's step(): the
    binding's per-token overhead. Machine load slows both sides alike, so this ratio is stable
    where absolute tokens/s are not."""
    timed = _TimedCore(llm._core)
    llm._core = timed
    try:
        llm.reset()
        it = llm.create_completion(PROMPT, max_tokens=n, temperature=0, stream=True)
        next(it)  # the prefill and first token: not decode
        timed.step_seconds = 0.0
        t0 = time.perf_counter()
        for _ in it:
            pass
        total = time.perf_counter() - t0
        return (total - timed.step_seconds) / total
    finally:
        llm._core = timed._core


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--cli", default="build/gemma")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("-t", type=int, default=2)
    a = ap.parse_args()
    model = a.model or default_model_path()
    llm = Gemma(model, n_threads=a.t)
    py_stream_tps(llm, 8)  # warm-up (page faults, thread pool)
    cli, stream, whole, share = [], [], [], []
    for r in range(a.r):
        cli.append(cli_decode_tps(a.cli, model, a.n, a.t))
        stream.append(py_stream_tps(llm, a.n))
        whole.append(py_whole_tps(llm, a.n))
        share.append(py_share(llm, a.n))
        print(
            f"round {r + 1}: cli {cli[-1]:.1f}  python stream {stream[-1]:.1f}  python whole {whole[-1]:.1f} tok/s"
            f"  outside step() {share[-1] * 100:.2f}%"
        )

    def fmt(xs):
        return f"{statistics.median(xs):.1f} (min {min(xs):.1f}, max {max(xs):.1f})"

    def ratio(xs):  # the median of the per-round python / cli ratios (< 1: python slower)
        return statistics.median(x / c for x, c in zip(xs, cli))

    print(f"cli decode tok/s:           {fmt(cli)}")
    print(f"python stream tok/s:        {fmt(stream)}  python/cli per round: median {ratio(stream):.3f}")
    print(f"python create_completion:   {fmt(whole)}  python/cli per round: median {ratio(whole):.3f}")
    print(f"time outside step() while streaming: median {statistics.median(share) * 100:.2f}%, max {max(share) * 100:.2f}%")


if __name__ == "__main__":
    main()

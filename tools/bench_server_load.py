#!/usr/bin/env python3
"""Load on `gemma serve` and llama.cpp's llama-server, same model, same slots, side by side.

C concurrent clients each send R streamed chat requests (prompts drawn from a fixed list, greedy,
up to --max-tokens tokens each) to one server, then to the other, for --rounds alternating rounds
(machine noise hits both alike). Reported per server: generated tokens/s over the round's wall
time (all clients together), requests/s, time to first token p50/p95, time per output token p50
(between a stream's consecutive chunks), and failed requests (must be 0).

Both servers get --parallel / -np slots of --ctx positions each (llama-server's -c is the total it
splits among its slots, so it gets slots x ctx) and their default prompt caches.

Usage:
  python3 tools/bench_server_load.py --llama-server $(bash tools/build_llamacpp.sh)/llama-server \
      [--model default] [--clients 8] [--requests 4] [--parallel 4] [--threads 2] [--rounds 2]
"""
import argparse
import http.client
import json
import os
import statistics
import threading
import time

import bench_servers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROMPTS = [
    "Explain how a bicycle stays upright.",
    "Write a short poem about rain in the city.",
    "What are three uses of copper?",
    "Summarise the plot of a detective story in four sentences.",
    "Give me a recipe for a simple tomato soup.",
    "Why is the sky blue?",
    "List some tips for learning a new language.",
    "Describe the water cycle to a child.",
]


def one_request(port, prompt, max_tokens):
    """One streamed chat request: (ttft s, [gaps between chunks s], completion tokens) or None on failure."""
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        t0 = time.perf_counter()
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            r.read()
            return None
        ttft, last, gaps, tokens = None, None, [], 0
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                tokens = ev["usage"].get("completion_tokens", 0)
            if any((ch.get("delta") or {}).get("content") for ch in ev.get("choices", [])):
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - t0
                else:
                    gaps.append(now - last)
                last = now
        return (ttft if ttft is not None else time.perf_counter() - t0), gaps, tokens
    except (OSError, http.client.HTTPException, ValueError):
        return None


def run_round(port, clients, requests, max_tokens):
    results, lock = [], threading.Lock()

    def client(ci):
        for k in range(requests):
            res = one_request(port, PROMPTS[(ci * requests + k) % len(PROMPTS)], max_tokens)
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r is not None]
    ttfts = sorted(r[0] for r in ok)
    gaps = sorted(g for r in ok for g in r[1])
    tokens = sum(r[2] for r in ok)
    pct = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
    return {"tok_s": tokens / wall, "req_s": len(ok) / wall, "ttft_p50": pct(ttfts, 0.5), "ttft_p95": pct(ttfts, 0.95),
            "tpot_p50": pct(gaps, 0.5), "failed": len(results) - len(ok)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--gemma", default=os.path.join(ROOT, "build", "gemma"))
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=4, help="per client per round")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=1024, help="positions per slot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--port", type=int, default=18180)
    args = ap.parse_args()
    model = bench_servers.default_model() if args.model == "default" else args.model
    specs = {
        "gemma-engine": [args.gemma, "serve", "-m", model, "-c", str(args.ctx), "--parallel", str(args.parallel),
                         "-t", str(args.threads), "--max-queue", "256", "--port", str(args.port)],
        "llama-server": [args.llama_server, "-m", model, "-c", str(args.ctx * args.parallel), "-np",
                         str(args.parallel), "-t", str(args.threads), "--port", str(args.port + 1)],
    }
    ports = {"gemma-engine": args.port, "llama-server": args.port + 1}
    procs = {n: bench_servers.start(a) for n, a in specs.items()}
    rows = {n: [] for n in specs}
    try:
        for n, p in procs.items():
            bench_servers.wait_ready(n, ports[n], p)
        for n in specs:  # warm-up: page in the weights, fill caches
            run_round(ports[n], 2, 1, 8)
        for rnd in range(args.rounds):
            order = list(specs) if rnd % 2 == 0 else list(specs)[::-1]
            for n in order:
                rows[n].append(run_round(ports[n], args.clients, args.requests, args.max_tokens))
    finally:
        for p in procs.values():
            bench_servers.stop(p)

    print(f"model {os.path.basename(model)}, {args.threads} threads, {args.parallel} slots x {args.ctx}, "
          f"{args.clients} clients x {args.requests} streamed chat requests of <= {args.max_tokens} tokens, "
          f"{args.rounds} rounds (medians)\n")
    print("| server | generated tok/s | requests/s | TTFT p50 ms | TTFT p95 ms | time per token p50 ms | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    med = lambda n, k: statistics.median(r[k] for r in rows[n])
    for n in specs:
        print(f"| {n} | {med(n, 'tok_s'):.1f} | {med(n, 'req_s'):.2f} | {1000 * med(n, 'ttft_p50'):.0f} | "
              f"{1000 * med(n, 'ttft_p95'):.0f} | {1000 * med(n, 'tpot_p50'):.1f} | "
              f"{sum(r['failed'] for r in rows[n])} |")
    ratio = statistics.median(a["tok_s"] / b["tok_s"] for a, b in zip(rows["gemma-engine"], rows["llama-server"]))
    print(f"\ngenerated tok/s, gemma-engine / llama-server: {ratio:.2f} (median of per-round ratios)")


if __name__ == "__main__":
    main()

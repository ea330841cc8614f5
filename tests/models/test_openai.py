"""The OpenAI-compatible backend against a local fake server (loopback only)."""

from __future__ import annotations

import math
import time

import pytest
from .fake_openai import NEXT, FakeOpenAI, TOKEN, tok_logprob

from secfoundry.models import GenerationConfig, load_model
from secfoundry.models.openai_compat import OpenAIError
from secfoundry.models.openai_compat import parse_retry_after as _retry_after


@pytest.fixture()
def server():
    with FakeOpenAI() as s:
        yield s


def _load(server, name, **kw):
    kw.setdefault("backoff", 0.01)
    return load_model(f"openai:{server.url}#{name}", **kw)


def test_generate_text_and_chat(server):
    m = _load(server, "ok", max_concurrency=4)
    out = m.generate(["Question one", [{"role": "user", "content": "hi there"}]],
                     GenerationConfig(max_new_tokens=8, temperature=0.0, seed=3, stop=["zzz"]))
    assert out[0].startswith(" echo:")
    assert out[1] == "reply to: hi there"
    paths = sorted(r["path"] for r in server.requests)
    assert paths == ["/v1/chat/completions", "/v1/completions"]
    comp = next(r for r in server.requests if r["path"] == "/v1/completions")
    assert comp["seed"] == 3 and comp["max_tokens"] == 8 and comp["stop"] == ["zzz"]
    m.close()


def test_stop_strings_cut_locally(server):
    m = _load(server, "ok")
    (out,) = m.generate(["abc:def"], GenerationConfig(max_new_tokens=16, stop=[":"]))
    assert out == " echo"


def test_chat_mode_sends_text_as_user_message(server):
    m = _load(server, "ok", chat=True)
    assert m.generate(["plain text"]) == ["reply to: plain text"]


def test_concurrency_limit(server):
    m = _load(server, "ok", max_concurrency=3)
    m.generate([f"p{i}" for i in range(12)], GenerationConfig(max_new_tokens=2))
    assert 1 < server.peak <= 3


def test_choice_logprobs_completions(server):
    m = _load(server, "ok")
    assert m.capabilities.choice_logprobs and m.capabilities.loglikelihood
    got = m.choice_logprobs(["Q1\nAnswer:", "Q2\nAnswer:"], [" A", " B", " C", " E"], prefix="shots\n")
    assert got[0][:3] == [NEXT[" A"], NEXT[" B"], NEXT[" C"]]
    assert got[0][3] == -math.inf  # not in the top-k: missing, not an error
    scored = [r for r in server.requests if r["path"] == "/v1/completions" and r.get("max_tokens") == 1
              and not r.get("echo") and r["prompt"].startswith("shots\n")]
    assert {r["prompt"] for r in scored} == {"shots\nQ1\nAnswer:", "shots\nQ2\nAnswer:"}
    assert all(r["logprobs"] == 20 for r in scored)


def test_choice_logprobs_chat_mode(server):
    m = _load(server, "ok", chat=True, top_logprobs=3)
    assert m.capabilities.choice_logprobs and not m.capabilities.loglikelihood
    (row,) = m.choice_logprobs(["Q"], [" A", " B", " C", " D"])
    # " A" matches the chat token "A" after stripping; " D" is outside the top-3
    assert row == [-0.2, -2.0, -2.5, -math.inf]
    with pytest.raises(NotImplementedError):
        m.loglikelihood([("a", " b")])


def test_loglikelihood_via_echo(server):
    m = _load(server, "ok")
    ctx, cont = "The quick brown", " fox jumps"
    (lp, greedy), (lp2, greedy2) = m.loglikelihood([(ctx, cont), ("Hello", " world")], prefix="Pre:")
    expected = sum(tok_logprob(t) for t in TOKEN.findall("Pre:" + ctx + cont)[3:])
    assert lp == pytest.approx(expected)
    assert not greedy
    assert lp2 == pytest.approx(tok_logprob(" world")) and greedy2


def test_no_logprobs_capability(server):
    m = _load(server, "nologprobs")
    caps = m.capabilities
    assert caps.generate and not caps.choice_logprobs and not caps.loglikelihood
    with pytest.raises(NotImplementedError, match="no log-probabilities"):
        m.choice_logprobs(["Q"], [" A"])
    with pytest.raises(NotImplementedError):
        m.loglikelihood([("a", " b")])


@pytest.mark.parametrize("name", ["flaky-429", "flaky-500"])
def test_retries_then_success(server, name):
    m = _load(server, name)
    out = m.generate(["retry me", "and me"], GenerationConfig(max_new_tokens=4))
    assert all(o.startswith(" echo") for o in out)
    assert m.retries_done == 2
    assert len(server.requests) == 4


def test_gives_up_after_max_retries(server):
    m = _load(server, "down", max_retries=2)
    with pytest.raises(OpenAIError, match="HTTP 503"):
        m.generate(["x"])
    assert len(server.requests) == 3


def test_client_error_not_retried(server):
    m = _load(server, "badreq")
    with pytest.raises(OpenAIError, match="does not exist"):
        m.generate(["x"])
    assert len(server.requests) == 1


def test_timeout_retried_then_fails(server):
    m = _load(server, "slow", timeout=0.3, max_retries=1)
    t0 = time.time()
    with pytest.raises(OpenAIError, match="Timeout"):
        m.generate(["x"])
    assert time.time() - t0 < 1.9
    assert len(server.requests) == 2


def test_connection_refused(server):
    url = server.url
    server.__exit__()
    m = load_model(f"openai:{url}#ok", max_retries=1, backoff=0.01)
    with pytest.raises(OpenAIError, match="ConnectError"):
        m.generate(["x"])


def test_api_key_from_option_and_env(monkeypatch):
    with FakeOpenAI(api_key="sekret") as s:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with pytest.raises(OpenAIError, match="HTTP 401"):
            load_model(f"openai:{s.url}#ok").generate(["x"])
        assert load_model(f"openai:{s.url}#ok", api_key="sekret").generate(["x"])[0]
        monkeypatch.setenv("OPENAI_API_KEY", "sekret")
        assert load_model(f"openai:{s.url}#ok").generate(["x"])[0]


def test_retry_after_parsing():
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None
    assert _retry_after("garbage") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_describe(server):
    d = _load(server, "ok").describe()
    assert d["backend"] == "openai" and d["model"] == "ok" and d["base_url"] == server.url

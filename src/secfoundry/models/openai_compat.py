"""Any OpenAI-compatible server: vLLM, llama.cpp server, Ollama, TGI, hosted APIs.

* Text prompts go to ``/completions``, chat prompts (message lists) to ``/chat/completions``
  (``chat=True`` sends text prompts as one user message, for chat-only servers).
* Requests run on a thread pool of ``max_concurrency`` workers sharing one ``httpx.Client``.
* Retries with exponential backoff + full jitter on 429, 5xx, timeouts and connection
  errors; a ``Retry-After`` header (seconds or HTTP date) is honoured. Other 4xx fail at once
  with the server's message.
* Log-probabilities when the server offers them:
  - ``choice_logprobs``: next-token ``top_logprobs`` (completions: ``logprobs=k, max_tokens=1``;
    chat: ``logprobs=true, top_logprobs=k``). A choice absent from the top-k gets ``-inf``.
    A choice matches a returned token exactly; failing that, a token equal to it once
    whitespace is stripped (chat servers emit "A" where a completion prompt would give " A").
  - ``loglikelihood``: completions with ``echo=true, logprobs=1`` over prefix+context+
    continuation; the server tokenizes the whole string, and tokens ending after the context's
    last character count as the continuation (a token straddling the boundary counts too).
  Support is probed once (a one-token request) and reported in ``capabilities``.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from secfoundry.models.base import Capabilities, GenerationConfig, LanguageModel, Message, Prompt
from secfoundry.core.download import _parse_retry_after as parse_retry_after  # the one Retry-After rule
from secfoundry.models.base import cut_at_stop
from secfoundry.models.registry import register_backend
from secfoundry.models.spec import ModelSpec

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class OpenAIModel(LanguageModel):
    def __init__(self, base_url: str, model: str, *, spec: str = "", api_key: str | None = None,
                 max_concurrency: int = 8, timeout: float = 120.0, max_retries: int = 6,
                 backoff: float = 0.5, max_backoff: float = 60.0, top_logprobs: int = 20,
                 chat: bool = False, headers: dict[str, str] | None = None,
                 extra_body: dict[str, Any] | None = None):
        import httpx

        if not model:
            raise ValueError("an OpenAI-compatible backend needs a model name")
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self.spec = spec or f"openai:{self.base_url}#{model}"
        self.max_concurrency = max(1, int(max_concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.top_logprobs = max(1, int(top_logprobs))
        self.chat = bool(chat)
        # server-specific fields added to every generation request (the OpenAI SDK's extra_body), e.g.
        # {"repeat_penalty": 1.0}: llama-cpp-python's server applies a 1.1 repeat penalty by default
        self.extra_body = dict(extra_body or {})
        key = api_key or os.environ.get("OPENAI_API_KEY")
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url, headers=hdrs,
                                    timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 30.0)),
                                    limits=httpx.Limits(max_connections=self.max_concurrency))
        self._pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="openai")
        self._probe_lock = threading.Lock()
        self._probed: dict[str, bool] = {}
        self.retries_done = 0  # total retries, for run summaries

    # ------------------------------------------------------------------ http

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        attempt = 0
        while True:
            wait: float | None = None
            try:
                r = self._client.post(path, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                if attempt >= self.max_retries:
                    raise OpenAIError(f"{self.base_url}{path}: {type(e).__name__}: {e} "
                                      f"(after {attempt} retries)") from e
            else:
                if r.status_code < 400:
                    try:
                        return r.json()
                    except ValueError as e:
                        raise OpenAIError(f"{self.base_url}{path}: response is not JSON: {r.text[:200]!r}") from e
                if r.status_code not in RETRY_STATUS or attempt >= self.max_retries:
                    raise OpenAIError(f"{self.base_url}{path}: HTTP {r.status_code}: {_error_text(r)}",
                                      status=r.status_code)
                wait = parse_retry_after(r.headers.get("retry-after"))
            if wait is None:  # exponential backoff with full jitter
                wait = random.uniform(0, min(self.max_backoff, self.backoff * (2 ** attempt)))
            time.sleep(min(wait, self.max_backoff))
            attempt += 1
            self.retries_done += 1

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._pool.map(fn, items))

    # ------------------------------------------------------------------ interface

    @property
    def capabilities(self) -> Capabilities:
        chat_lp = self._supports("chat_logprobs")
        comp_lp = False if self.chat else self._supports("completion_logprobs")
        echo = False if self.chat else self._supports("echo_logprobs")
        return Capabilities(generate=True, loglikelihood=echo, choice_logprobs=comp_lp or chat_lp,
                            prefix_cache=False, chat_template=True)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": "openai", "base_url": self.base_url, "model": self.model_name,
                "chat": self.chat, "max_concurrency": self.max_concurrency, "timeout": self.timeout,
                "top_logprobs": self.top_logprobs, "extra_body": self.extra_body}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def generate(self, prompts: Sequence[Prompt], config: GenerationConfig | None = None) -> list[str]:
        cfg = config or GenerationConfig()

        def one(p: Prompt) -> str:
            common: dict[str, Any] = {"model": self.model_name, "max_tokens": cfg.max_new_tokens,
                                      "temperature": cfg.temperature, "top_p": cfg.top_p}
            if cfg.seed is not None:
                common["seed"] = cfg.seed
            if cfg.stop:
                common["stop"] = list(cfg.stop)[:4]  # the API's limit; the rest are cut locally
            common.update(self.extra_body)
            if isinstance(p, str) and not self.chat:
                out = self._post("/completions", {**common, "prompt": p})
                text = _first_choice(out, self.spec).get("text") or ""
            else:
                msgs = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
                out = self._post("/chat/completions", {**common, "messages": msgs})
                text = (_first_choice(out, self.spec).get("message") or {}).get("content") or ""
            return cut_at_stop(text, cfg.stop)

        return self._map(one, list(prompts))

    def choice_logprobs(self, contexts: Sequence[str], choices: Sequence[str], prefix: str = "") -> list[list[float]]:
        if not choices:
            raise ValueError("choice_logprobs needs at least one choice")
        use_chat = self.chat or not self._supports("completion_logprobs")
        if use_chat and not self._supports("chat_logprobs"):
            raise NotImplementedError(f"{self.spec}: the server returns no log-probabilities")
        fetch = self._chat_top if use_chat else self._completion_top
        tops = self._map(lambda c: fetch(prefix + c), list(contexts))
        return [[_match(top, ch) for ch in choices] for top in tops]

    def loglikelihood(self, requests: Sequence[tuple[str, str]], prefix: str = "") -> list[tuple[float, bool]]:
        if self.chat or not self._supports("echo_logprobs"):
            raise NotImplementedError(f"{self.spec}: the server does not return prompt log-probabilities "
                                      "(completions with echo=true, logprobs)")
        return self._map(lambda r: self._echo_loglik(prefix + r[0], r[1]), list(requests))

    def apply_chat_template(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        raise NotImplementedError(f"{self.spec}: the server applies its own chat template to chat prompts")

    # ------------------------------------------------------------------ logprob helpers

    def _completion_top(self, prompt: str) -> dict[str, float]:
        out = self._post("/completions", {"model": self.model_name, "prompt": prompt, "max_tokens": 1,
                                          "temperature": 0, "logprobs": min(self.top_logprobs, 20)})
        lp = _first_choice(out, self.spec).get("logprobs") or {}
        tops = lp.get("top_logprobs") or []
        if not tops or tops[0] is None:
            raise NotImplementedError(f"{self.spec}: /completions returned no top_logprobs")
        return {str(k): float(v) for k, v in tops[0].items()}

    def _chat_top(self, content: str) -> dict[str, float]:
        out = self._post("/chat/completions", {
            "model": self.model_name, "messages": [{"role": "user", "content": content}], "max_tokens": 1,
            "temperature": 0, "logprobs": True, "top_logprobs": min(self.top_logprobs, 20)})
        lp = _first_choice(out, self.spec).get("logprobs") or {}
        content_lp = lp.get("content") or []
        if not content_lp:
            raise NotImplementedError(f"{self.spec}: /chat/completions returned no logprobs")
        return {str(t["token"]): float(t["logprob"]) for t in content_lp[0].get("top_logprobs") or []}

    def _echo_loglik(self, context: str, continuation: str) -> tuple[float, bool]:
        if not continuation:
            raise ValueError("empty continuation")
        full = context + continuation
        out = self._post("/completions", {"model": self.model_name, "prompt": full, "max_tokens": 1,
                                          "temperature": 0, "echo": True, "logprobs": 1})
        lp = _first_choice(out, self.spec).get("logprobs") or {}
        tokens, token_lps = lp.get("tokens") or [], lp.get("token_logprobs") or []
        offsets, tops = lp.get("text_offset") or [], lp.get("top_logprobs") or []
        if not tokens or len(offsets) != len(tokens):
            raise NotImplementedError(f"{self.spec}: /completions echo returned no prompt logprobs")
        total, greedy = 0.0, True
        for i, (tok, off) in enumerate(zip(tokens, offsets)):
            end = off + len(tok)
            if off >= len(full):  # the generated token after the echoed prompt
                break
            if end <= len(context):
                continue
            v = token_lps[i] if i < len(token_lps) else None
            if v is None:
                raise ValueError(f"{self.spec}: no log-probability for the first prompt token; "
                                 "give the continuation a non-empty context")
            total += float(v)
            top = tops[i] if i < len(tops) else None
            if top:
                greedy &= max(top.items(), key=lambda kv: kv[1])[0] == tok
        return total, greedy

    def _supports(self, what: str) -> bool:
        """Probe a logprob feature once with a one-token request; remember the answer."""
        with self._probe_lock:
            if what in self._probed:
                return self._probed[what]
            try:
                if what == "completion_logprobs":
                    ok = bool(self._completion_top("Hello"))
                elif what == "chat_logprobs":
                    ok = bool(self._chat_top("Hello"))
                else:
                    lp, _ = self._echo_loglik("Hello", " world")
                    ok = math.isfinite(lp)
            except (NotImplementedError, ValueError, KeyError, TypeError, IndexError):
                ok = False
            except OpenAIError as e:
                if e.status is None or e.status >= 500 or e.status == 429:
                    raise  # the server is down or overloaded: say so rather than "unsupported"
                ok = False  # 4xx: the parameter is not supported
            self._probed[what] = ok
            return ok


OPENAI_OPTIONS = frozenset({"api_key", "max_concurrency", "timeout", "max_retries", "backoff", "top_logprobs",
                            "chat", "headers", "max_backoff", "extra_body"})


@register_backend("openai", options=OPENAI_OPTIONS)
def load_openai(ms: ModelSpec, **opts: Any) -> OpenAIModel:
    """``openai:http://host:port/v1#MODEL``: any OpenAI-compatible server."""
    return OpenAIModel(ms.target, ms.model_name or "", spec=ms.spec, **opts)


def _first_choice(out: dict[str, Any], spec: str) -> dict[str, Any]:
    ch = out.get("choices") if isinstance(out, dict) else None
    if not ch:
        raise OpenAIError(f"{spec}: response has no choices: {str(out)[:200]}")
    return ch[0]


def _match(top: dict[str, float], choice: str) -> float:
    if choice in top:
        return top[choice]
    want = choice.strip()
    vals = [v for k, v in top.items() if k.strip() == want]
    return max(vals) if vals else float("-inf")


def _error_text(r) -> str:
    try:
        j = r.json()
        err = j.get("error", j)
        return str(err.get("message", err) if isinstance(err, dict) else err)[:500]
    except ValueError:
        return r.text[:500]

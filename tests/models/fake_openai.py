"""A small OpenAI-compatible server on 127.0.0.1 (port 0) for the openai backend's tests.

Behaviour is chosen by the request's model name:
  ok            chat + completions with logprobs and echo
  nologprobs    answers but never returns logprobs (like many hosted chat APIs)
  flaky-429     the first request of each prompt gets 429 + Retry-After: 0, then success
  flaky-500     the first request of each prompt gets 500, then success
  down          always 503
  slow          sleeps 2 s before answering (tests use a shorter client timeout)
  badreq        400 with an error message
Tokens are whitespace-led words (regex ``\\s*\\S+``), so offsets are easy to check by hand.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = re.compile(r"\s*\S+|\s+")
# the next-token distribution every prompt gets (log-probs)
NEXT = {" A": -0.4, " B": -1.6, " C": -2.3, "A": -3.0, " D": -4.1}


def tok_logprob(token: str) -> float:
    return -0.1 * len(token)


class FakeOpenAI:
    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.requests: list[dict] = []
        self.seen: dict[str, int] = {}
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def _send(self, code: int, obj: dict, headers: dict | None = None):
                body = json.dumps(obj).encode()
                with fake.lock:  # the request is done once its answer is ready
                    fake.active -= 1
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                req = json.loads(self.rfile.read(n))
                with fake.lock:
                    fake.requests.append({"path": self.path, **req})
                    fake.active += 1
                    fake.peak = max(fake.peak, fake.active)
                self._dispatch(req)

            def _dispatch(self, req: dict):
                if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                model = req.get("model", "")
                key = json.dumps([self.path, req.get("prompt"), req.get("messages")], sort_keys=True)
                with fake.lock:
                    count = fake.seen.get(key, 0)
                    fake.seen[key] = count + 1
                time.sleep(0.02)  # lets concurrent requests overlap
                if model == "flaky-429" and count == 0:
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
                if model == "flaky-500" and count == 0:
                    return self._send(500, {"error": {"message": "boom"}})
                if model == "down":
                    return self._send(503, {"error": {"message": "unavailable"}})
                if model == "badreq":
                    return self._send(400, {"error": {"message": "model badreq does not exist"}})
                if model == "slow":
                    time.sleep(2.0)
                logprobs = model != "nologprobs"
                if self.path.endswith("/completions") and "chat" not in self.path:
                    return self._send(200, self._completion(req, logprobs))
                if self.path.endswith("/chat/completions"):
                    return self._send(200, self._chat(req, logprobs))
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _completion(self, req: dict, logprobs: bool) -> dict:
                prompt = req["prompt"]
                gen = f" echo:{prompt[-12:]}"[: 4 * req.get("max_tokens", 16)]
                choice: dict = {"index": 0, "text": gen, "finish_reason": "length"}
                if logprobs and req.get("logprobs") is not None:
                    if req.get("echo"):
                        toks = TOKEN.findall(prompt) + [" X"]
                        offs, pos = [], 0
                        for t in toks:
                            offs.append(pos)
                            pos += len(t)
                        lps = [None] + [tok_logprob(t) for t in toks[1:]]
                        # the first word of each prompt is "greedy", the rest are not
                        tops = [None] + [{t if i == 1 else " the": -0.01} for i, t in enumerate(toks) if i > 0]
                        choice["text"] = prompt + " X"
                        choice["logprobs"] = {"tokens": toks, "token_logprobs": lps, "text_offset": offs,
                                              "top_logprobs": tops}
                    else:
                        k = int(req["logprobs"])
                        top = dict(sorted(NEXT.items(), key=lambda kv: -kv[1])[:k])
                        choice["logprobs"] = {"tokens": [" A"], "token_logprobs": [NEXT[" A"]],
                                              "top_logprobs": [top], "text_offset": [len(prompt)]}
                return {"id": "cmpl-1", "object": "text_completion", "model": req.get("model"),
                        "choices": [choice]}

            def _chat(self, req: dict, logprobs: bool) -> dict:
                last = req["messages"][-1]["content"]
                msg = {"role": "assistant", "content": f"reply to: {last}"}
                choice: dict = {"index": 0, "message": msg, "finish_reason": "stop"}
                if logprobs and req.get("logprobs"):
                    k = int(req.get("top_logprobs") or 1)
                    chat_next = {"A": -0.2, "B": -2.0, " C": -2.5, "D": -3.5}
                    top = sorted(chat_next.items(), key=lambda kv: -kv[1])[:k]
                    choice["logprobs"] = {"content": [{"token": "A", "logprob": -0.2, "top_logprobs": [
                        {"token": t, "logprob": v} for t, v in top]}]}
                return {"id": "chat-1", "object": "chat.completion", "model": req.get("model"),
                        "choices": [choice]}

        return H

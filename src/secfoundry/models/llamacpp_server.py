"""llama-cpp-python's OpenAI-compatible server on a GGUF (default: the embedded SmolLM2), on loopback.

    python -m secfoundry.models.llamacpp_server [--model PATH.gguf] [--port 8080] [--threads 2]
    secfoundry eval run --model 'openai:http://127.0.0.1:8080/v1#smollm2-135m-instruct' ...

A thin launcher around ``llama_cpp.server`` (the optional extra ``[llamacpp]``, which installs
``llama-cpp-python[server]``), not a server of ours. It does two things the stock
``python -m llama_cpp.server`` does not: it defaults to the embedded GGUF, and it loads the model
with the same llama.cpp parameters as the in-process ``llamacpp:`` backend (weight repacking off,
``logits_all`` on, same ``n_ctx``/``n_batch``/threads), so the two score and generate alike
(tested letter for letter in ``tests/models/test_openai_server.py``).

:class:`LlamaServer` starts it as a subprocess, waits until ``/v1/models`` answers, and stops,
kills or restarts it (same port) — what the tests and ``bench/openai_server.py`` use.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from secfoundry.models.spec import EMBEDDED_ALIAS as EMBEDDED_NAME


def serve(model: str | os.PathLike | None = None, *, host: str = "127.0.0.1", port: int = 8080,
          alias: str = EMBEDDED_NAME, n_ctx: int = 2048, n_batch: int = 512, threads: int | None = None,
          repack: bool = False, verbose: bool = False) -> None:
    """Serve ``model`` (blocking, in this process) until interrupted."""
    from secfoundry.models.llamacpp import _import_llama, _model_params

    _import_llama()  # the clear "install the extra" message when llama-cpp-python is missing
    try:
        import uvicorn
        from llama_cpp.server.app import create_app
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError as e:  # llama-cpp-python without its [server] extra
        raise ImportError("the OpenAI-compatible server needs llama-cpp-python[server]: "
                          "pip install 'secfoundry[llamacpp]'") from e
    if model is None:
        from secfoundry.models.embedded import gguf_path

        model = gguf_path()
    threads = threads or min(os.cpu_count() or 1, 8)
    settings = ModelSettings(model=str(model), model_alias=alias, n_ctx=n_ctx, n_batch=n_batch,
                             n_threads=threads, n_threads_batch=threads, logits_all=True, seed=0,
                             verbose=verbose)
    # the patched default params are read when the model is constructed (inside create_app) and
    # stay patched for the server's life, in case the server reloads the model
    with _model_params(repack=repack):
        app = create_app(server_settings=ServerSettings(host=host, port=port), model_settings=[settings])
        uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LlamaServer:
    """The launcher as a managed subprocess: ``with LlamaServer(threads=1) as srv: srv.spec``."""

    def __init__(self, model: str | os.PathLike | None = None, *, port: int | None = None, host: str = "127.0.0.1",
                 alias: str = EMBEDDED_NAME, n_ctx: int = 2048, threads: int = 1, log: str | os.PathLike | None = None,
                 extra_args: list[str] | None = None):
        self.model, self.host, self.alias, self.n_ctx, self.threads = model, host, alias, n_ctx, threads
        self.port = port or free_port(host)
        self.log = Path(log) if log else None
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def spec(self) -> str:
        return f"openai:{self.url}#{self.alias}"

    def start(self, timeout: float = 120.0) -> float:
        """Start the server and wait until it answers; returns the seconds it took."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"server on {self.url} is already running")
        cmd = [sys.executable, "-m", "secfoundry.models.llamacpp_server", "--host", self.host, "--port",
               str(self.port), "--alias", self.alias, "--n-ctx", str(self.n_ctx), "--threads", str(self.threads),
               *self.extra_args]
        if self.model is not None:
            cmd += ["--model", str(self.model)]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.starts += 1
        self._wait_ready(timeout)
        return time.time() - t0

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""
                raise RuntimeError(f"llama.cpp server on {self.url} exited with code "
                                   f"{self.proc.returncode if self.proc else '?'} while starting\n{tail}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"llama.cpp server on {self.url} not ready after {timeout:.0f} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, as a crashed or preempted one would."""
        self.stop(signal.SIGKILL)

    def restart(self, down_s: float = 0.0, timeout: float = 120.0) -> float:
        self.kill()
        time.sleep(down_s)
        return self.start(timeout)

    def __enter__(self) -> "LlamaServer":
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m secfoundry.models.llamacpp_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="GGUF file (default: the embedded SmolLM2-135M-Instruct)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--alias", default=EMBEDDED_NAME, help="the model name clients send")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repack", action="store_true", help="let llama.cpp repack weights (see models/llamacpp.py)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    serve(a.model, host=a.host, port=a.port, alias=a.alias, n_ctx=a.n_ctx, n_batch=a.n_batch, threads=a.threads,
          repack=a.repack, verbose=a.verbose)


if __name__ == "__main__":
    main()

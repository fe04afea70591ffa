"""Start a real vLLM OpenAI-compatible server (CPU build) for stack tests and the local demo.

Plain stdlib + httpx, no pytest, so fixtures, scripts and demos can share it::

    python = ensure_vllm(repo_root)
    model = ensure_tiny_model(repo_root, repo_root / "var" / "tiny-model")
    with VllmServer(python, model, free_port(), otlp_traces_endpoint="http://127.0.0.1:4318/v1/traces") as s:
        httpx.post(f"{s.base_url}/v1/chat/completions", json={...})
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["VllmServer", "VllmStartError", "ensure_tiny_model", "ensure_vllm", "free_port"]

DEFAULT_VENV = ".venv-vllm"


class VllmStartError(RuntimeError):
    """The server exited or did not become healthy in time; the message holds the log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_vllm(repo_root: Path) -> Path:
    """Install vLLM's CPU build if needed (``scripts/install_vllm.sh``); return the venv's python."""
    subprocess.run(["bash", str(repo_root / "scripts" / "install_vllm.sh")], check=True)
    venv = Path(os.environ.get("RAGOTEL_VLLM_VENV", DEFAULT_VENV))
    return (venv if venv.is_absolute() else repo_root / venv) / "bin" / "python"


def ensure_tiny_model(repo_root: Path, out_dir: Path, python: Path | None = None) -> Path:
    """Create the tiny random Llama in ``out_dir`` unless it is there already; return ``out_dir``.

    ``python`` must have torch, transformers and tokenizers; the vLLM venv's is used by default.
    """
    python = python or ensure_vllm(repo_root)
    subprocess.run([str(python), str(repo_root / "scripts" / "make_tiny_model.py"), str(out_dir)], check=True)
    return out_dir


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class VllmServer:
    """``python -m vllm.entrypoints.openai.api_server`` as a context manager.

    Entering starts the server in its own process group and waits for ``GET /health`` to answer 200;
    leaving sends SIGTERM to the server, then SIGKILL to whatever is left in the group, so no engine
    process outlives the block. Output goes to ``log_path`` (default: ``vllm-PORT.log`` next to a local
    model directory, else in the temp directory).
    """

    def __init__(
        self,
        python: Path,
        model_dir: Path | str,
        port: int,
        served_model_name: str = "tiny-llama",
        otlp_traces_endpoint: str | None = None,
        service_name: str = "vllm",
        log_path: Path | None = None,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 180.0,
        extra_args: tuple[str, ...] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """``otlp_traces_endpoint`` is the full OTLP/HTTP traces URL, path included (``.../v1/traces``):
        vLLM hands it to the HTTP exporter unchanged."""
        self.python = python
        self.model = str(model_dir)
        self.port = port
        self.host = host
        self.served_model_name = served_model_name
        self.otlp_traces_endpoint = otlp_traces_endpoint
        self.service_name = service_name
        log_dir = Path(model_dir).parent if Path(model_dir).is_dir() else Path(tempfile.gettempdir())
        self.log_path = log_path or log_dir / f"vllm-{port}.log"
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.extra_env = dict(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:8000``; the OpenAI API lives under ``/v1``."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The argv that starts the server."""
        cmd = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model,
            "--served-model-name", self.served_model_name,
            "--dtype", "float32",
            "--enforce-eager",
            "--max-model-len", "1024",
            "--host", self.host,
            "--port", str(self.port),
        ]  # fmt: skip
        if self.otlp_traces_endpoint:
            cmd += ["--otlp-traces-endpoint", self.otlp_traces_endpoint]
        return cmd + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        """The server's environment: this process's, plus the CPU and tracing settings."""
        env = dict(os.environ)
        env.update(
            VLLM_CPU_KVCACHE_SPACE="1",  # GiB of KV cache; the default would claim far more RAM.
            # The API server still runs the engine core in a child process; this keeps the model
            # worker inside that child instead of starting a third process.
            VLLM_ENABLE_V1_MULTIPROCESSING="0",
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        if self.otlp_traces_endpoint:
            # vLLM exports over gRPC unless told otherwise.
            env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
            env["OTEL_SERVICE_NAME"] = self.service_name
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Start the server and block until it is healthy; raise ``VllmStartError`` otherwise."""
        if self.process is not None:
            raise RuntimeError("server already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,  # Own process group, so stop() reaches every child.
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise VllmStartError(
                        f"vLLM exited with {code} during start-up; {self.log_path}:\n{_tail(self.log_path)}"
                    )
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise VllmStartError(
                        f"vLLM not healthy after {self.startup_timeout:.0f} s; {self.log_path}:\n{_tail(self.log_path)}"
                    )
                time.sleep(0.5)

    def stop(self, grace: float = 15.0) -> None:
        """Stop the server and everything in its process group.

        SIGTERM goes to the API server alone, which then shuts its engine core down cleanly (signalling
        the engine directly makes the server log an EngineDeadError). Whatever is left in the group after
        ``grace`` seconds gets SIGKILL.
        """
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        if not self._wait_group_gone(process, grace):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            self._wait_group_gone(process, 5.0)
        process.wait()

    @staticmethod
    def _wait_group_gone(process: subprocess.Popen[bytes], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            process.poll()  # Reap the leader, or its zombie keeps the group alive.
            if not _group_alive(process.pid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

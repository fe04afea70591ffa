"""A real vLLM OpenAI-compatible server (the CPU build works here) for the local stack and stack tests.

::

    python = ensure_vllm(repo_root)
    model = ensure_tiny_model(repo_root, repo_root / "var" / "tiny-model")
    with VllmServer(python, model, free_port(), otlp_traces_endpoint="http://127.0.0.1:4318/v1/traces") as s:
        httpx.post(f"{s.base_url}/v1/chat/completions", json={...})
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from examples.reference_app.processes import ManagedProcess, StartError, free_port

__all__ = ["StartError", "VllmServer", "ensure_tiny_model", "ensure_vllm", "free_port"]

DEFAULT_VENV = ".venv-vllm"


def ensure_vllm(repo_root: Path) -> Path:
    """Install vLLM's CPU build if needed (``scripts/install_vllm.sh``); return the venv's python."""
    subprocess.run(["bash", str(repo_root / "scripts" / "install_vllm.sh")], check=True)
    venv = Path(os.environ.get("RAGOTEL_VLLM_VENV", DEFAULT_VENV))
    return (venv if venv.is_absolute() else repo_root / venv) / "bin" / "python"


def ensure_tiny_model(repo_root: Path, out_dir: Path, python: Path | None = None) -> Path:
    """Create the tiny random-weight Llama in ``out_dir`` unless it is there; return ``out_dir``.

    ``python`` must have torch, transformers and tokenizers; the vLLM venv's is used by default.
    """
    python = python or ensure_vllm(repo_root)
    subprocess.run([str(python), str(repo_root / "scripts" / "make_tiny_model.py"), str(out_dir)], check=True)
    return out_dir


class VllmServer(ManagedProcess):
    """``python -m vllm.entrypoints.openai.api_server`` as a context manager.

    Entering starts it in its own process group and waits for ``GET /health``; leaving sends SIGTERM
    to the API server (which shuts its engine core down cleanly; signalling the engine directly
    makes it log an EngineDeadError), then SIGKILL to whatever is left in the group.

    ``otlp_traces_endpoint`` is the full OTLP/HTTP traces URL, path included (``.../v1/traces``):
    vLLM hands it to the HTTP exporter unchanged.
    """

    def __init__(
        self,
        python: Path,
        model: Path | str,
        port: int,
        served_model_name: str = "tiny-llama",
        otlp_traces_endpoint: str | None = None,
        service_name: str = "vllm",
        log_path: Path | None = None,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 240.0,
        extra_args: tuple[str, ...] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.served_model_name = served_model_name
        command = [
            str(python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model),
            "--served-model-name", served_model_name,
            "--dtype", "float32",
            "--enforce-eager",
            "--max-model-len", "1024",
            "--host", host,
            "--port", str(port),
        ]  # fmt: skip
        env = dict(os.environ)
        env.update(
            VLLM_CPU_KVCACHE_SPACE="1",  # GiB of KV cache; the default would claim far more RAM
            # The engine core still runs in a child process; this keeps the model worker inside it.
            VLLM_ENABLE_V1_MULTIPROCESSING="0",
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        if otlp_traces_endpoint:
            command += ["--otlp-traces-endpoint", otlp_traces_endpoint]
            env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"  # vLLM defaults to gRPC
            env["OTEL_SERVICE_NAME"] = service_name
        env.update(extra_env or {})
        default_log = (Path(model).parent if Path(model).is_dir() else Path("/tmp")) / f"vllm-{port}.log"
        super().__init__(
            "vLLM", command + list(extra_args), ready_url=f"http://{host}:{port}/health",
            log_path=log_path or default_log, env=env, startup_timeout=startup_timeout,
        )

    @property
    def base_url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:8000``; the OpenAI API lives under ``/v1``."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> VllmServer:
        self.start()
        return self

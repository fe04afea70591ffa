"""Child processes of the local stack: started in their own process group, waited on until their
readiness URL answers, and stopped with everything they spawned."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx


class StartError(RuntimeError):
    """A process exited or did not become ready in time; the message holds its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_or_free(port: int, host: str = "127.0.0.1") -> int:
    """``port`` if nothing listens there, else a free one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return free_port(host)
    return port


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class ManagedProcess:
    """A command run until :meth:`stop`; entering waits until ``ready_url`` answers 200."""

    def __init__(
        self, name: str, command: Sequence[str], *, ready_url: str, log_path: Path,
        env: Mapping[str, str] | None = None, cwd: Path | None = None, startup_timeout: float = 180.0,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.ready_url = ready_url
        self.log_path = log_path
        self.env = dict(env if env is not None else os.environ)
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd,
                start_new_session=True,  # own process group: stop() reaches every child
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise StartError(f"{self.name} exited with {code}; {self.log_path}:\n{log_tail(self.log_path)}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(self.ready_url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise StartError(
                        f"{self.name} not ready after {self.startup_timeout:.0f} s; "
                        f"{self.log_path}:\n{log_tail(self.log_path)}"
                    )
                time.sleep(0.3)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the leader (it shuts its children down cleanly), SIGKILL to what is left."""
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
            process.poll()  # reap the leader, or its zombie keeps the group alive
            if not group_alive(process.pid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
